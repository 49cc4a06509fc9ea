"""The Slack bot end to end: signatures, commands, modals, the approval round trip."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import AuditEntry, ReviewMessage, Template, User
from app.services import content
from tests.bot.conftest import REVIEW_CHANNEL, Slack
from tests.conftest import Backend
from tests.helpers import ctx_for, inserts_refused, make_app, make_user

AUTHOR, REVIEWER, READER, STRANGER = "U0AUTHOR1", "U0REVIEW1", "U0READER1", "U0NOBODY1"


def people(session: Session) -> dict[str, User]:
    found = {
        AUTHOR: make_user(session, "author@example.com", presets=["SMSFullAccess"]),
        REVIEWER: make_user(session, "reviewer@example.com", presets=["SMSReviewer"]),
        READER: make_user(session, "reader@example.com", presets=["SMSReadOnlyAccess"]),
    }
    for slack_id, user in found.items():
        user.slack_user_id = slack_id
    session.commit()
    return found


def dump(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _text(resp) -> str:  # type: ignore[no-untyped-def]
    return resp.get_json().get("text", "") if resp.is_json else resp.get_data(as_text=True)


def test_forged_or_stale_requests_are_refused(slack: Slack, session: Session) -> None:
    people(session)
    body = urlencode({"command": "/sms", "text": "template new", "user_id": AUTHOR,
                      "trigger_id": "1.2"})
    assert slack.post(body, secret="not-the-secret").status_code == 401
    assert slack.post(body, timestamp=int(time.time()) - 301).status_code == 401
    assert slack.client.post("/slack/events", data=body).status_code == 401
    assert slack.api.calls == []  # nothing reached Slack, nothing changed


def test_help_and_unknown_input(slack: Slack, session: Session) -> None:
    people(session)
    resp = slack.command("")
    assert resp.status_code == 200 and "/sms apps" in _text(resp)
    unknown = slack.command("launch <!channel> rockets")
    assert "Unknown command “launch”" in _text(unknown) and "/sms reviews" in _text(unknown)
    bad = slack.command("app not-a-number")
    assert "Give one SDK AppID" in _text(bad) and "/sms app <AppID>" in _text(bad)
    assert "mainland or international" in _text(slack.command("templates moon"))


def test_unlinked_user_is_told_how_to_link(slack: Slack, session: Session) -> None:
    resp = slack.command("apps", user=STRANGER)
    assert "not linked" in _text(resp) and "/account" in _text(resp)
    assert slack.api.named("users.info")[0]["user"] == STRANGER


def test_link_by_email_through_users_info(slack: Slack, session: Session) -> None:
    make_user(session, "ana@example.com", presets=["SMSReadOnlyAccess"])
    make_app(session, "Shop & <Co>")
    session.commit()
    slack.api.emails["U0ANA0001"] = "Ana@Example.com"
    resp = slack.command("apps", user="U0ANA0001")
    answer = dump(resp.get_json())
    assert "1400000001" in answer
    assert "Shop &amp; &lt;Co&gt;" in answer  # mrkdwn-escaped
    session.expire_all()
    linked = session.scalar(select(User).where(User.email == "ana@example.com"))
    assert linked.slack_user_id == "U0ANA0001"
    slack.command("apps", user="U0ANA0001")
    assert len(slack.api.named("users.info")) == 1  # linked now: no second look-up


def test_commands_run_with_the_users_policies(slack: Slack, session: Session) -> None:
    people(session)
    sid = make_app(session, "Shop")
    session.commit()
    assert "Shop" in dump(slack.command(f"app {sid}", user=READER).get_json())
    scoped = make_user(session, "one@example.com")
    scoped.slack_user_id = "U0SCOPED1"
    session.commit()
    assert "You cannot see any application" in _text(slack.command("apps", user="U0SCOPED1"))
    denied = slack.command(f"app {sid}", user="U0SCOPED1")
    assert f"No application {sid}" in _text(denied)
    refused = slack.command("template new", user=READER)
    assert "sms:AddSmsTemplate" in _text(refused)
    assert slack.api.named("views.open") == []


def test_lists_longer_than_block_kit_allows_are_summarised(slack: Slack,
                                                            session: Session) -> None:
    users = people(session)
    author = ctx_for(session, users[AUTHOR])
    for n in range(25):
        content.create_template(author, "mainland", {
            "name": f"t{n}", "sms_type": "notification", "content": f"Order {{1}} step {n}"})
    session.commit()
    body = slack.command("templates mainland", user=READER).get_json()
    assert "…and 5 more" in dump(body) and "/content/templates?region=mainland" in (
        dump(body))
    reviews_list = slack.command("reviews", user=REVIEWER).get_json()
    assert len(reviews_list["blocks"]) <= 50


def test_template_modal_with_errors_on_its_fields(slack: Slack, session: Session) -> None:
    people(session)
    resp = slack.command("template new international")
    assert resp.status_code == 200
    [opened] = slack.api.named("views.open")
    assert opened["view"]["callback_id"] == "template_new_modal"
    assert opened["view"]["private_metadata"] == "international"
    values = {"name": {"name": {"value": ""}},
              "sms_type": {"sms_type": {"selected_option": {"value": "marketing"}}},
              "content": {"content": {"value": "Sale {2}"}},
              "notes": {"notes": {"value": None}}}
    bad = slack.submit("template_new_modal", values, AUTHOR, "international")
    errors = bad.get_json()["errors"]
    assert bad.get_json()["response_action"] == "errors"
    assert errors["name"] == "Required." and "consecutively" in errors["content"]
    assert session.scalar(select(Template.id)) is None
    values["name"]["name"]["value"] = "Sale"
    values["content"]["content"]["value"] = "Sale {1}! Reply STOP to opt out"
    ok = slack.submit("template_new_modal", values, AUTHOR, "international")
    assert ok.status_code == 200 and not ok.data
    assert session.scalar(select(Template.name)) == "Sale"


def test_template_modal_url_flag_region_and_one_line_name(slack: Slack,
                                                           session: Session) -> None:
    """Issue #8: the URL opt-in is a modal field; unknown values and line breaks are
    refused on the modal's fields."""
    people(session)
    slack.command("template new international")
    [opened] = slack.api.named("views.open")
    assert "allow_url_params" in [b.get("block_id") for b in opened["view"]["blocks"]]
    values = {"name": {"name": {"value": "Track\nInjected"}},
              "sms_type": {"sms_type": {"selected_option": {"value": "notification"}}},
              "content": {"content": {"value": "Track it at {1}"}},
              "notes": {"notes": {"value": None}},
              "allow_url_params": {"allow_url_params": {
                  "selected_options": [{"value": "maybe"}]}}}
    bad = slack.submit("template_new_modal", values, AUTHOR, "international").get_json()
    assert "one line" in bad["errors"]["name"]
    assert "on or off" in bad["errors"]["allow_url_params"]
    values["name"]["name"]["value"] = "Track"
    values["allow_url_params"]["allow_url_params"]["selected_options"] = [{"value": "on"}]
    mars = slack.submit("template_new_modal", values, AUTHOR, "mars").get_json()
    assert "mars" in mars["errors"]["content"]  # the region has no field of its own
    assert session.scalar(select(Template.id)) is None
    ok = slack.submit("template_new_modal", values, AUTHOR, "international")
    assert ok.status_code == 200 and not ok.data
    assert session.scalar(select(Template.allow_url_params)) is True


