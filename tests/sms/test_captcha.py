"""The captcha-abuse rule on its boundaries: exactly 50, exactly 80 %, exactly 90 %."""

from __future__ import annotations

import pytest

from app.sms.captcha import Hour, Rule, abusive, is_verification

RULE = Rule()  # volume > 50, success < 80 %, growth > 90 %


@pytest.mark.parametrize(("volume", "success", "previous", "alarm"), [
    (51, 40, 20, True),      # well past all three
    (50, 0, 1, False),       # exactly 50: not above
    (51, 0, 1, True),        # 51: above
    (100, 80, 10, False),    # exactly 80 % successful: not below
    (100, 79, 10, True),     # 79 %: below
    (95, 0, 50, False),      # exactly 90 % growth (50 → 95): not above
    (96, 0, 50, True),       # 92 %: above
    (60, 0, 0, True),        # nothing yesterday: growth from nothing counts as above
    (1000, 900, 0, False),   # healthy traffic, however much
    (0, 0, 0, False),
])
def test_boundaries(volume: int, success: int, previous: int, alarm: bool) -> None:
    assert abusive(Hour(volume, success, previous), RULE) is alarm


def test_rates_are_reported() -> None:
    h = Hour(200, 50, 100)
    assert h.success_rate == 25.0 and h.growth == 100.0
    assert Hour(0, 0, 0).success_rate is None and Hour(5, 5, 0).growth is None


def test_custom_rule() -> None:
    assert abusive(Hour(11, 0, 1), Rule(volume=10, success_pct=1, growth_pct=0))
    assert not abusive(Hour(11, 1, 1), Rule(volume=10, success_pct=9, growth_pct=0))


@pytest.mark.parametrize(("sms_type", "text", "expected"), [
    ("verification", "Hello", True),
    ("notification", "Your CODE is 1234", True),
    ("notification", "Captcha: 9", True),
    ("notification", "您的验证码是1234", True),
    ("notification", "Order shipped", False),
    ("notification", "Scan the barcode at the door", False),  # the word, not a part
    ("notification", "Your recaptcha failed", False),
    ("marketing", "Sale today", False),
])
def test_what_counts_as_verification(sms_type: str, text: str, expected: bool) -> None:
    assert is_verification(sms_type, text) is expected
