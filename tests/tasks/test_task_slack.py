"""`/sms tasks|task|stop|cancel` and the live progress message: signed requests
through the Flask endpoint, the Web API answered by the loopback server."""

from __future__ import annotations

import io
import json
import time

from sqlalchemy.orm import Session

from app.models import SendTask, User
from app.queue import RECEIPTS_JOB, enqueue_deferred, wake
from app.services import tasks
from bot import blocks
from bot import tasks as bot_tasks
from tests.bot.conftest import Slack
from tests.bot.conftest import slack as slack  # fixtures
from tests.bot.conftest import slack_api as slack_api
from tests.bot.conftest import slack_app as slack_app
from tests.conftest import Backend
from tests.helpers import inserts_refused
from tests.sending.conftest import Shop

ROOT = "U0ROOT0001"


def make_task(shop: Shop, session: Session, name: str = "Spring", *, confirm: bool = False,
              rows: int = 3) -> int:
    data = "".join(f"1380013{i:04d},{1000 + i}\n" for i in range(rows)).encode()
    task, _s = tasks.create_task(shop.ctx, tasks.Draft(shop.app.sdk_app_id,
                                                      shop.templates["mainland"], name=name),
                                 io.BytesIO(data), "list.csv")
    if confirm:
        tasks.confirm(shop.ctx, task.id, acknowledged=True)
    session.commit()
    return task.id


def link(session: Session, shop: Shop) -> None:
    session.get(User, shop.ctx.actor.user_id).slack_user_id = ROOT  # type: ignore[union-attr]
    session.commit()


def test_list_show_and_the_live_progress_message(slack: Slack, shop: Shop,
                                                 session: Session) -> None:
    link(session, shop)
    task_id = make_task(shop, session, "<!channel> *sale*", confirm=True, rows=30)
    listed = slack.command("tasks mainland", user=ROOT).get_json()
    assert f"Task {task_id}" in listed["blocks"][0]["text"]["text"]
    assert "<!channel>" not in str(listed) and "&lt;!channel&gt;" in str(listed)
    enqueue_deferred(slack.app.extensions["redis"], shop.ctx.deferred)
    slack.run_jobs()
    posted = slack.api.named("chat.postMessage")
    assert [p["channel"] for p in posted] == [ROOT]  # the creator's DM
    assert posted[0]["blocks"][1]["elements"][0]["action_id"] == bot_tasks.STOP_ASK
    final = slack.api.named("chat.update")[-1]
    assert "— sent" in final["text"] and "30 recipients" in final["text"]
    # The final figures: the last update comes after the receipts, not when the last
    # message left (issue #10: the message ends with them).
    assert "30 delivered" in final["text"] and "0 remaining" in final["text"]
    assert all(e["action_id"] != bot_tasks.STOP_ASK  # no Stop once finished
               for e in final["blocks"][1]["elements"])
    shown = slack.command(f"task {task_id}", user=ROOT).get_json()
    assert "100%" in shown["text"]


def test_the_progress_message_ends_with_the_receipts(slack: Slack, shop: Shop,
                                                     session: Session) -> None:
    """Receipts that come after the last message left (a real carrier's) still reach
    the message: its last update has them, not the figures of the moment the task
    became `sent`."""
    link(session, shop)
    # Long enough that a loaded machine still sends all five before the first receipt.
    slack.app.extensions["gateway"].receipt_delay_s = 2.0
    make_task(shop, session, confirm=True, rows=5)
    enqueue_deferred(slack.app.extensions["redis"], shop.ctx.deferred)
    slack.run_jobs()
    first = slack.api.named("chat.update")[-1]["text"]
    assert "— sent" in first and "0 delivered" in first
    deadline = time.monotonic() + 20
    while "5 delivered" not in slack.api.named("chat.update")[-1]["text"]:
        assert time.monotonic() < deadline, slack.api.named("chat.update")[-1]["text"]
        wake(slack.app.extensions["redis"], RECEIPTS_JOB)  # the sweeper's part
        slack.run_jobs()
    assert "0 remaining" in slack.api.named("chat.update")[-1]["text"]


