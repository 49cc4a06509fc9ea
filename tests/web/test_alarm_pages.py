"""Alarm history, the Security page and the contact test button on the web (issue #12)."""

from __future__ import annotations

from pathlib import Path

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models.alarms import Alarm, CaptchaRule
from app.notify.email import read_outbox
from app.services import alarms, app_config
from app.services.apps import get_app
from jobs import worker
from tests.conftest import Backend
from tests.helpers import doc, make_app, make_user, root_ctx
from tests.web.conftest import Client, soup, text_of


def _raise(session: Session, backend: Backend, sid: str, task_id: int, status: str,
           reason: str = "") -> Alarm:
    c = root_ctx(session)
    found = alarms.raise_task_event(c, backend.redis, get_app(c, sid), task_id, status, reason)
    assert found is not None
    session.commit()
    return found


def test_history_filters_acknowledge_and_escaping(root: Client, session: Session,
                                                  backend: Backend) -> None:
    sid = make_app(session)
    other = make_app(session, "Other")
    session.commit()
    a = _raise(session, backend, sid, 1, "failed", "<script>alert(1)</script>")
    _raise(session, backend, other, 2, "stopped")
    page = root.get("/alarms")
    assert page.status_code == 200 and "2" in text_of(page, "h1")
    assert "<script>alert(1)</script>" not in page.get_data(as_text=True)
    assert "&lt;script&gt;" in page.get_data(as_text=True)
    only = root.get(f"/alarms?app={sid}", htmx=True)
    assert len(soup(only).select("tbody tr[id^=alarm-]")) == 1
    assert len(soup(root.get("/alarms?event=task_stopped", htmx=True))
               .select("tbody tr[id^=alarm-]")) == 1
    bad = root.get("/alarms?app=abc&since=yesterday&event=<b>")
    assert bad.status_code == 200 and "not understood" in bad.get_data(as_text=True)
    assert root.get("/alarms?page=99999999999").status_code == 200
    one = root.get(f"/alarms?alarm={a.id}")  # where Slack's "Open in web" leads
    assert [r["id"] for r in soup(one).select("tbody tr[id^=alarm-]")] == [f"alarm-{a.id}"]
    assert "not understood" in root.get("/alarms?alarm=x1").get_data(as_text=True)
    done = root.post(f"/alarms/{a.id}/acknowledge")
    assert done.status_code == 302
    row = text_of(root.get("/alarms"), f"#alarm-{a.id} .ack")
    assert "root@example.com" in row
    assert root.post("/alarms/999999/acknowledge").status_code == 404


def test_read_only_user_sees_history_but_cannot_acknowledge(client: Client, session: Session,
                                                            backend: Backend) -> None:
    make_user(session, "root@example.com", root=True)
    sid = make_app(session)
    make_user(session, "ro@example.com", presets=["SMSReadOnlyAccess"])
    session.commit()
    a = _raise(session, backend, sid, 3, "failed")
    client.login("ro@example.com")
    page = client.get("/alarms")
    assert page.status_code == 200 and "Acknowledge" not in text_of(page, f"#alarm-{a.id}")
    assert client.post(f"/alarms/{a.id}/acknowledge").status_code == 403
    assert client.post(f"/apps/{sid}/security", {"volume": "1", "success_pct": "1",
                                                 "growth_pct": "1"}).status_code == 403


def test_security_page_saves_thresholds(root: Client, session: Session) -> None:
    sid = make_app(session)
    session.commit()
    before = utcnow()  # the page's hour is read between these two (a run may cross one)
    page = root.get(f"/apps/{sid}/security")
    after = utcnow()
    assert page.status_code == 200 and "Verification-code volume" in page.get_data(as_text=True)
    assert len(soup(page).select("#captcha-volume tbody tr")) == 24
    # Hours in the account's zone (Asia/Shanghai by default), like every other time.
    from zoneinfo import ZoneInfo

    from app.services import monitors
    first = soup(page).select_one("#captcha-volume tbody tr td")
    assert first is not None and first.get_text(strip=True) in {
        monitors.hour_floor(at).astimezone(ZoneInfo("Asia/Shanghai")).strftime(
            "%Y-%m-%d %H:00 CST") for at in (before, after)}
    bad = root.post(f"/apps/{sid}/security", {"volume": "x", "success_pct": "200",
                                              "growth_pct": "5", "enabled": "on"}, htmx=True)
    assert bad.status_code == 422 and "At most 100" in text_of(bad, "#captcha-rule")
    ok = root.post(f"/apps/{sid}/security", {"volume": "70", "success_pct": "75",
                                             "growth_pct": "120", "enabled": "on"})
    assert ok.status_code == 302
    session.expire_all()
    rule = session.scalar(select(CaptchaRule))
    assert rule is not None and (rule.volume, rule.success_pct, rule.growth_pct) == (70, 75, 120)
    assert root.get("/apps/1499999999/security").status_code == 404


