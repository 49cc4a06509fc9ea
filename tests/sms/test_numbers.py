"""Number parsing through phonenumbers: E.164 only, or mainland plain numbers."""

from __future__ import annotations

import pytest

from app.sms.numbers import NumberError, is_country_code, parse_any, parse_e164


@pytest.mark.parametrize(("text", "e164"), [
    ("+8613800000000", "+8613800000000"),
    (" +1 (415) 555-0100 ", "+14155550100"),
    ("+44 20 7946 0958", "+442079460958"),
])
def test_e164_is_normalized(text: str, e164: str) -> None:
    assert parse_e164(text) == e164


@pytest.mark.parametrize(("text", "message"), [
    ("13800000000", "E.164"), ("+999", "Not a"), ("+86 12345678901", "Not a valid"), ("+", "Not a"),
])
def test_e164_refusals(text: str, message: str) -> None:
    with pytest.raises(NumberError, match=message):
        parse_e164(text)


def test_plain_numbers_are_mainland() -> None:
    assert parse_any("13800000000") == "+8613800000000"
    assert parse_any("138-0000-0000") == "+8613800000000"
    assert parse_any("+14155550100") == "+14155550100"
    with pytest.raises(NumberError, match="country code"):
        parse_any("4155550100")


def test_country_codes() -> None:
    assert is_country_code("US") and is_country_code("HK")
    assert not is_country_code("XX") and not is_country_code("us")