def test_a_held_back_update_is_made_later(slack: Slack, shop: Shop, session: Session) -> None:
    """Found from outside: an update that came within SLACK_EVERY_S of the last one was
    dropped, and when it was the last (the final receipts, with one receipt that never
    comes, so the task never looks final) the message kept old figures for good. A
    held-back update is now made once the interval is over (one, however many wait)."""
    from rq import Queue

    from jobs import runtime
    from jobs.tasks import slack_progress

    link(session, shop)
    task_id = make_task(shop, session, confirm=True)
    runtime.use(slack.app)
    conn = slack.app.extensions["redis"]
    scheduled = Queue("default", connection=conn).scheduled_job_registry
    slack_progress(slack.app, task_id)  # posts
    assert len(slack.api.named("chat.postMessage")) == 1
    for _ in range(3):
        slack_progress(slack.app, task_id)  # held back: too soon after the post
    assert slack.api.named("chat.update") == []
    jobs = [Queue("default", connection=conn).fetch_job(j)
            for j in scheduled.get_job_ids()]
    assert [j.func_name for j in jobs if j] == [tasks.PROGRESS_JOB]
    jobs[0].perform()  # what the scheduler runs once the interval is over
    assert len(slack.api.named("chat.update")) == 1


def test_two_first_updates_at_once_post_one_message(slack: Slack, shop: Shop,
                                                    session: Session) -> None:
    """Found from outside: two workers whose batches both moved a new task's figures
    each posted the progress message, so the channel had two, and the second never
    changed again. One is posted; the other update is made later, in place."""
    import threading

    from rq import Queue

    from jobs import runtime
    from jobs.tasks import slack_progress

    link(session, shop)
    task_id = make_task(shop, session, confirm=True)
    runtime.use(slack.app)
    answer = slack.api.answer
    release = threading.Event()

    def slow(method: str, params: dict) -> tuple[int, dict, dict]:  # type: ignore[type-arg]
        if method == "chat.postMessage":  # Slack's latency: the first post is in flight
            release.wait(5)
        return answer(method, params)

    slack.api.answer = slow  # type: ignore[method-assign]
    callers = [threading.Thread(target=slack_progress, args=(slack.app, task_id),
                                kwargs={"force": True}) for _ in range(2)]
    callers[0].start()
    deadline = time.monotonic() + 10
    while not slack.api.named("chat.postMessage"):  # the first post has reached Slack
        assert time.monotonic() < deadline
        time.sleep(0.01)
    callers[1].start()
    callers[1].join(10)  # meanwhile, the second
    release.set()
    callers[0].join(10)
    assert len(slack.api.named("chat.postMessage")) == 1
    conn = slack.app.extensions["redis"]
    queue = Queue("default", connection=conn)
    later = [queue.fetch_job(j) for j in queue.scheduled_job_registry.get_job_ids()]
    assert [j.func_name for j in later if j] == [tasks.PROGRESS_JOB]
    later[0].perform()  # the update that was held back, in place
    assert len(slack.api.named("chat.postMessage")) == 1
    assert len(slack.api.named("chat.update")) == 1