def test_contact_test_button_reaches_every_channel(root: Client, session: Session, app: Flask,
                                                   instance_dir: Path) -> None:
    sid = make_app(session)
    contact = app_config.add_contact(root_ctx(session), sid, name="Ops", email="ops@example.com",
                                     mobile="+8613900000001", events=[])
    contact.mobile_confirmed_at = utcnow()
    session.commit()
    page = root.get(f"/apps/{sid}")
    assert "Send a test alarm" in page.get_data(as_text=True)
    resp = root.post(f"/apps/{sid}/contacts/{contact.id}/test")
    assert resp.status_code == 302
    worker.run(app, burst=True)
    [mail] = [m for m in read_outbox(app.config) if m["to"] == "ops@example.com"]
    assert mail["subject"] == "Test alarm for Ops"
    history = root.get("/alarms?event=test")
    cells = text_of(history, "ul.deliveries")
    assert "email → ops@example.com: sent" in cells and "sms → +8613900000001: sent" in cells
    nobody = app_config.add_contact(root_ctx(session), sid, name="Nobody",
                                    mobile="+8613900000002", events=[])
    session.commit()
    assert root.post(f"/apps/{sid}/contacts/{nobody.id}/test").status_code == 400
    assert root.post(f"/apps/{sid}/contacts/999999/test").status_code == 404


def test_history_period_is_in_the_accounts_zone(root: Client, session: Session,
                                                backend: Backend) -> None:
    """Times are shown in the account's zone (Asia/Shanghai by default), so the dates of
    the period filter are days there too, not UTC days."""
    from datetime import UTC, datetime

    sid = make_app(session)
    session.commit()
    early = _raise(session, backend, sid, 4, "failed")  # 07:30 on the 25th in Shanghai
    early.created_at = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
    late = _raise(session, backend, sid, 5, "failed")  # 23:30 on the 25th in Shanghai
    late.created_at = datetime(2026, 11, 25, 15, 30, tzinfo=UTC)
    session.commit()
    day = root.get("/alarms?since=2026-11-25&until=2026-11-25", htmx=True)
    assert [r["id"] for r in soup(day).select("tbody tr[id^=alarm-]")] == [
        f"alarm-{late.id}", f"alarm-{early.id}"]
    assert "2026-11-25 07:30" in text_of(day, f"#alarm-{early.id}")
    after = root.get("/alarms?since=2026-11-26", htmx=True)
    assert soup(after).select("tbody tr[id^=alarm-]") == []


def test_failed_deliveries_say_whether_they_are_still_retried(root: Client, session: Session,
                                                              backend: Backend) -> None:
    from app.models import Notification
    from app.models.alarms import AlarmDelivery
    from app.services import notifications

    sid = make_app(session)
    for name in ("ops", "lead"):
        app_config.add_contact(root_ctx(session), sid, name=name, email=f"{name}@example.com",
                               events=["task"])
    session.commit()
    a = _raise(session, backend, sid, 6, "failed")
    rows = session.scalars(select(Notification).join(
        AlarmDelivery, AlarmDelivery.notification_id == Notification.id).where(
        AlarmDelivery.alarm_id == a.id).order_by(Notification.id)).all()
    for n, attempts in zip(rows, (1, notifications.MAX_ATTEMPTS), strict=False):
        n.status, n.error, n.attempts = "failed", "SMTP: connection refused", attempts
    session.commit()
    shown = text_of(root.get(f"/alarms?alarm={a.id}"), f"#alarm-{a.id} .deliveries")
    assert "1 try so far, retried with back-off" in shown
    assert f"gave up after {notifications.MAX_ATTEMPTS} tries" in shown
    log = root.get("/notifications").get_data(as_text=True)
    assert "1 try so far, retried with back-off" in log
    assert f"gave up after {notifications.MAX_ATTEMPTS} tries" in log


def test_the_notification_log_shows_what_the_alarm_history_shows(
        client: Client, session: Session, app: Flask) -> None:
    """Found from outside: a user denied one application saw its alarms' deliveries and
    the whole e-mail outbox (contact names and addresses) on /notifications, which
    checked DescribeAlarms on every application only; a user allowed one application
    was refused the page outright, though /alarms showed them their own."""
    make_user(session, "root@example.com", root=True)
    c = root_ctx(session)
    ids = [make_app(session, "One"), make_app(session, "Two")]
    contacts = [app_config.add_contact(c, sid, name=f"Ops {sid}", email=f"{n}@example.com",
                                       events=[]) for sid, n in zip(ids, ["one", "two"],
                                                                     strict=True)]
    make_user(session, "rdeny@example.com", policies=[doc(
        ("allow", ["sms:Describe*"], ["sms:app/*"]),
        ("deny", ["sms:*"], [f"sms:app/{ids[1]}"]))])
    make_user(session, "one@example.com", policies=[doc(
        ("allow", ["sms:*"], [f"sms:app/{ids[0]}"]))])
    session.commit()
    client.login("root@example.com")
    client.get("/apps")
    for sid, contact in zip(ids, contacts, strict=True):
        assert client.post(f"/apps/{sid}/contacts/{contact.id}/test").status_code == 302
    worker.run(app, burst=True)
    shown = client.get("/notifications").get_data(as_text=True)
    assert "one@example.com" in shown and "two@example.com" in shown
    for user in ("rdeny@example.com", "one@example.com"):
        other = Client(app.test_client())
        assert other.login(user).status_code == 302
        page = other.get("/notifications")
        shown = page.get_data(as_text=True)
        assert page.status_code == 200, user
        assert "one@example.com" in shown and "two@example.com" not in shown, user
