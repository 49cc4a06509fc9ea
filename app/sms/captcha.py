"""The captcha-abuse rule (SPEC.md §8), pure: no I/O, integers only, so the
boundaries are exact (exactly 50, exactly 80 %, exactly 90 % do not alarm)."""

from __future__ import annotations

import re
from dataclasses import dataclass

VERIFICATION = "verification"
# Text that marks a verification-code message when its template type does not: the
# words "captcha" or "code" (not "barcode"), or 验证码.
WORDS = re.compile(r"\bcaptcha\b|\bcode\b|验证码", re.IGNORECASE)


def is_verification(sms_type: str, text: str) -> bool:
    """The one rule: statistics rollups store it, the monitor reads their flag."""
    return sms_type == VERIFICATION or bool(WORDS.search(text or ""))


@dataclass(frozen=True)
class Rule:
    volume: int = 50  # the hour's volume must exceed this
    success_pct: int = 80  # the success rate must be below this
    growth_pct: int = 90  # growth over the same hour yesterday must be above this


@dataclass(frozen=True)
class Hour:
    volume: int
    success: int
    previous: int  # the same hour yesterday

    @property
    def success_rate(self) -> float | None:
        return 100.0 * self.success / self.volume if self.volume else None

    @property
    def growth(self) -> float | None:
        """Percent over the same hour yesterday; None when yesterday had none."""
        return 100.0 * (self.volume - self.previous) / self.previous if self.previous else None


def abusive(hour: Hour, rule: Rule) -> bool:
    """All three at once: volume above, success rate below, growth above. Growth from
    nothing yesterday counts as above any threshold."""
    if hour.volume <= rule.volume:
        return False
    if hour.success * 100 >= rule.success_pct * hour.volume:
        return False
    if hour.previous == 0:
        return True
    return (hour.volume - hour.previous) * 100 > rule.growth_pct * hour.previous