def test_a_failed_first_post_is_tried_again(slack: Slack, shop: Shop,
                                            session: Session) -> None:
    """Found from outside: when the post to one target failed (a rate limit, Slack
    down for a moment) while another's succeeded, that target never got the message:
    the next updates only edited what had been posted. It is posted at the next
    update (a target that keeps refusing is given up after a few tries)."""
    from jobs import runtime
    from jobs.tasks import slack_progress

    link(session, shop)
    slack.app.config["SLACK_TASK_CHANNEL"] = "CTASKS001"
    task_id = make_task(shop, session, confirm=True)
    runtime.use(slack.app)
    slack.api.replies["chat.postMessage"] = (200, {"ok": False, "error": "ratelimited"}, {})
    slack_progress(slack.app, task_id, force=True)  # the DM fails, the channel's is posted
    assert [p["channel"] for p in slack.api.named("chat.postMessage")] == [ROOT, "CTASKS001"]
    slack_progress(slack.app, task_id, force=True)
    assert [p["channel"] for p in slack.api.named("chat.postMessage")] == [
        ROOT, "CTASKS001", ROOT]
    assert [p["channel"] for p in slack.api.named("chat.update")] == ["CTASKS001"]
    slack_progress(slack.app, task_id, force=True)  # now both are updated in place
    assert len(slack.api.named("chat.postMessage")) == 3
    assert sorted(p["channel"] for p in slack.api.named("chat.update")) == [
        "CTASKS001", "CTASKS001", ROOT]
    slack.app.config["SLACK_TASK_CHANNEL"] = "CGONE0001"  # one that keeps refusing
    for _ in range(6):
        slack.api.replies["chat.postMessage"] = (
            200, {"ok": False, "error": "channel_not_found"}, {})
        slack_progress(slack.app, task_id, force=True)
    gone = [p for p in slack.api.named("chat.postMessage") if p["channel"] == "CGONE0001"]
    assert len(gone) == 3


def test_stop_and_cancel_ask_first(slack: Slack, shop: Shop, session: Session) -> None:
    link(session, shop)
    waiting = make_task(shop, session)
    sending = make_task(shop, session, confirm=True)
    shop.ctx.deferred.clear()  # no worker here: the task stays `sending`
    ask = slack.command(f"cancel {waiting}", user=ROOT).get_json()
    assert "Cancel task" in str(ask["blocks"]) and session.get(SendTask, waiting).status \
        == "awaiting_confirmation"  # type: ignore[union-attr]
    slack.click(bot_tasks.CANCEL_CONFIRM, str(waiting), ROOT, channel="CCMD0001",
                ephemeral=True)
    slack.click(bot_tasks.STOP_CONFIRM, str(waiting), ROOT, channel="CCMD0001",
                ephemeral=True)  # a cancelled task cannot be stopped: a clear answer
    slack.click(bot_tasks.KEEP, str(sending), ROOT, channel="CCMD0001", ephemeral=True)
    slack.click(bot_tasks.STOP_CONFIRM, str(sending), ROOT, channel="CCMD0001", ephemeral=True)
    slack.run_jobs()
    answers = [p["text"] for p in slack.api.named("response")]
    assert answers[0] == f":wastebasket: Task {waiting} cancelled."
    assert "only a sending task can be stopped" in answers[1]
    assert answers[2] == "Nothing changed."
    assert answers[3].startswith(f":octagonal_sign: Task {sending} stopped")
    # The progress message says so at once, whether a dispatcher is running or not.
    assert "— stopped" in slack.api.named("chat.postMessage")[-1]["text"]
    session.expire_all()
    assert session.get(SendTask, sending).status == "stopped"  # type: ignore[union-attr]


def test_usage_and_strangers(slack: Slack, shop: Shop, session: Session) -> None:
    link(session, shop)
    bad = slack.command("task twelve", user=ROOT).get_json()["text"]
    assert "Give one task id" in bad and "/sms task <id>" in bad
    assert "No task 999" in slack.command("stop 999", user=ROOT).get_json()["text"]
    assert "not a region" in slack.command("tasks mars", user=ROOT).get_json()["text"]
    assert "No bulk send tasks" in slack.command("tasks", user=ROOT).get_json()["text"]


