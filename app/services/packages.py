"""Credit packages (SPEC.md §6): mainland billed items bought in advance.

An expiry is a date in the account's time zone: the package can be used until the end
of that day there. It is stored as that instant (`expires_at`), so sending compares
one timestamp, and it moves with the account when the account's zone changes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo
from zoneinfo import ZoneInfo

from sqlalchemy import select

from app.db import utcnow
from app.models import Account, CreditPackage
from app.services import audit
from app.services.context import Ctx
from app.services.errors import ValidationError
from app.services.values import text, whole_number


def packages(ctx: Ctx) -> list[CreditPackage]:
    ctx.actor.require("DescribePackageList")
    return list(ctx.db.scalars(select(CreditPackage).where(
        CreditPackage.account_id == ctx.actor.account_id).order_by(CreditPackage.expires_at)))


def zone_named(name: str) -> tzinfo:
    """An account's zone by its name (UTC for one zoneinfo does not know)."""
    from app.services.accounts import time_zones  # accounts imports this module

    return ZoneInfo(name) if name in time_zones() else UTC


def account_zone(account: Account | None) -> tzinfo:
    return zone_named(account.timezone if account is not None else "UTC")


def end_of_day(day: date, zone: tzinfo) -> datetime:
    """The last instant of `day` in `zone`, in UTC."""
    return datetime.combine(day, time.max, tzinfo=zone).astimezone(UTC)


def expiry_date(package: CreditPackage, zone: tzinfo) -> date:
    """The day a package expires on, as entered, in the account's zone."""
    return package.expires_at.astimezone(zone).date()


def rezone(ctx: Ctx, account: Account, old: str, new: str) -> None:
    """The account's zone changed: each package keeps its expiry date, now ending at
    midnight in the new zone. Part of the settings change that triggers it."""
    if old == new:
        return
    before, after = zone_named(old), zone_named(new)
    for p in ctx.db.scalars(select(CreditPackage).where(CreditPackage.account_id == account.id)):
        p.expires_at = end_of_day(expiry_date(p, before), after)


def balance(items: list[CreditPackage]) -> int:
    now = utcnow()
    return sum(p.remaining for p in items if p.expires_at > now)


def add(ctx: Ctx, *, name: str, size: str | int, expires_on: str) -> CreditPackage:
    ctx.actor.require("ModifyPackage")
    errors: dict[str, str] = {}
    name = text(name, "name", errors, max_len=64, required=True)
    amount = whole_number(size, "size", errors, required=True)
    if amount == 0:
        errors["size"] = "At least 1 billed item."
    expires = None
    zone = account_zone(ctx.db.get(Account, ctx.actor.account_id))
    try:
        day = datetime.strptime(expires_on.strip(), "%Y-%m-%d").date()
        expires = end_of_day(day, zone)  # usable through that whole day, locally
        if expires <= utcnow():
            errors["expires_on"] = "The expiry date has passed."
    except ValueError:
        errors["expires_on"] = "Give the expiry date as YYYY-MM-DD."
    if errors:
        raise ValidationError(errors)
    assert amount is not None and expires is not None
    package = CreditPackage(account_id=ctx.actor.account_id, name=name, size=amount,
                            remaining=amount, expires_at=expires)
    ctx.db.add(package)
    ctx.db.flush()
    audit.record(ctx, "ModifyPackage", "package", package.id, None,
                 {"name": name, "size": amount, "expires_on": expires_on.strip()})
    return package


def set_alarm_threshold(ctx: Ctx, value: str | int | None) -> Account:
    ctx.actor.require("ModifyPackage")
    errors: dict[str, str] = {}
    threshold = whole_number(value, "package_alarm_threshold", errors)
    if errors:
        raise ValidationError(errors)
    account = ctx.db.get(Account, ctx.actor.account_id)
    assert account is not None
    audit.record_changes(ctx, "ModifyPackage", "account", account.id,
                         {"package_alarm_threshold": account.package_alarm_threshold},
                         {"package_alarm_threshold": threshold})
    account.package_alarm_threshold = threshold
    return account
