"""Marketing's quiet hours: no marketing message leaves from 21:00 to 08:00 in the
account's zone (SPEC.md §3). The API refuses one sent then; a bulk task pauses until
08:00 and goes on. Pure rules on aware datetimes in that zone; spans are measured in
UTC so a daylight-saving change is counted as the hour it is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

QUIET_START, QUIET_END = 21, 8  # local hours


def is_quiet(local: datetime) -> bool:
    return local.hour >= QUIET_START or local.hour < QUIET_END


def until(local: datetime) -> datetime | None:
    """The 08:00 that ends the quiet hours `local` is in; None outside them."""
    if not is_quiet(local):
        return None
    resume = local.replace(hour=QUIET_END, minute=0, second=0, microsecond=0)
    return resume + timedelta(days=1) if local.hour >= QUIET_START else resume


def resume_at(local: datetime) -> datetime:
    """`local` itself outside quiet hours, else the 08:00 that ends them."""
    return until(local) or local


def finish_after(start: datetime, seconds: float) -> datetime:
    """When `seconds` of sending that starts at `start` (local) ends, sending only
    outside quiet hours."""
    zone = start.tzinfo
    at, left = resume_at(start), max(seconds, 0.0)
    while True:
        closes = at.replace(hour=QUIET_START, minute=0, second=0, microsecond=0)
        room = (closes.astimezone(UTC) - at.astimezone(UTC)).total_seconds()
        if left <= room:
            return (at.astimezone(UTC) + timedelta(seconds=left)).astimezone(zone)
        left -= room
        at = resume_at(closes)


def sending_seconds(start: datetime, end: datetime) -> float:
    """How much of the span from `start` to `end` (local) lies outside quiet hours."""
    total, at = 0.0, resume_at(start)
    while at < end:
        closes = at.replace(hour=QUIET_START, minute=0, second=0, microsecond=0)
        total += (min(closes, end).astimezone(UTC) - at.astimezone(UTC)).total_seconds()
        at = resume_at(closes)
    return total
