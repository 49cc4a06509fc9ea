"""Alarm contacts on the web: confirming a mobile with a code texted through the
gateway (run by a real RQ worker), who may route review results, and the
notification page's times in the account's zone (issue #8)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Account, AlarmContact, Notification
from app.notify.email import read_outbox
from app.queue import enqueue_deferred
from app.services import app_config, notifications
from jobs import worker
from tests.helpers import ctx_for, doc, make_app, make_user, root_ctx
from tests.jobs.test_alarm_sms import CountingSimulator
from tests.web.conftest import Client, soup, text_of


def test_contact_mobile_is_confirmed_on_the_page(root: Client, session: Session, app: Flask,
                                                 instance_dir: Path) -> None:
    gateway = CountingSimulator(instance_dir / "simulator.jsonl")
    app.extensions["gateway"] = gateway
    sid = make_app(session)
    session.commit()
    root.get(f"/apps/{sid}")
    added = root.post(f"/apps/{sid}/contacts", {"name": "Ops", "mobile": "+8613900000001",
                                                "events": ["threshold"]}, htmx=True)
    assert added.status_code == 200
    assert "unconfirmed" in text_of(added, ".mobile-state")
    contact_id = session.scalar(select(AlarmContact.id))
    early = root.post(f"/apps/{sid}/contacts/{contact_id}/confirm", {"contact_id": contact_id,
                                                                     "code": "123456"}, htmx=True)
    assert early.status_code == 422 and "Send a code" in text_of(early, ".error")

    sent = root.post(f"/apps/{sid}/contacts/{contact_id}/code", htmx=True)
    assert sent.status_code == 200 and "texted to +8613900000001" in text_of(sent, ".notice")
    again = root.post(f"/apps/{sid}/contacts/{contact_id}/code", htmx=True)
    assert again.status_code == 422 and "Wait" in text_of(again, ".error")
    assert worker.run(app, burst=True)
    [(_to, text)] = gateway.received()
    code = text.split("code is ")[1][:6]

    wrong = "000000" if code != "000000" else "111111"
    bad = root.post(f"/apps/{sid}/contacts/{contact_id}/confirm",
                    {"contact_id": contact_id, "code": wrong}, htmx=True)
    assert bad.status_code == 422 and "Wrong code; 4 tries left" in text_of(bad, ".error")
    session.expire_all()
    assert session.get(AlarmContact, contact_id).confirm_attempts == 1  # kept, not rolled back
    good = root.post(f"/apps/{sid}/contacts/{contact_id}/confirm",
                     {"contact_id": contact_id, "code": code}, htmx=True)
    assert good.status_code == 200 and "Mobile confirmed" in text_of(good, ".notice")
    assert text_of(good, ".mobile-state") == "confirmed"
    assert not soup(good).select("form[action$='/confirm']")


def test_scoped_user_cannot_route_review_results(client: Client, session: Session) -> None:
    sid = make_app(session)
    make_user(session, "one@example.com", policies=[doc(("allow", ["sms:*"], [f"sms:app/{sid}"]))])
    session.commit()
    client.login("one@example.com")
    client.get(f"/apps/{sid}")
    resp = client.post(f"/apps/{sid}/contacts", {"name": "Mine", "email": "m@example.com",
                                                 "events": ["review", "threshold"]}, htmx=True)
    assert resp.status_code == 422
    assert "Review results cover the whole account" in text_of(resp, "fieldset.events .error")
    assert session.scalar(select(AlarmContact.id)) is None


def test_review_note_when_the_saver_cannot_read_content(root: Client, session: Session) -> None:
    sid = make_app(session)
    reader = make_user(session, "lead@example.com", presets=["SMSFullAccess"])
    app_config.add_contact(ctx_for(session, reader), sid, name="Lead", email="l@example.com",
                           events=["review"])
    session.commit()
    page = root.get(f"/apps/{sid}")
    assert not soup(page).select(".review-note")
    reader.policies = []  # the saver loses their rights
    session.commit()
    page = root.get(f"/apps/{sid}")
    assert "do not reach this contact" in text_of(page, ".review-note")


def test_outbox_times_are_in_the_account_zone(root: Client, session: Session,
                                              app: Flask) -> None:
    c = root_ctx(session)
    account = c.db.get(Account, c.actor.account_id)
    assert account is not None
    account.timezone = "America/New_York"
    notifications.notify(c, "review", [("email", "ops@example.com")], "Zoned", "Body")
    session.commit()
    enqueue_deferred(app.extensions["redis"], c.deferred)
    assert worker.run(app, burst=True)
    [mail] = read_outbox(app.config)
    sent = mail["date"]
    assert isinstance(sent, datetime) and sent.utcoffset() is not None
    local = sent.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M:%S %Z")
    page = root.get("/notifications")
    outbox = text_of(page, "#outbox")
    assert local in outbox and ("EST" in local or "EDT" in local)
    assert "+0000" not in outbox  # the raw UTC header is not shown
    row = session.scalars(select(Notification)).one()
    assert row.status == "sent"


def test_refused_notifications_are_listed_with_their_reason(root: Client,
                                                            session: Session) -> None:
    c = root_ctx(session)
    notifications.notify(c, "review", [("email", "a@example.com\r\nBcc: x@example.com")],
                         "Hello", "Body")
    session.commit()
    page = root.get("/notifications")
    assert "Not sent Refused: the recipient is not one plain email address." in text_of(
        page, "table")