def _submit_on_web(session: Session, author: User) -> int:
    t = content.create_template(ctx_for(session, author), "international", {
        "name": "Login code", "sms_type": "verification", "content": "Your code is {1}"})
    session.commit()
    return t.id


def _enqueue_submitted(slack: Slack, tid: int) -> None:
    from app.queue import enqueue

    enqueue(slack.app.extensions["redis"], "jobs.reviews.submitted", "template", tid)
    slack.run_jobs()


def test_approval_round_trip(slack: Slack, session: Session) -> None:
    users = people(session)
    tid = _submit_on_web(session, users[AUTHOR])
    _enqueue_submitted(slack, tid)
    [posted] = slack.api.named("chat.postMessage")
    assert posted["channel"] == REVIEW_CHANNEL
    text = dump(posted["blocks"])
    assert "Login code" in text and "GSM-7" in text and "author@example.com" in text
    ids = [e.get("action_id") for b in posted["blocks"] for e in b.get("elements", [])]
    assert ids[:2] == ["review_approve", "review_reject"]

    resp = slack.click("review_approve", f"template:{tid}:1", REVIEWER)
    assert resp.status_code == 200
    session.expire_all()
    assert session.get(Template, tid).status == "effective"
    slack.run_jobs()
    [updated] = slack.api.named("chat.update")
    msg = session.scalar(select(ReviewMessage))
    assert (updated["channel"], updated["ts"]) == (msg.channel, msg.ts)
    assert "Effective* by reviewer@example.com" in dump(updated["blocks"])
    assert "review_approve" not in dump(updated["blocks"])  # cannot be clicked again
    dms = [m for m in slack.api.named("chat.postMessage") if m["channel"] == AUTHOR]
    assert len(dms) == 1 and "effective" in dms[0]["text"]
    audit = session.scalar(select(AuditEntry).where(AuditEntry.action == "ReviewContent"))
    assert audit.actor_label == "reviewer@example.com"


