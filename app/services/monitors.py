"""Hourly monitors: captcha abuse per application (SPEC.md §8) and expired credit
packages. Run by jobs/alarms.py from RQ's scheduler; a checkpoint in the database
keeps the last finished hour, so hours missed while workers were down are each
checked once when they come back, never skipped and never checked twice.

Hourly counts come through ONE function, `verification_hourly`, which reads the
statistics rollups (never the message table).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis as redis_lib
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import Application, CreditPackage, StatRollup
from app.models.alarms import CaptchaRule, MonitorCheckpoint
from app.services import alarms, audit
from app.services.apps import get_app
from app.services.context import Ctx, Settings
from app.services.errors import ValidationError
from app.services.values import flag, whole_number
from app.sms import alarm_texts, captcha, outcomes

CAPTCHA = "captcha"
MAX_CATCH_UP_HOURS = 48  # longer outages: older hours are past helping anyone
HOUR = timedelta(hours=1)


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class HourlyCount:
    volume: int
    success: int


def verification_hourly(session: Session, app_id: int, hour_start: datetime) -> HourlyCount:
    """Verification-code messages of one application in one hour (UTC), from the
    statistics rollups (the figures of the verification-volume page): requests, and
    successes = accepted by the carrier (SPEC.md §7)."""
    row = session.execute(select(
        func.coalesce(func.sum(StatRollup.count), 0),
        func.coalesce(func.sum(case((StatRollup.outcome.in_(outcomes.SUCCESS),
                                     StatRollup.count), else_=0)), 0),
    ).where(StatRollup.app_id == app_id, StatRollup.hour == hour_start,
            StatRollup.verification.is_(True))).one()
    return HourlyCount(int(row[0]), int(row[1]))


def _rule(db: Session, app_id: int) -> CaptchaRule:
    found = db.get(CaptchaRule, app_id)
    return found if found is not None else CaptchaRule(app_id=app_id, enabled=True, volume=50,
                                                       success_pct=80, growth_pct=90)


# --- the Security page --------------------------------------------------------

@dataclass(frozen=True)
class HourRow:
    hour: datetime
    volume: int
    success: int
    success_rate: float | None
    growth: float | None
    abusive: bool


def security(ctx: Ctx, sdk_app_id: str, hours: int = 24,
             now: datetime | None = None) -> tuple[Application, CaptchaRule, list[HourRow]]:
    """The rule and the hourly verification-code volume of the last `hours` hours."""
    app = get_app(ctx, sdk_app_id, "DescribeAlarms")
    ctx.actor.require("DescribeAlarms", app.sdk_app_id)
    rule = _rule(ctx.db, app.id)
    last = hour_floor(now or utcnow())
    out = []
    for n in range(hours):
        hour = last - n * HOUR
        count = verification_hourly(ctx.db, app.id, hour)
        previous = verification_hourly(ctx.db, app.id, hour - timedelta(days=1))
        h = captcha.Hour(count.volume, count.success, previous.volume)
        out.append(HourRow(hour, count.volume, count.success, h.success_rate, h.growth,
                           captcha.abusive(h, _pure(rule))))
    return app, rule, out


def _pure(rule: CaptchaRule) -> captcha.Rule:
    return captcha.Rule(rule.volume, rule.success_pct, rule.growth_pct)


def set_rule(ctx: Ctx, sdk_app_id: str, *, volume: Any, success_pct: Any, growth_pct: Any,
             enabled: Any = True) -> CaptchaRule:
    app = get_app(ctx, sdk_app_id, "ModifyAlarms")
    ctx.actor.require("ModifyAlarms", app.sdk_app_id)
    errors: dict[str, str] = {}
    values = {"volume": whole_number(volume, "volume", errors, required=True),
              "success_pct": whole_number(success_pct, "success_pct", errors, required=True),
              "growth_pct": whole_number(growth_pct, "growth_pct", errors, required=True)}
    on = flag(enabled, "enabled", errors)
    for name, top in (("volume", 10_000_000), ("success_pct", 100), ("growth_pct", 100_000)):
        v = values[name]
        if name not in errors and v is not None and v > top:
            errors[name] = f"At most {top:,}."
    if errors:
        raise ValidationError(errors)
    rule = ctx.db.get(CaptchaRule, app.id)
    before = None
    if rule is None:
        rule = CaptchaRule(app_id=app.id)
        ctx.db.add(rule)
    else:
        before = {"volume": rule.volume, "success_pct": rule.success_pct,
                  "growth_pct": rule.growth_pct, "enabled": rule.enabled}
    rule.volume, rule.success_pct, rule.growth_pct = (
        values["volume"], values["success_pct"], values["growth_pct"])  # type: ignore[assignment]
    rule.enabled = on
    ctx.db.flush()
    audit.record_changes(ctx, "ModifyAlarms:captcha", "app", app.sdk_app_id, before or {},
                         {"volume": rule.volume, "success_pct": rule.success_pct,
                          "growth_pct": rule.growth_pct, "enabled": rule.enabled})
    return rule


# --- the hourly run -----------------------------------------------------------

def due_hours(db: Session, name: str, now: datetime) -> list[datetime]:
    """Finished hours not checked yet, oldest first (at most MAX_CATCH_UP_HOURS)."""
    last_finished = hour_floor(now) - HOUR
    checkpoint = db.get(MonitorCheckpoint, name)
    if checkpoint is None:
        return [last_finished]
    start = max(checkpoint.last_hour + HOUR, last_finished - (MAX_CATCH_UP_HOURS - 1) * HOUR)
    hours = []
    while start <= last_finished:
        hours.append(start)
        start += HOUR
    return hours


def _done(db: Session, name: str, hour: datetime) -> None:
    checkpoint = db.get(MonitorCheckpoint, name)
    if checkpoint is None:
        db.add(MonitorCheckpoint(name=name, last_hour=hour))
    elif checkpoint.last_hour < hour:
        checkpoint.last_hour = hour
    db.flush()


def check_captcha_hour(db: Session, conn: redis_lib.Redis, settings: Settings,
                       hour: datetime, deferred: list[tuple[str, tuple[Any, ...]]]) -> int:
    """Every application's rule on one finished hour; returns how many alarms."""
    raised = 0
    for app in db.scalars(select(Application).order_by(Application.id)).all():
        rule = _rule(db, app.id)
        if not rule.enabled:
            continue
        count = verification_hourly(db, app.id, hour)
        if count.volume <= rule.volume:  # the cheap test first: most hours stop here
            continue
        previous = verification_hourly(db, app.id, hour - timedelta(days=1))
        h = captcha.Hour(count.volume, count.success, previous.volume)
        if not captcha.abusive(h, _pure(rule)):
            continue
        ctx = alarms.system_ctx(db, app.account_id, settings)
        if ctx is None:
            continue
        rate = h.success_rate or 0.0
        growth = "new traffic" if h.growth is None else f"{h.growth:.0f}% growth"
        found = alarms.raise_alarm(
            ctx, conn, "captcha", period=f"{app.id}:{hour:%Y%m%d%H}", ttl_s=3 * 86400, app=app,
            subject=f"Unusual verification-code traffic in {app.name}",
            body=(f"{app.name} ({app.sdk_app_id}) sent {count.volume:,} verification-code "
                  f"messages between {hour:%Y-%m-%d %H:00} and {hour + HOUR:%H:00} UTC: "
                  f"{rate:.1f}% successful, {growth} over the same hour yesterday "
                  f"({previous.volume:,}). Thresholds: volume > {rule.volume:,}, success "
                  f"< {rule.success_pct}%, growth > {rule.growth_pct}%."),
            sms=alarm_texts.render("captcha_figures", app=app.sdk_app_id, used=count.volume,
                                   pct=min(int(rate), 100)),
            figures={"value": count.volume, "threshold": rule.volume,
                     "unit": "verification codes in the hour", "hour": hour.isoformat(),
                     "success_pct": round(rate, 1), "previous": previous.volume})
        deferred.extend(ctx.deferred)
        raised += found is not None
    return raised


