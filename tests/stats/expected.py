"""Figures counted straight from the message table, by rules written out again here
(not imported from the code under test), to check the rollups against."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Account, Message, StatRollup, StatRollupDaily

_FAIL_OUTCOMES = {"rejected", "refused", "failed", "no_receipt", "unknown"}


def outcome_of(m: Message) -> str:
    if m.status in ("accepted", "submitting"):
        return "accepted"
    if m.status == "failed":
        return "failed" if m.receipt_at is not None else "refused"
    return m.status


def direct(session: Session, daily: bool = False) -> Counter[tuple[Any, ...]]:
    """(hour, app, region, country, signature, template, type, code?, outcome, error,
    carrier) → [count, billed], one message at a time (by local day if `daily`)."""
    found: Counter[tuple[Any, ...]] = Counter()
    zones = {a.id: ZoneInfo(a.timezone) for a in session.scalars(select(Account))}
    for m in session.scalars(select(Message)):
        out = outcome_of(m)
        hour: Any = m.created_at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        if daily:
            hour = m.created_at.astimezone(zones[m.account_id]).date()
        code = m.sms_type == "verification" or bool(
            re.search(r"\bcaptcha\b|\bcode\b|验证码", m.content, re.I))
        key = (hour, m.app_id, m.region, m.iso_code, m.signature_id or 0, m.template_id or 0,
               m.sms_type, code, out, (m.error_code or "") if out in _FAIL_OUTCOMES else "",
               (m.carrier_code or "") if out == "failed" else "")
        found[(*key, "count")] += 1
        found[(*key, "billed")] += m.fee
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
