"""Credit package expiry is a date in the account's zone, and sending agrees."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from app.models import CreditPackage
from app.services import accounts, packages
from tests.sending.conftest import Shop

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _zone(shop: Shop, name: str) -> None:
    accounts.update_settings(shop.ctx, account_type="enterprise", timezone=name,
                             intl_daily_quota=100, reply_callback_url="",
                             reply_callback_enabled=False)


def test_package_lasts_to_the_end_of_its_day_in_the_account_zone(shop: Shop,
                                                                 session: Session) -> None:
    today = datetime.now(SHANGHAI).date()
    p = packages.add(shop.ctx, name="Today", size="1", expires_on=today.isoformat())
    assert p.expires_at == datetime.combine(today, time.max, tzinfo=SHANGHAI)
    assert packages.expiry_date(p, SHANGHAI) == today
    assert shop.codes(["13800000001"], template="mainland") == ["Ok"]  # still usable today
    session.expire_all()
    assert p.remaining == 0


def test_expired_package_is_not_consumed(shop: Shop, session: Session) -> None:
    yesterday_end = datetime.combine(datetime.now(SHANGHAI).date(), time.min,
                                     tzinfo=SHANGHAI) - timedelta(microseconds=1)
    gone = CreditPackage(account_id=shop.app.account_id, name="gone", size=5, remaining=5,
                         expires_at=yesterday_end.astimezone(UTC))
    session.add(gone)
    session.flush()
    assert shop.codes(["13800000001"], template="mainland") == [
        "FailedOperation.InsufficientBalanceInSmsPackage"]
    session.expire_all()
    assert gone.remaining == 5
    assert packages.balance(packages.packages(shop.ctx)) == 0


def test_changing_the_zone_keeps_expiry_dates(shop: Shop, session: Session) -> None:
    p = packages.add(shop.ctx, name="Year", size="10", expires_on="2027-12-31")
    _zone(shop, "America/Los_Angeles")
    session.flush()
    la = ZoneInfo("America/Los_Angeles")
    assert packages.expiry_date(p, la) == datetime(2027, 12, 31).date()
    assert p.expires_at.astimezone(la).time() == time.max
    _zone(shop, "Asia/Shanghai")
    assert p.expires_at == datetime.combine(datetime(2027, 12, 31).date(), time.max,
                                            tzinfo=SHANGHAI)
