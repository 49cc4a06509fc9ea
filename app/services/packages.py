"""Credit packages (SPEC.md §6): mainland billed items bought in advance."""

from __future__ import annotations

from datetime import UTC, datetime, time

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
    try:
        day = datetime.strptime(expires_on.strip(), "%Y-%m-%d").date()
        expires = datetime.combine(day, time(23, 59, 59), tzinfo=UTC)
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
