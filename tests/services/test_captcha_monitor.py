"""The captcha-abuse monitor on crafted hourly data: what counts, the boundaries in
the database, thresholds from the Security page, and a missed hour caught up once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Message
from app.models.alarms import Alarm, MonitorCheckpoint
from app.services import monitors, rollups
from app.services.context import Settings
from app.services.errors import PermissionDenied, ValidationError
from tests.conftest import Backend
from tests.helpers import ctx_for, make_user
from tests.sending import conftest as sending
from tests.sending.conftest import Shop

shop = sending.shop  # the fixture: an application with effective content

HOUR = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # the hour checked
NOW = HOUR + timedelta(hours=1, seconds=5)
SETTINGS = Settings(notify_channels=("email",))


def _messages(session: Session, shop: Shop, hour: datetime, total: int, ok: int, *,
              sms_type: str = "verification", text: str = "Your code is 1") -> None:
    """Messages as the pipeline records them: rows and their rollups together."""
    rows = [Message(
        account_id=shop.app.account_id, app_id=shop.app.id, serial_no=uuid.uuid4().hex,
        request_id="r", region="international", phone_number=f"+1415555{n:04d}",
        sms_type=sms_type, content=text, status="delivered" if n < ok else "failed",
        iso_code="US", fee=1, created_at=hour + timedelta(minutes=n % 60))
        for n in range(total)]
    session.add_all(rows)
    session.flush()
    rollups.count_new(session, rows)


def _run(session: Session, backend: Backend, now: datetime = NOW) -> list[datetime]:
    return monitors.run_captcha(session, backend.redis, SETTINGS, [], now)


def _captcha_alarms(session: Session) -> list[Alarm]:
    return list(session.scalars(select(Alarm).where(Alarm.event == "captcha")))


def test_counts_only_verification_messages(shop: Shop, session: Session) -> None:
    _messages(session, shop, HOUR, 3, 2)
    _messages(session, shop, HOUR, 2, 2, sms_type="notification", text="验证码 5")
    _messages(session, shop, HOUR, 4, 4, sms_type="notification", text="Order shipped")
    _messages(session, shop, HOUR + timedelta(hours=1), 7, 7)  # the next hour
    got = monitors.verification_hourly(session, shop.app.id, HOUR)
    assert (got.volume, got.success) == (5, 4)


@pytest.mark.parametrize(("total", "ok", "yesterday", "alarm"), [
    (51, 0, 10, True),
    (50, 0, 10, False),    # exactly 50
    (100, 80, 10, False),  # exactly 80 %
    (95, 0, 50, False),    # exactly 90 % growth
    (96, 0, 50, True),
])
def test_rule_on_crafted_hours(shop: Shop, session: Session, backend: Backend, total: int,
                               ok: int, yesterday: int, alarm: bool) -> None:
    _messages(session, shop, HOUR, total, ok)
    _messages(session, shop, HOUR - timedelta(days=1), yesterday, yesterday)
    assert _run(session, backend) == [HOUR]
    found = _captcha_alarms(session)
    assert len(found) == int(alarm)
    if alarm:
        assert found[0].figures["value"] == total and found[0].app_id == shop.app.id


def test_missed_hours_are_caught_up_once(shop: Shop, session: Session,
                                         backend: Backend) -> None:
    session.add(MonitorCheckpoint(name=monitors.CAPTCHA, last_hour=HOUR - timedelta(hours=3)))
    _messages(session, shop, HOUR - timedelta(hours=1), 60, 0)  # abusive, while "down"
    assert _run(session, backend) == [HOUR - timedelta(hours=2), HOUR - timedelta(hours=1),
                                      HOUR]
    assert len(_captcha_alarms(session)) == 1
    assert _run(session, backend) == []  # nothing twice
    assert _run(session, backend, NOW + timedelta(hours=1)) == [HOUR + timedelta(hours=1)]
    assert len(_captcha_alarms(session)) == 1


def test_security_page_thresholds(shop: Shop, session: Session, backend: Backend) -> None:
    sid = shop.app.sdk_app_id
    _messages(session, shop, HOUR, 30, 0)
    monitors.set_rule(shop.ctx, sid, volume="20", success_pct="50", growth_pct="10")
    assert _run(session, backend) == [HOUR]
    assert len(_captcha_alarms(session)) == 1
    _app, rule, rows = monitors.security(shop.ctx, sid, hours=3, now=NOW)
    assert (rule.volume, rule.success_pct, rule.growth_pct) == (20, 50, 10)
    assert [r.volume for r in rows] == [0, 30, 0] and rows[1].abusive
    with pytest.raises(ValidationError) as exc:
        monitors.set_rule(shop.ctx, sid, volume="-1", success_pct="101", growth_pct="x")
    assert set(exc.value.errors) == {"volume", "success_pct", "growth_pct"}
    reader = ctx_for(session, make_user(session, "ro@example.com",
                                        presets=["SMSReadOnlyAccess"]))
    monitors.security(reader, sid, hours=1, now=NOW)
    with pytest.raises(PermissionDenied):
        monitors.set_rule(reader, sid, volume=1, success_pct=1, growth_pct=1)
    monitors.set_rule(shop.ctx, sid, volume=20, success_pct=50, growth_pct=10, enabled="")
    _messages(session, shop, HOUR + timedelta(hours=1), 30, 0)
    assert _run(session, backend, NOW + timedelta(hours=1)) == [HOUR + timedelta(hours=1)]
    assert len(_captcha_alarms(session)) == 1  # switched off
