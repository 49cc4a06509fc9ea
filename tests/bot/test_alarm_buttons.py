"""Slack alarm messages (issue #12): figures and buttons, Acknowledge updating the
message in place, Raise limit through the same service and policy check (refused to
a read-only user), and `/sms alarms`. Signed requests through the Flask endpoint,
the Web API on loopback, a real RQ worker."""

from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Application
from app.models.alarms import Alarm, AlarmDelivery
from app.queue import enqueue_deferred
from app.services import app_config
from app.services.context import Ctx, Settings
from tests.bot.conftest import Slack
from tests.helpers import make_user
from tests.sending import conftest as sending
from tests.sending.conftest import Shop

shop = sending.shop  # the fixture

AUTHOR, READER = "U0AUTHOR1", "U0READER1"
CHANNEL = "CALARM001"


def _dump(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _values(threshold: str, limit: str) -> dict:
    return {"alarm_threshold": {"alarm_threshold": {"value": threshold}},
            "daily_limit": {"daily_limit": {"value": limit}}}


def _people(slack: Slack, session: Session, shop: Shop) -> Ctx:
    """A full-access and a read-only user linked in Slack, the alarm channel set; the
    shop acts with the app's settings (its context is returned)."""
    for slack_id, email, preset in ((AUTHOR, "author@example.com", "SMSFullAccess"),
                                    (READER, "reader@example.com", "SMSReadOnlyAccess")):
        make_user(session, email, presets=[preset]).slack_user_id = slack_id
    slack.app.config["SLACK_ALARM_CHANNEL"] = CHANNEL
    shop.ctx = Ctx(session, shop.ctx.actor, Settings.from_config(slack.app.config))
    return shop.ctx


def test_alarm_buttons(slack: Slack, session: Session, shop: Shop) -> None:
    c = _people(slack, session, shop)
    sid = shop.app.sdk_app_id
    app_config.set_thresholds(c, sid, "international", alarm_threshold=1, daily_limit=5)
    assert shop.codes(["+14155550200"]) == ["Ok"]
    session.commit()
    enqueue_deferred(slack.app.extensions["redis"], c.deferred)
    slack.run_jobs()

    [post] = [m for m in slack.api.named("chat.postMessage") if m["channel"] == CHANNEL]
    shown = _dump(post["blocks"])
    assert "Daily alarm threshold reached" in shown and sid in shown and "1 of 1" in shown
    assert all(b in shown for b in ("alarm_ack", "alarm_raise_limit", "Open in web"))
    alarm = session.scalars(select(Alarm).where(Alarm.event == "threshold")).one()
    refs = session.scalars(select(AlarmDelivery.ref).where(
        AlarmDelivery.alarm_id == alarm.id, AlarmDelivery.ref.is_not(None))).all()
    assert f"{CHANNEL}:" in " ".join(refs)

    # Raise limit: a read-only user is refused before any form opens.
    slack.click("alarm_raise_limit", str(alarm.id), READER, channel=CHANNEL)
    slack.run_jobs()
    assert slack.api.named("views.open") == []
    [told] = slack.api.named("chat.postEphemeral")
    assert told["user"] == READER and "not allowed" in told["text"]
    # …and a forged submission from them is refused by the service too.
    resp = slack.submit("alarm_raise_modal", _values("10", "20"), READER,
                        private_metadata=str(alarm.id))
    assert resp.get_json()["response_action"] == "errors"
    # A full-access user gets the form with the current pair, and bad input stays there.
    slack.click("alarm_raise_limit", str(alarm.id), AUTHOR, channel=CHANNEL)
    [opened] = slack.api.named("views.open")
    assert "initial_value" in _dump(opened["view"]) and '"5"' in _dump(opened["view"])
    resp = slack.submit("alarm_raise_modal", _values("30", "20"), AUTHOR,
                        private_metadata=str(alarm.id))
    assert "must not exceed" in resp.get_json()["errors"]["alarm_threshold"]
    resp = slack.submit("alarm_raise_modal", _values("10", "20"), AUTHOR,
                        private_metadata=str(alarm.id))
    assert resp.status_code == 200 and not resp.get_data(as_text=True)
    session.expire_all()
    app = session.get(Application, shop.app.id)
    assert app is not None and (app.intl_alarm_threshold, app.intl_daily_limit) == (10, 20)

    # Acknowledge: recorded, and the message is updated in place without buttons.
    slack.click("alarm_ack", str(alarm.id), AUTHOR, channel=CHANNEL)
    slack.run_jobs()
    session.expire_all()
    alarm = session.get(Alarm, alarm.id)
    assert alarm is not None and alarm.acknowledged_by == "author@example.com"
    updates = [u for u in slack.api.named("chat.update") if u["channel"] == CHANNEL]
    assert [u["ts"] for u in updates] == [post_ts(slack)]
    assert "Acknowledged by author@example.com" in _dump(updates[0]["blocks"])
    assert "alarm_ack" not in _dump(updates[0]["blocks"])

    # `/sms alarms [AppID]` lists it with its acknowledge state.
    answer = slack.command(f"alarms {sid}", user=READER).get_json()
    assert "acknowledged by author@example.com" in _dump(answer["blocks"])
    assert "Usage" not in answer["text"]
    bad = slack.command("alarms nope", user=READER).get_json()
    assert "Give one SDK AppID" in _dump(bad) and "recent alarms" in _dump(bad)  # its help


def post_ts(slack: Slack) -> str:
    [post] = [m for m in slack.api.named("chat.postMessage") if m["channel"] == CHANNEL]
    answers = [p for m, p in slack.api.calls if m == "chat.postMessage"]
    assert post in answers
    # The loopback API numbers messages in order: find the ts it gave this post.
    index = answers.index(post)
    return f"{1700000000.000100 + index + 1:.6f}"


def _task(shop: Shop, template: str, rows: list[str]) -> int:
    """A confirmed task left `sending` (no dispatcher runs here unless asked)."""
    import io

    from app.services import tasks

    task, _s = tasks.create_task(shop.ctx, tasks.Draft(shop.app.sdk_app_id,
                                                      shop.templates[template], name="Bulk"),
                                 io.BytesIO("\n".join(rows).encode()), "list.csv")
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    shop.ctx.deferred.clear()
    return task.id


def _stop_buttons(blocks: list) -> list[str]:
    return [e["action_id"] for b in blocks if b["type"] == "actions" for e in b["elements"]
            if e["action_id"].startswith("alarm_stop_task")]


def test_stop_task_from_an_alarm(slack: Slack, session: Session, shop: Shop) -> None:
    """A threshold alarm raised while bulk tasks send offers *Stop task* for those of its
    region; the click stops through tasks.stop and its policy, and the message is
    updated in place (also when the task is stopped elsewhere)."""
    from app.models import SendTask
    from app.services import tasks

    c = _people(slack, session, shop)
    first = _task(shop, "mainland", [f"1380013{i:04d},{1000 + i}" for i in range(3)])
    second = _task(shop, "mainland", [f"1380014{i:04d},{1000 + i}" for i in range(3)])
    abroad = _task(shop, "international", [f"+1415555{i:04d},{1000 + i}" for i in range(3)])
    app_config.set_thresholds(c, shop.app.sdk_app_id, "mainland", alarm_threshold=1,
                              daily_limit=None)
    # The first batch of the first task reaches the threshold: the alarm is raised
    # from inside the task's own sending.
    assert tasks.dispatch_step(c, shop.limiter, first, batch=1).accepted == 1
    session.commit()
    enqueue_deferred(slack.app.extensions["redis"],
                     [d for d in c.deferred if d[0] == "jobs.notify.deliver"])
    c.deferred.clear()
    slack.run_jobs()
    alarm = session.scalars(select(Alarm).where(Alarm.event == "threshold")).one()
    [post] = [m for m in slack.api.named("chat.postMessage") if m["channel"] == CHANNEL]
    assert _stop_buttons(post["blocks"]) == [f"alarm_stop_task:{first}",
                                             f"alarm_stop_task:{second}"]  # not abroad
    assert "Stop task #" in _dump(post["blocks"]) and '"confirm"' in _dump(post["blocks"])
    ts = post_ts(slack)

    def click(task_id: int, user: str) -> None:
        slack.click(f"alarm_stop_task:{task_id}", f"{alarm.id}:{task_id}", user,
                    channel=CHANNEL)
        slack.run_jobs()

    def status(task_id: int) -> str:
        session.expire_all()
        task = session.get(SendTask, task_id)
        assert task is not None
        return task.status

    click(first, READER)  # read-only: refused, ephemerally, nothing changes
    [told] = slack.api.named("chat.postEphemeral")
    assert told["user"] == READER and "not allowed" in told["text"]
    assert status(first) == "sending" and slack.api.named("chat.update") == []
    click(abroad, AUTHOR)  # a task the alarm does not offer (a forged value)
    assert "no task" in slack.api.named("chat.postEphemeral")[-1]["text"]
    assert status(abroad) == "sending"

    click(first, AUTHOR)
    assert status(first) == "stopped"
    [update] = [u for u in slack.api.named("chat.update") if u["channel"] == CHANNEL]
    assert update["ts"] == ts
    assert _stop_buttons(update["blocks"]) == [f"alarm_stop_task:{second}"]
    assert f"Task #{first} stopped by author@example.com" in _dump(update["blocks"])
    assert session.scalars(select(Alarm).where(Alarm.event == "task_stopped")).one()
    click(first, AUTHOR)  # a second click on a stale message: a clear answer
    assert "only a sending task can be stopped" in slack.api.named("chat.postEphemeral")[-1][
        "text"]

    # Stopped from the web: the alarm message loses that button too.
    before = len(slack.api.named("chat.update"))
    tasks.stop(c, second)
    session.commit()
    enqueue_deferred(slack.app.extensions["redis"], c.deferred)
    slack.run_jobs()
    updates = [u for u in slack.api.named("chat.update")[before:] if u["channel"] == CHANNEL]
    assert updates and _stop_buttons(updates[-1]["blocks"]) == []
    assert f"Task #{second} stopped" in _dump(updates[-1]["blocks"])
