"""Number parsing through phonenumbers: E.164, or mainland plain numbers; one message
per problem (tests/number_cases.py runs the same table through every entry point)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.sms import numbers
from app.sms.numbers import NumberError, for_region, is_country_code, parse_any
from tests.number_cases import BAD, GOOD


@pytest.mark.parametrize(("text", "e164"), [
    ("+8613800000000", "+8613800000000"),
    (" +1 (415) 555-0100 ", "+14155550100"),
    ("+44 20 7946 0958", "+442079460958"),
    *GOOD,
])
def test_numbers_are_normalized(text: str, e164: str) -> None:
    assert parse_any(text) == e164


@pytest.mark.parametrize(("text", "message"), [
    *BAD, ("", numbers.EMPTY), ("  ", numbers.EMPTY), ("+", numbers.NOT_A_NUMBER),
    ("+86 12345678901", numbers.INVALID_FOR_COUNTRY), ("+1 415 555 0100 ext. 5",
                                                       numbers.NOT_A_NUMBER),
    ("138\n0000 0000", numbers.NOT_A_NUMBER), ("1" * 40, numbers.NOT_A_NUMBER),
    ("8613800000000", numbers.NEED_COUNTRY_CODE),
])
def test_refusals_have_one_message_each(text: str, message: str) -> None:
    with pytest.raises(NumberError) as exc:
        parse_any(text)
    assert str(exc.value) == message


def test_regions() -> None:
    assert for_region("13800000000", "mainland") == ("+8613800000000", "CN")
    assert for_region("+1 415 555 0100", "international") == ("+14155550100", "US")
    with pytest.raises(NumberError, match="mainland China numbers only"):
        for_region("+14155550100", "mainland")
    with pytest.raises(NumberError, match="sent as mainland messages"):
        for_region("13800000000", "international")
    # Found from outside: a Beijing landline, a Shanghai one and a 400 service number
    # were accepted (and billed) as mainland messages; they take no SMS.
    for landline in ("+86 10 1234 5678", "+862161234567", "+864008108888"):
        with pytest.raises(NumberError, match="mainland China mobile number"):
            for_region(landline, "mainland")


@given(st.text(max_size=40))
def test_the_parser_answers_every_text_with_a_number_or_a_known_message(text: str) -> None:
    known = {numbers.EMPTY, numbers.NOT_A_NUMBER, numbers.NEED_COUNTRY_CODE,
             numbers.INVALID_FOR_COUNTRY, numbers.INVALID_MAINLAND}
    try:
        assert parse_any(text).startswith("+")
    except NumberError as exc:
        assert str(exc) in known


def test_country_codes() -> None:
    assert is_country_code("US") and is_country_code("HK")
    assert not is_country_code("XX") and not is_country_code("us")