def test_bulk_modal_creates_the_same_task(slack: Slack, shop: Shop, session: Session) -> None:
    from sqlalchemy import func, select

    link(session, shop)
    assert slack.command("bulk", user=ROOT).status_code == 200
    assert slack.api.named("views.open")[-1]["view"]["callback_id"] == bot_tasks.BULK_MODAL

    def submit(lines: str):  # type: ignore[no-untyped-def]
        values = {"app": {"app": {"value": shop.app.sdk_app_id}},
                  "template": {"template": {"value": str(shop.templates["mainland"])}},
                  "sign": {"sign": {"value": "Shop"}}, "lines": {"lines": {"value": lines}}}
        return slack.submit(bot_tasks.BULK_MODAL, values, ROOT)

    bad = submit("13800138000, 1234\n12345, 1234\n").get_json()
    assert bad["response_action"] == "errors" and "Line 2" in bad["errors"]["lines"]
    # Found from outside: blank lines were dropped before numbering ("Line 2" for the
    # fourth line), and a first line without a digit was taken for a header.
    gap = submit("13800138000,1234\n\n\n13800138001,12\n").get_json()
    assert gap["errors"]["lines"].startswith("Line 4:"), gap
    lead = submit("\n\n12345,1234\n").get_json()  # leading blank lines count too
    assert lead["errors"]["lines"].startswith("Line 3:"), lead
    first = submit("abc,1234\n13800138001,1234").get_json()
    assert first["errors"]["lines"].startswith("Line 1: Not a phone number"), first
    many = submit("\n".join(f"1380013{i:04d},1234" for i in range(101))).get_json()
    assert "1 to 100 lines" in many["errors"]["lines"]
    assert session.scalar(select(func.count()).select_from(SendTask)) == 0  # nothing kept
    ok = submit("13800138000, 1234\n13800138001,5678\n").get_json()
    # The confirm step follows in the same modal (found from outside: "Send now"
    # confirmed blindly, past the figures and the acknowledgement SPEC.md §3 asks for).
    assert ok["response_action"] == "update", ok
    session.expire_all()
    task = session.scalar(select(SendTask))
    assert task is not None and (task.status, task.valid_rows) == ("awaiting_confirmation", 2)
    assert task.created_by == shop.ctx.actor.user_id  # the same service, as the linked user
    view = ok["view"]
    assert view["callback_id"] == bot_tasks.BULK_CONFIRM_MODAL
    assert view["private_metadata"] == str(task.id)
    shown = json.dumps(view["blocks"])
    assert "2 recipient(s)" in shown and "2 billed item(s)" in shown
    assert "no unit prices set" in shown
    unticked = slack.submit(bot_tasks.BULK_CONFIRM_MODAL, {"ack": {"ack": {
        "selected_options": []}}}, ROOT, str(task.id)).get_json()
    assert unticked["response_action"] == "errors" and "Tick the box" in unticked["errors"]["ack"]
    session.expire_all()
    assert session.get(SendTask, task.id).status == "awaiting_confirmation"  # type: ignore[union-attr]
    ticked = slack.submit(bot_tasks.BULK_CONFIRM_MODAL, {"ack": {"ack": {
        "selected_options": [{"value": "yes"}]}}}, ROOT, str(task.id))
    assert ticked.status_code == 200 and not ticked.get_data()
    session.expire_all()
    assert session.get(SendTask, task.id).status == "sending"  # type: ignore[union-attr]
    # Found from outside: the same submission again (a replayed request, or Submit
    # pressed again while the first was slow to answer) made a second task that sent
    # every number again. One form makes at most one task.
    again = submit("13800138000, 1234\n13800138001,5678\n").get_json()
    assert again["response_action"] == "errors" and f"task {task.id}" in again["errors"]["lines"]
    assert session.scalar(select(func.count()).select_from(SendTask)) == 1


def test_digits_that_are_not_numbers_are_usage_not_an_error(slack: Slack, shop: Shop,
                                                              session: Session) -> None:
    """'²' is a digit to str.isdigit but no number to int(): it was "Something went
    wrong" for the commands and an unanswered modal (a 500) for /sms bulk."""
    link(session, shop)
    for command in ("task", "stop", "cancel"):
        answer = slack.command(f"{command} ²", user=ROOT).get_json()["text"]
        assert "Give one task id" in answer, answer
    values = {"app": {"app": {"value": shop.app.sdk_app_id}},
              "template": {"template": {"value": "²"}},
              "lines": {"lines": {"value": "13800138000,1234"}}}
    resp = slack.submit(bot_tasks.BULK_MODAL, values, ROOT)
    assert resp.status_code == 200
    assert resp.get_json() == {"response_action": "errors",
                               "errors": {"template": "Give the template's id."}}


