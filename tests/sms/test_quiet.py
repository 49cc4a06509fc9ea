"""Quiet hours (app/sms/quiet.py): when a paused marketing task resumes and ends."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.sms.quiet import finish_after, is_quiet, resume_at, sending_seconds

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")


def at(day: int, hour: int, minute: int = 0, zone: ZoneInfo = SH) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=zone)


@pytest.mark.parametrize(("local", "resumes"), [
    (at(25, 7, 59), at(25, 8)),
    (at(25, 8), at(25, 8)),
    (at(25, 20, 59), at(25, 20, 59)),
    (at(25, 21), at(26, 8)),
    (at(25, 23, 30), at(26, 8)),
    (at(25, 0, 5), at(25, 8)),
])
def test_resume_at(local: datetime, resumes: datetime) -> None:
    assert resume_at(local) == resumes
    assert is_quiet(local) == (local != resumes)


def test_finish_within_one_day() -> None:
    assert finish_after(at(25, 9), 3600) == at(25, 10)
    assert finish_after(at(25, 20), 3600) == at(25, 21)  # exactly at the close


def test_finish_across_nights() -> None:
    # 20:00 with two hours to go: one before the pause, one from 08:00.
    assert finish_after(at(25, 20), 7200) == at(26, 9)
    # In quiet hours: starts at 08:00; three whole days of 13 hours and one more hour.
    assert finish_after(at(25, 22), (3 * 13 + 1) * 3600) == at(29, 9)
    assert finish_after(at(25, 22), 0) == at(26, 8)


def test_a_daylight_saving_night_counts_its_real_hours() -> None:
    # New York leaves daylight saving on 1 November 2026: 20:30 with 1 hour to go ends
    # 08:30 the next morning, whatever the night's length.
    start = datetime(2026, 10, 31, 20, 30, tzinfo=NY)
    assert finish_after(start, 3600) == datetime(2026, 11, 1, 8, 30, tzinfo=NY)
    assert finish_after(start, 1800) - start == timedelta(minutes=30)


def test_sending_seconds_leave_the_nights_out() -> None:
    assert sending_seconds(at(25, 9), at(25, 10)) == 3600
    assert sending_seconds(at(25, 20), at(25, 23)) == 3600  # an hour, then the pause
    assert sending_seconds(at(25, 20), at(26, 9)) == 2 * 3600
    assert sending_seconds(at(25, 22), at(26, 7)) == 0
    assert sending_seconds(at(25, 10), at(25, 9)) == 0  # an end before the start
    # The inverse of finish_after.
    assert sending_seconds(at(25, 22), finish_after(at(25, 22), 50 * 3600)) == 50 * 3600


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s"), (44.6, "45 s"), (119, "119 s"), (120, "2 min"), (7199, "119 min"),
    (7200, "2 h"), (34200, "9 h 30 min"), (48 * 3600, "2 d"), (76 * 3600 + 59, "3 d 4 h"),
])
def test_durations_as_people_read_them(seconds: float, text: str) -> None:
    from app.sms.periods import spoken

    assert spoken(seconds) == text
