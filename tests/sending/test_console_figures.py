"""Issue #14: the dashboard's figures per natural day in the account's zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import Account, Message
from app.models.sending import DELIVERED, SUBMITTED
from app.services import console, rollups
from app.services.errors import PermissionDenied
from tests.helpers import ctx_for, doc, make_user
from tests.sending.conftest import Shop


def _local_midnight(zone: str) -> datetime:
    now = utcnow().astimezone(ZoneInfo(zone))
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def test_days_follow_the_account_zone(shop: Shop, session: Session) -> None:
    shop.send(["+14155550101", "+14155550102", "+14155550103"])
    ids = session.scalars(select(Message.id).order_by(Message.id)).all()
    midnight = _local_midnight("Asia/Shanghai")  # the account's default zone
    when = {ids[0]: midnight + timedelta(minutes=1),  # today, just
            ids[1]: midnight - timedelta(minutes=1),  # yesterday, just
            ids[2]: midnight - timedelta(days=7)}  # before the trend starts
    for mid, at in when.items():
        session.execute(update(Message).where(Message.id == mid).values(
            created_at=at.astimezone(UTC), status=DELIVERED, fee=2))
    rollups.rebuild(session)  # the rows were moved by hand: count them again
    figures = console.daily_figures(shop.ctx)["international"]
    assert len(figures) == console.TREND_DAYS
    assert figures[-1].day == midnight.date()
    assert [(f.requests, f.successes, f.billed) for f in figures[-2:]] == [(1, 1, 2), (1, 1, 2)]
    assert sum(f.requests for f in figures) == 2
    assert figures[-1].success_rate == 1.0 and figures[0].success_rate is None
    # The same instants in another zone fall on other days.
    account = session.get(Account, shop.ctx.actor.account_id)
    assert account is not None
    account.timezone = "America/Los_Angeles"
    session.flush()
    rollups.rebuild(session)  # local days are kept by the zone at counting time
    la = console.daily_figures(shop.ctx)["international"]
    assert la[-1].day == _local_midnight("America/Los_Angeles").date()
    assert sum(f.requests for f in la) in (2, 3)  # the 7-day window moved with the zone


def test_only_the_applications_one_may_read(shop: Shop, session: Session) -> None:
    shop.send(["+14155550101"])
    session.execute(update(Message).values(status=SUBMITTED))
    rollups.rebuild(session)
    mine = ctx_for(session, make_user(session, "mine@example.com", policies=[doc(
        ("allow", ["sms:DescribeStatistics"], [f"sms:app/{shop.app.sdk_app_id}"]))]))
    other = ctx_for(session, make_user(session, "other@example.com", policies=[doc(
        ("allow", ["sms:DescribeStatistics"], ["sms:app/1400000099"]))]))
    nobody = ctx_for(session, make_user(session, "none@example.com", policies=[doc(
        ("allow", ["sms:DescribeAppList"], ["sms:app/*"]))]))
    assert console.daily_figures(mine)["international"][-1].successes == 1
    assert console.daily_figures(other)["international"][-1].requests == 0
    with pytest.raises(PermissionDenied, match="DescribeStatistics"):
        console.daily_figures(nobody)