def test_reject_asks_for_a_reason_in_a_modal(slack: Slack, session: Session) -> None:
    users = people(session)
    tid = _submit_on_web(session, users[AUTHOR])
    _enqueue_submitted(slack, tid)
    slack.click("review_reject", f"template:{tid}:1", REVIEWER)
    [opened] = slack.api.named("views.open")
    view = opened["view"]
    assert view["callback_id"] == "review_reject_modal"
    empty = slack.submit("review_reject_modal", {"reason": {"reason": {"value": "  "}}},
                         REVIEWER, view["private_metadata"])
    assert empty.get_json()["errors"]["reason"].startswith("Say why")
    session.expire_all()
    assert session.get(Template, tid).status == "pending"
    done = slack.submit("review_reject_modal",
                        {"reason": {"reason": {"value": "Say what the code is for"}}},
                        REVIEWER, view["private_metadata"])
    assert done.status_code == 200
    session.expire_all()
    t = session.get(Template, tid)
    assert (t.status, t.reject_reason) == ("rejected", "Say what the code is for")
    slack.run_jobs()
    [updated] = slack.api.named("chat.update")
    assert "Reason: Say what the code is for" in dump(updated["blocks"])
    dm = [m for m in slack.api.named("chat.postMessage") if m["channel"] == AUTHOR]
    assert "Say what the code is for" in dm[0]["text"]


def test_self_approval_and_readers_are_refused_ephemerally(slack: Slack,
                                                           session: Session) -> None:
    users = people(session)
    tid = _submit_on_web(session, users[AUTHOR])
    slack.click("review_approve", f"template:{tid}:1", AUTHOR)
    slack.click("review_approve", f"template:{tid}:1", READER)
    slack.click("review_reject", f"template:{tid}:1", AUTHOR)
    slack.run_jobs()
    told = slack.api.named("chat.postEphemeral")
    assert [(m["user"], m["text"]) for m in told] == [
        (AUTHOR, ":no_entry: You cannot review your own submission."),
        (READER, ":no_entry: You are not allowed to do sms:ReviewContent on sms:app/*."),
        (AUTHOR, ":no_entry: You cannot review your own submission."),
    ]
    assert slack.api.named("views.open") == []
    session.expire_all()
    assert session.get(Template, tid).status == "pending"


def test_a_web_decision_updates_the_slack_message(slack: Slack, session: Session) -> None:
    from app.services import reviews

    users = people(session)
    tid = _submit_on_web(session, users[AUTHOR])
    _enqueue_submitted(slack, tid)
    reviewer = ctx_for(session, users[REVIEWER])
    reviews.approve(reviewer, "template", tid, revision=1)
    session.commit()
    from app.queue import enqueue_deferred

    enqueue_deferred(slack.app.extensions["redis"], reviewer.deferred)
    slack.run_jobs()
    [updated] = slack.api.named("chat.update")
    assert "Effective" in dump(updated["blocks"])
    late = slack.click("review_approve", f"template:{tid}:1", REVIEWER)
    assert late.status_code == 200
    slack.run_jobs()
    assert "Already decided" in slack.api.named("chat.postEphemeral")[0]["text"]


def test_slack_api_errors_are_logged_not_lost(slack: Slack, session: Session,
                                              caplog) -> None:  # type: ignore[no-untyped-def]
    users = people(session)
    tid = _submit_on_web(session, users[AUTHOR])
    slack.api.replies["chat.postMessage"] = (200, {"ok": False, "error": "channel_not_found"},
                                             {})
    _enqueue_submitted(slack, tid)
    assert session.scalar(select(ReviewMessage)) is None
    # Rate limited: the job is scheduled again after Retry-After, not dropped.
    slack.api.replies["chat.postMessage"] = (429, {"ok": False, "error": "ratelimited"},
                                             {"Retry-After": "7"})
    _enqueue_submitted(slack, tid)
    from rq import Queue

    scheduled = Queue("default", connection=slack.app.extensions["redis"]).scheduled_job_registry
    assert len(scheduled.get_job_ids()) == 1


