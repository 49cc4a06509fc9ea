"""Statistics periods in the account's zone (SPEC.md §7): pure, no I/O.

A period is a run of whole local days; its UTC bounds select rollup hours. A
message at 23:59:59 local is in that local day, because rollups are keyed by the
UTC hour it was made in and whole-hour zones map local days onto whole UTC hours.
(Zones with a 30 or 45 minute offset see up to that much at a day's edge counted
in the neighbouring day: the price of hourly rollups.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

PERIODS = {"today": "Today", "yesterday": "Yesterday", "7d": "Last 7 days",
           "30d": "Last 30 days", "custom": "Custom range"}
MAX_CUSTOM_DAYS = 92  # a custom range at most a quarter long


class PeriodError(ValueError):
    pass


@dataclass(frozen=True)
class Window:
    first: date  # local days, inclusive
    last: date
    zone: ZoneInfo

    @property
    def days(self) -> int:
        return (self.last - self.first).days + 1

    @property
    def hourly(self) -> bool:
        """One day is charted by the hour, longer periods by the day."""
        return self.days == 1

    @property
    def start(self) -> datetime:  # aware; compare with UTC hours
        return datetime.combine(self.first, time(), self.zone)

    @property
    def end(self) -> datetime:  # exclusive
        return datetime.combine(self.last + timedelta(days=1), time(), self.zone)

    def buckets(self) -> list[datetime]:
        """The starts of the chart's buckets, local and aware."""
        if self.hourly:
            # Real hours (a DST day has 23 or 25): step in UTC, label in local time.
            out, at = [], self.start.astimezone(ZoneInfo("UTC"))
            while at < self.end:
                out.append(at.astimezone(self.zone))
                at += timedelta(hours=1)
            return out
        return [datetime.combine(self.first + timedelta(days=n), time(), self.zone)
                for n in range(self.days)]

    def bucket_of(self, hour_utc: datetime) -> datetime:
        local = hour_utc.astimezone(self.zone)
        if self.hourly:
            return local.replace(minute=0, second=0, microsecond=0)
        return datetime.combine(local.date(), time(), self.zone)


def _day(value: str, field: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise PeriodError(f"{field}: give a date as YYYY-MM-DD.") from None


def window(period: str, now: datetime, zone: str, start: str = "", end: str = "") -> Window:
    """The local days a period covers at `now` (aware)."""
    tz = ZoneInfo(zone)
    today = now.astimezone(tz).date()
    if period == "today":
        return Window(today, today, tz)
    if period == "yesterday":
        y = today - timedelta(days=1)
        return Window(y, y, tz)
    if period == "7d":
        return Window(today - timedelta(days=6), today, tz)
    if period == "30d":
        return Window(today - timedelta(days=29), today, tz)
    if period == "custom":
        first, last = _day(start, "From"), _day(end or start, "To")
        if last < first:
            raise PeriodError("The end of the range is before its start.")
        if (last - first).days + 1 > MAX_CUSTOM_DAYS:
            raise PeriodError(f"A custom range covers at most {MAX_CUSTOM_DAYS} days.")
        if first > today:
            raise PeriodError("The range starts in the future.")
        return Window(first, last, tz)
    raise PeriodError("Choose today, yesterday, 7d, 30d or custom.")


def spoken(seconds: float) -> str:
    """A duration as people read it: "45 s", "12 min", "9 h 30 min", "3 d 4 h"."""
    s = max(round(seconds), 0)
    if s < 120:
        return f"{s} s"
    m = s // 60
    if m < 120:
        return f"{m} min"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(h, 24)
    return f"{d} d {h} h" if h else f"{d} d"