def run_captcha(db: Session, conn: redis_lib.Redis, settings: Settings,
                deferred: list[tuple[str, tuple[Any, ...]]],
                now: datetime | None = None) -> list[datetime]:
    """Check each finished hour not checked yet; returns the hours checked. The
    caller commits (one unit of work), then enqueues `deferred`."""
    hours = due_hours(db, CAPTCHA, now or utcnow())
    for hour in hours:
        check_captcha_hour(db, conn, settings, hour, deferred)
        _done(db, CAPTCHA, hour)
    return hours


def check_packages(db: Session, conn: redis_lib.Redis, settings: Settings,
                   deferred: list[tuple[str, tuple[Any, ...]]],
                   now: datetime | None = None) -> int:
    """A package that expired in the last week with items left: once per package."""
    now = now or utcnow()
    raised = 0
    for p in db.scalars(select(CreditPackage).where(
            CreditPackage.expires_at <= now,
            CreditPackage.expires_at > now - timedelta(days=7)).order_by(CreditPackage.id)):
        ctx = alarms.system_ctx(db, p.account_id, settings)
        if ctx is None:
            continue
        left = sum(q.remaining for q in db.scalars(select(CreditPackage).where(
            CreditPackage.account_id == p.account_id, CreditPackage.expires_at > now)))
        found = alarms.raise_alarm(
            ctx, conn, "package_expired", period=f"{p.account_id}:{p.id}", ttl_s=8 * 86400,
            app=None, subject=f"Credit package “{' '.join(p.name.split())}” expired",
            body=(f"The package “{p.name}” expired on {p.expires_at:%Y-%m-%d %H:%M} UTC with "
                  f"{p.remaining:,} billed items unused; {left:,} mainland billed items are "
                  "left in live packages."),
            sms=alarm_texts.render("package_expired", left=left),
            figures={"value": left, "unit": "billed items left", "expired": p.remaining})
        deferred.extend(ctx.deferred)
        raised += found is not None
    return raised