def test_slack_off_means_404(backend, session: Session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from app import create_app

    off = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x"})
    resp = off.test_client().post("/slack/events", data="x")
    assert resp.status_code == 404 and "not configured" in resp.get_json()["error"]


def test_submitting_on_the_web_posts_the_request(slack: Slack, session: Session) -> None:
    """Web → review message in Slack → Approve click → effective, updated, DM'd."""
    from tests.web.conftest import Client

    users = people(session)
    web = Client(slack.app.test_client())
    web.login("author@example.com")
    web.get("/content/templates/new?region=mainland")
    resp = web.post("/content/templates/new?region=mainland", {
        "name": "Shipped", "sms_type": "notification", "content": "订单{1}已发货"})
    assert resp.status_code == 302
    slack.run_jobs()
    [posted] = [m for m in slack.api.named("chat.postMessage") if m["channel"] == REVIEW_CHANNEL]
    assert "订单{1}已发货" in dump(posted["blocks"]) and "UCS-2" in dump(posted["blocks"])
    tid = session.scalar(select(Template.id))
    slack.click("review_approve", f"template:{tid}:1", REVIEWER)
    slack.run_jobs()
    assert "Effective" in dump(slack.api.named("chat.update")[0]["blocks"])
    assert any(m["channel"] == AUTHOR for m in slack.api.named("chat.postMessage"))
    assert users[AUTHOR].email == "author@example.com"


def test_alarm_events_reach_contacts_and_the_alarm_channel(slack: Slack,
                                                           session: Session) -> None:
    from app.services import app_config, notifications
    from app.services.context import Settings
    from tests.helpers import root_ctx

    sid = make_app(session)
    app_config.add_contact(root_ctx(session), sid, name="Ops", slack_user_id="U0ONCALL1",
                           events=["threshold"])
    settings = Settings(notify_channels=("email", "slack"), alarm_channel="CALARM001")
    c = root_ctx(session, **settings.__dict__)
    assert notifications.contact_recipients(c, "threshold") == [
        ("slack", "U0ONCALL1"), ("slack", "CALARM001")]
    assert notifications.contact_recipients(c, "review") == []
    notifications.notify(c, "threshold", notifications.contact_recipients(c, "threshold"),
                         "Daily threshold reached", "Shop sent 800 of 1,000 <b>")
    session.commit()
    from app.queue import enqueue_deferred

    enqueue_deferred(slack.app.extensions["redis"], c.deferred)
    slack.run_jobs()
    sent = {m["channel"]: m["text"] for m in slack.api.named("chat.postMessage")}
    assert set(sent) == {"U0ONCALL1", "CALARM001"}
    assert "&lt;b&gt;" in sent["CALARM001"]


def test_revoked_token_fails_the_notification_visibly(slack: Slack, session: Session) -> None:
    from app.models import Notification
    from app.services import notifications
    from app.services.context import Settings
    from tests.helpers import root_ctx

    c = root_ctx(session, **Settings(notify_channels=("email", "slack")).__dict__)
    notifications.notify(c, "review", [("slack", "U0GONE001")], "Hello", "Body")
    session.commit()
    slack.api.replies["chat.postMessage"] = (200, {"ok": False, "error": "token_revoked"}, {})
    from app.queue import enqueue_deferred

    enqueue_deferred(slack.app.extensions["redis"], c.deferred)
    slack.run_jobs()
    session.expire_all()
    row = session.scalar(select(Notification))
    assert row.status == "failed" and row.error == "Slack: token_revoked"


def test_a_database_fault_in_the_template_form_is_told_in_the_form(
        slack: Slack, session: Session, backend: Backend) -> None:
    """An unexpected error in a form's handler was no answer at all (a 500), which Slack
    shows as its own connection error. The database refusing the template (a trigger,
    a real refusal) is told in the form."""
    from bot import blocks

    people(session)
    with inserts_refused(backend.db.engine, "template", session):
        values = {"name": {"name": {"value": "Order"}},
                  "sms_type": {"sms_type": {"selected_option": {"value": "notification"}}},
                  "content": {"content": {"value": "Order {1} shipped"}},
                  "notes": {"notes": {"value": None}}}
        resp = slack.submit("template_new_modal", values, AUTHOR, "international")
        assert resp.status_code == 200
        assert resp.get_json() == {"response_action": "errors",
                                   "errors": {"name": blocks.SOMETHING_WRONG}}