def test_a_failed_task_says_why(slack: Slack, shop: Shop, session: Session) -> None:
    """`failed` comes with its reason (issue #10), in Slack as on the web."""
    from app.services import apps

    link(session, shop)
    task_id = make_task(shop, session, confirm=True)
    apps.set_enabled(shop.ctx, shop.app.sdk_app_id, False)
    assert tasks.dispatch_step(shop.ctx, shop.limiter, task_id).status == "failed"
    session.commit()
    shown = slack.command(f"task {task_id}", user=ROOT).get_json()["text"]
    assert "— failed" in shown and "The application was disabled." in shown, shown
    # Found from outside: the rows a failed or cancelled task never sent were "left
    # unsent (stopped)", whatever ended it.
    assert "3 left unsent (failed)" in shown, shown
    listed = str(slack.command("tasks", user=ROOT).get_json()["blocks"])
    assert "The application was disabled." in listed


def test_a_task_that_failed_validation_is_not_shown_done(shop: Shop) -> None:
    """Found from outside: a file with no usable row made a failed task at 100%."""
    import io

    task, _s = tasks.create_task(shop.ctx, tasks.Draft(
        shop.app.sdk_app_id, shop.templates["mainland"]), io.BytesIO(b"123,1\n"), "x.csv")
    assert task.status == "failed"
    p = tasks.progress(shop.ctx, task)
    assert p.percent == 0
    assert "0%" in bot_tasks.progress_text(task, p)


def test_a_task_paused_for_quiet_hours_says_so(slack: Slack, shop: Shop,
                                               session: Session) -> None:
    from tests.tasks.conftest import task_in_quiet_hours

    link(session, shop)
    task_id = task_in_quiet_hours(shop, session)
    shown = slack.command(f"task {task_id}", user=ROOT).get_json()
    assert "Paused for quiet hours" in shown["text"] and "<!date^" in shown["text"]


def test_the_list_links_to_its_region(slack: Slack, shop: Shop, session: Session) -> None:
    """Found from outside: "N more" of the international list opened the mainland tab."""
    link(session, shop)
    for n in range(11):
        tasks.create_task(shop.ctx, tasks.Draft(shop.app.sdk_app_id,
                                                shop.templates["international"],
                                                name=f"T{n}"),
                          io.BytesIO(b"+14155550101,1234\n"), "list.csv")
    session.commit()
    listed = str(slack.command("tasks international", user=ROOT).get_json())
    assert "1 more: " in listed and "/tasks?region=international" in listed


def test_creating_a_task_needs_that_right_only(slack: Slack, shop: Shop,
                                               session: Session) -> None:
    """Found from outside: /sms bulk offered only the applications in the user's
    application list (DescribeAppList): a user allowed to create tasks but not to list
    applications was told "you may not", while the service itself let them."""
    from tests.helpers import doc, make_user

    user = make_user(session, "ops@example.com", policies=[doc(("allow", [
        "sms:CreateSendTask", "sms:DescribeSendTasks"], ["sms:app/*"]))])
    user.slack_user_id = "U0OPS0001"
    session.commit()
    assert slack.command("bulk", user="U0OPS0001").status_code == 200
    assert slack.api.named("views.open"), slack.api.calls


def test_stop_is_offered_to_who_may_stop(slack: Slack, shop: Shop, session: Session) -> None:
    """Found from outside: /sms stop asked with the right to see tasks, not to stop
    them: a user who may only stop was told "No task", a reader was offered the
    button and refused at the click."""
    from tests.helpers import doc, make_user

    task_id = make_task(shop, session, confirm=True)
    stopper = make_user(session, "stopper@example.com", policies=[doc(("allow", [
        "sms:ModifyTaskStatusStop"], ["sms:app/*"]))])
    stopper.slack_user_id = "U0STOP001"
    reader = make_user(session, "reader@example.com", presets=["SMSReadOnlyAccess"])
    reader.slack_user_id = "U0READ001"
    session.commit()
    asked = slack.command(f"stop {task_id}", user="U0STOP001").get_json()
    assert bot_tasks.STOP_CONFIRM in str(asked), asked
    refused = slack.command(f"stop {task_id}", user="U0READ001").get_json()
    assert bot_tasks.STOP_CONFIRM not in str(refused), refused



