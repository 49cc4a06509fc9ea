"""Figures counted straight from the message table, by rules written out again here
(not imported from the code under test), to check the rollups against."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    Account,
    Message,
    SendTaskFigure,
    StatAppsDaily,
    StatCodesDaily,
    StatCountriesDaily,
    StatRollup,
    StatRollupDaily,
    StatTotalsDaily,
    StatTotalsHourly,
)

_FAIL_OUTCOMES = {"rejected", "refused", "failed", "no_receipt", "unknown"}
OUTCOMES = ("accepted", "rejected", "submitted", "refused", "delivered", "failed",
            "no_receipt", "unknown")


def outcome_of(m: Message) -> str:
    if m.status in ("accepted", "submitting"):
        return "accepted"
    if m.status == "failed":
        return "failed" if m.receipt_at is not None else "refused"
    return m.status


def _each(session: Session) -> Iterator[tuple[Any, ...]]:
    """(UTC hour, local day, app, region, country, signature, template, type, code?,
    outcome, error, carrier, billed items) per message."""
    zones = {a.id: ZoneInfo(a.timezone) for a in session.scalars(select(Account))}
    for m in session.scalars(select(Message)):
        out = outcome_of(m)
        hour = m.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        day = m.created_at.astimezone(zones[m.account_id]).date()
        code = m.sms_type == "verification" or bool(
            re.search(r"\bcaptcha\b|\bcode\b|验证码", m.content, re.I))
        yield (hour, day, m.app_id, m.region, m.iso_code, m.signature_id or 0,
               m.template_id or 0, m.sms_type, code, out,
               (m.error_code or "") if out in _FAIL_OUTCOMES else "",
               (m.carrier_code or "") if out == "failed" else "", m.fee)


def direct(session: Session, daily: bool = False) -> Counter[tuple[Any, ...]]:
    """(hour, app, region, country, signature, template, type, code?, outcome, error,
    carrier) → [count, billed], one message at a time (by local day if `daily`)."""
    found: Counter[tuple[Any, ...]] = Counter()
    for hour, day, *key, fee in _each(session):
        k = (day if daily else hour, *key)
        found[(*k, "count")] += 1
        found[(*k, "billed")] += fee
    return +found


def rolled(session: Session, daily: bool = False) -> Counter[tuple[Any, ...]]:
    found: Counter[tuple[Any, ...]] = Counter()
    rows: Any = session.scalars(select(StatRollupDaily if daily else StatRollup))
    for r in rows:
        key = (r.day if daily else r.hour, r.app_id, r.region, r.iso_code, r.signature_id,
               r.template_id, r.sms_type, r.verification, r.outcome, r.error_code, r.carrier_code)
        found[(*key, "count")] += r.count
        found[(*key, "billed")] += r.billed
    return +found


_SUCCESS = {"submitted", "delivered", "failed", "no_receipt"}


def direct_narrow(session: Session) -> dict[str, Counter[tuple[Any, ...]]]:
    """The narrow tables' figures, one message at a time: table → (key, column) → n."""
    found: dict[str, Counter[tuple[Any, ...]]] = {
        "totals_hourly": Counter(), "totals_daily": Counter(), "codes_daily": Counter(),
        "apps_daily": Counter(), "countries_daily": Counter()}
    for hour, day, app, region, iso, _s, _t, _ty, code, out, err, carrier, fee in _each(session):
        for table, key in (("totals_hourly", (hour, app, region, code)),
                           ("totals_daily", (day, app, region, iso)),
                           ("apps_daily", (day, app, region)),
                           ("countries_daily", (day, region, iso))):
            found[table][(*key, out)] += 1
            found[table][(*key, "billed")] += fee if out in _SUCCESS else 0
        if out in _FAIL_OUTCOMES:
            found["codes_daily"][(day, app, region, out, err, carrier)] += 1
    return {k: +v for k, v in found.items()}


def rolled_narrow(session: Session) -> dict[str, Counter[tuple[Any, ...]]]:
    found: dict[str, Counter[tuple[Any, ...]]] = {
        "totals_hourly": Counter(), "totals_daily": Counter(), "codes_daily": Counter(),
        "apps_daily": Counter(), "countries_daily": Counter()}
    keys = {"totals_hourly": lambda r: (r.hour, r.app_id, r.region, r.verification),
            "totals_daily": lambda r: (r.day, r.app_id, r.region, r.iso_code),
            "apps_daily": lambda r: (r.day, r.app_id, r.region),
            "countries_daily": lambda r: (r.day, r.region, r.iso_code)}
    for table, model in (("totals_hourly", StatTotalsHourly), ("totals_daily", StatTotalsDaily),
                         ("apps_daily", StatAppsDaily),
                         ("countries_daily", StatCountriesDaily)):
        for r in session.scalars(select(model)):
            key = keys[table](r)
            for column in (*OUTCOMES, "billed"):
                found[table][(*key, column)] += getattr(r, column)
    for c in session.scalars(select(StatCodesDaily)):
        found["codes_daily"][(c.day, c.app_id, c.region, c.outcome, c.error_code,
                              c.carrier_code)] += c.count
    return {k: +v for k, v in found.items()}


def agree(session: Session) -> None:
    """Every rollup table equals its direct count (and there is something to count)."""
    expected = direct(session)
    assert expected
    assert rolled(session) == expected
    assert rolled(session, daily=True) == direct(session, daily=True)
    assert rolled_narrow(session) == direct_narrow(session)


def figures_direct(session: Session) -> Counter[tuple[Any, ...]]:
    """Each bulk task's messages per (outcome, carrier code of a failed receipt)."""
    found: Counter[tuple[Any, ...]] = Counter()
    for m in session.scalars(select(Message).where(Message.task_id.is_not(None))):
        out = outcome_of(m)
        found[(m.task_id, out, (m.carrier_code or "")[:64] if out == "failed" else "")] += 1
    return +found


def figures(session: Session) -> Counter[tuple[Any, ...]]:
    found: Counter[tuple[Any, ...]] = Counter()
    for f in session.scalars(select(SendTaskFigure)):
        found[(f.task_id, f.outcome, f.carrier_code)] += f.count
    return +found
