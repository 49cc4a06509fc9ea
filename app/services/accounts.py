"""The account: bootstrap, settings, and the actor a user acts as."""

from __future__ import annotations

import functools
import json
import zoneinfo
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import Account, Application, Policy, User
from app.models.accounts import ACCOUNT_TYPES, INDIVIDUAL
from app.services import audit, netguard, packages, rollups
from app.services.access import PRESETS, Actor, parse_policy
from app.services.context import Ctx
from app.services.errors import ValidationError
from app.services.limits import Limiter
from app.services.values import flag, text, whole_number

# Frequency caps for individual (non-enterprise) accounts (fixed).
INDIVIDUAL_FREQ_CAPS = {"30s": 1, "hour": 5, "day": 10}


def ensure_account(db: Session, name: str = "smsops") -> Account:
    """The installation's account, created with the preset policies on first use."""
    account = db.scalar(select(Account).order_by(Account.id).limit(1))
    if account is None:
        account = Account(name=name)
        db.add(account)
        db.flush()
    existing = set(db.scalars(select(Policy.name).where(Policy.account_id == account.id)))
    for pname, (description, document) in PRESETS.items():
        if pname not in existing:
            db.add(
                Policy(
                    account_id=account.id,
                    name=pname,
                    description=description,
                    document=json.dumps(document, indent=2),
                    preset=True,
                )
            )
    db.flush()
    return account


def actor_for(user: User) -> Actor:
    statements: tuple = ()
    for policy in user.policies:
        statements += parse_policy(policy.document)
    return Actor(
        account_id=user.account_id,
        label=user.email,
        user_id=user.id,
        is_root=user.is_root,
        statements=statements,
    )


def system_actor(account: Account, label: str = "cli") -> Actor:
    """The operator at the server's console: all rights, audited under `label`."""
    return Actor(account_id=account.id, label=label, is_root=True)


@functools.cache
def time_zones() -> frozenset[str]:
    """The IANA names this system knows: the only values an account's zone may take.
    Checked as set membership, because zoneinfo.ZoneInfo treats any other string as a
    file name (a long one raises OSError, "../x" ValueError)."""
    # "localtime" is the server's own zone, "Factory" a placeholder: neither is a place.
    return frozenset(zoneinfo.available_timezones() - {"localtime", "Factory"})


def get_settings(ctx: Ctx) -> Account:
    ctx.actor.require("DescribeAccountSettings")
    account = ctx.db.get(Account, ctx.actor.account_id)
    assert account is not None
    return account


def _snapshot(a: Account) -> dict[str, Any]:
    return {
        "account_type": a.account_type,
        "timezone": a.timezone,
        "intl_daily_quota": a.intl_daily_quota,
        "reply_callback_url": a.reply_callback_url,
        "reply_callback_enabled": a.reply_callback_enabled,
    }


REZONE_JOB = "jobs.stats.rezone"
CARRY_FREQUENCY_JOB = "jobs.stats.carry_frequency"  # a scan of Redis: not in a request
# Writers hold the zone they read for a batch (a few seconds) or a config cache's life
# (5 s): after this, none counts by the old one.
REZONE_AGAIN_S = 60


def zone_changed(ctx: Ctx, limiter: Limiter, old_zone: str, new_zone: str) -> None:
    """After a committed change of time zone: today's day counters move to the new
    zone's date (sending.carry_day_counters). After the commit: a change that did not
    happen must not fill the counters of a date still to come."""
    from app.services import sending

    ctx.actor.require("ModifyAccountSettings")
    sending.carry_day_counters(ctx.db, limiter, ctx.actor.account_id, old_zone, new_zone,
                               utcnow())
    ctx.defer(CARRY_FREQUENCY_JOB, ctx.actor.account_id, old_zone, new_zone)


def update_settings(
    ctx: Ctx,
    *,
    account_type: str,
    timezone: str,
    intl_daily_quota: str | int,
    reply_callback_url: str,
    reply_callback_enabled: bool | str,
) -> Account:
    ctx.actor.require("ModifyAccountSettings")
    account = ctx.db.get(Account, ctx.actor.account_id)
    assert account is not None
    errors: dict[str, str] = {}
    if account_type not in ACCOUNT_TYPES:
        errors["account_type"] = "Choose enterprise or individual."
    elif account_type == INDIVIDUAL:
        over = _apps_over_individual_caps(ctx.db, account.id)
        if over:
            errors["account_type"] = (
                "These applications have frequency limits above the individual caps "
                f"(1/30 s, 5/hour, 10/day): {', '.join(over)}. Lower them first."
            )
    if timezone not in time_zones():
        errors["timezone"] = "Unknown time zone; choose an IANA name such as Asia/Shanghai."
    quota = whole_number(intl_daily_quota, "intl_daily_quota", errors, required=True)
    reply_callback_enabled = flag(reply_callback_enabled, "reply_callback_enabled", errors)
    url = text(reply_callback_url, "reply_callback_url", errors, max_len=2048) or None
    if url and "reply_callback_url" not in errors:
        problem = netguard.check_callback_url(url, ctx.settings.allow_private_callbacks,
                                              ctx.settings.callback_resolver)
        if problem:
            errors["reply_callback_url"] = problem
    elif reply_callback_enabled:
        errors["reply_callback_url"] = "Enter a URL to switch the reply callback on."
    if quota is not None and "intl_daily_quota" not in errors:
        over_apps = ctx.db.scalars(
            select(Application.sdk_app_id).where(
                Application.account_id == account.id, Application.intl_daily_limit > quota
            )
        ).all()
        if over_apps:
            errors["intl_daily_quota"] = (
                "Applications have an international limit above this quota: "
                + ", ".join(over_apps)
            )
    if errors:
        raise ValidationError(errors)
    before = _snapshot(account)
    packages.rezone(ctx, account, account.timezone, timezone)  # expiry dates stay dates
    rezoned = timezone != account.timezone
    account.account_type = account_type
    account.timezone = timezone
    account.intl_daily_quota = quota  # type: ignore[assignment]
    account.reply_callback_url = url
    account.reply_callback_enabled = reply_callback_enabled
    ctx.db.flush()
    if rezoned:
        from app.services import tasks  # tasks reads accounts' settings: imported late

        rollups.rezone(ctx.db, account.id, timezone)  # past days by the new zone's dates
        tasks.rezoned(ctx, account.id)
        # Once more when the writers that read the old zone are done (rollups.rezone).
        ctx.defer(REZONE_JOB, account.id, timezone, utcnow() + timedelta(seconds=REZONE_AGAIN_S))
    audit.record_changes(ctx, "ModifyAccountSettings", "account", account.id, before,
                         _snapshot(account))
    return account


def _apps_over_individual_caps(db: Session, account_id: int) -> list[str]:
    caps = INDIVIDUAL_FREQ_CAPS
    apps = db.scalars(select(Application).where(Application.account_id == account_id)).all()
    # A rule that is off still has its cap applied when sending; only enabled
    # rules with a higher number conflict.
    return [
        a.sdk_app_id
        for a in apps
        if (a.freq_30s_enabled and a.freq_30s_limit > caps["30s"])
        or (a.freq_hour_enabled and a.freq_hour_limit > caps["hour"])
        or (a.freq_day_enabled and a.freq_day_limit > caps["day"])
    ]