def test_stop_and_cancel_are_asked_only_when_they_apply(slack: Slack, shop: Shop,
                                                      session: Session) -> None:
    """Found from outside: `/sms cancel` of a sending task asked "Nothing of it will be
    sent." (false, and the click then failed), `/sms stop` of an unconfirmed task asked
    to stop it, and a button holding an id too large to be one answered "No task 0"."""
    link(session, shop)
    waiting = make_task(shop, session)
    sending = make_task(shop, session, confirm=True)
    shop.ctx.deferred.clear()  # no worker here: the task stays `sending`
    cancel = slack.command(f"cancel {sending}", user=ROOT).get_json()
    assert "only a scheduled or unconfirmed task can be cancelled" in cancel["text"], cancel
    assert "blocks" not in cancel or "Cancel task" not in str(cancel["blocks"])
    stop = slack.command(f"stop {waiting}", user=ROOT).get_json()
    assert "only a sending task can be stopped" in stop["text"], stop
    assert "Stop task" not in str(stop.get("blocks", ""))
    slack.click(bot_tasks.STOP_ASK, "99999999999", ROOT, channel="CCMD0001")
    slack.run_jobs()
    said = [p["text"] for p in slack.api.named("chat.postEphemeral")]
    assert said and "No such task" in said[-1], said


def test_closing_the_confirm_step_sends_nothing_and_says_where_to_confirm(
        slack: Slack, shop: Shop, session: Session) -> None:
    from urllib.parse import urlencode

    link(session, shop)
    values = {"app": {"app": {"value": shop.app.sdk_app_id}},
              "template": {"template": {"value": str(shop.templates["mainland"])}},
              "sign": {"sign": {"value": "Shop"}},
              "lines": {"lines": {"value": "13800138000,1234"}}}
    step = slack.submit(bot_tasks.BULK_MODAL, values, ROOT).get_json()
    task_id = int(step["view"]["private_metadata"])
    closed = {"type": "view_closed", "user": {"id": ROOT}, "team": {"id": "T0TEAM001"},
              "api_app_id": "A0APP0001", "is_cleared": False,
              "view": {"id": "V0VIEW002", "callback_id": bot_tasks.BULK_CONFIRM_MODAL,
                       "type": "modal", "private_metadata": str(task_id), "state": {}}}
    assert slack.post(urlencode({"payload": json.dumps(closed)})).status_code == 200
    slack.run_jobs()
    said = [p["text"] for p in slack.api.named("chat.postMessage") if p["channel"] == ROOT]
    assert said and f"Task {task_id} was not confirmed: nothing is sent" in said[-1]
    session.expire_all()
    assert session.get(SendTask, task_id).status == "awaiting_confirmation"  # type: ignore[union-attr]


def test_a_database_fault_in_the_bulk_form_is_told_in_the_form(
        slack: Slack, shop: Shop, session: Session, backend: Backend) -> None:
    """Found from outside (read in the code): an unexpected error in the bulk form's
    handler was no answer at all, which Slack shows as its own connection error. The
    database refusing the task (a trigger, a real refusal) is now told in the form, and
    the form may be sent again."""
    link(session, shop)
    with inserts_refused(backend.db.engine, "send_task", session):
        values = {"app": {"app": {"value": shop.app.sdk_app_id}},
                  "template": {"template": {"value": str(shop.templates["mainland"])}},
                  "sign": {"sign": {"value": "Shop"}},
                  "lines": {"lines": {"value": "13800138000,1234"}}}
        resp = slack.submit(bot_tasks.BULK_MODAL, values, ROOT)
        assert resp.status_code == 200
        assert resp.get_json() == {"response_action": "errors",
                                   "errors": {"lines": blocks.SOMETHING_WRONG}}
