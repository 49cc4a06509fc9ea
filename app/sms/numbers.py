"""Phone numbers and countries, through `phonenumbers`.

`parse_any` is the one parser for every number a person types (forms, Slack, the API)
and its messages are the one wording of each problem, so every entry point accepts,
normalizes and refuses the same input alike.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

MAINLAND = "CN"
MAX_TYPED = 32  # characters, separators included

EMPTY = "Enter a phone number."
NOT_A_NUMBER = ("Not a phone number: use digits, spaces and dashes, with + and the country "
                "code, e.g. +14155550100.")
NEED_COUNTRY_CODE = ("Add the country code, e.g. +1 415 555 0100; only mainland China mobile "
                     "numbers (11 digits) may be written without it.")
INVALID_FOR_COUNTRY = "Not a valid phone number for its country."
INVALID_MAINLAND = "Not a valid mainland China mobile number."
NOT_MAINLAND = "Mainland messages go to mainland China numbers only."
IS_MAINLAND = "Mainland China numbers are sent as mainland messages."

TYPED = re.compile(r"\+?[\d ().\-]+")  # one line: spaces, never line breaks
_TEXTABLE = (phonenumbers.PhoneNumberType.MOBILE,
             phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)


class NumberError(ValueError):
    pass


def parse_any(text: str) -> str:
    """E.164 (+ country code), or a plain 11-digit mainland China mobile number;
    returns E.164. Full-width digits are folded; letters (extensions) are refused.
    Anything else needs its country code: a plain 10-digit US number would otherwise
    parse as a valid Chinese landline."""
    return _e164(_number(text)[0])


def _number(text: str) -> tuple[phonenumbers.PhoneNumber, str]:
    """The valid number `parse_any` reads and its country (parsed once: callers format
    it and take its country from here)."""
    raw = unicodedata.normalize("NFKC", text or "").strip()
    if not raw:
        raise NumberError(EMPTY)
    if len(raw) > MAX_TYPED or not TYPED.fullmatch(raw):
        raise NumberError(NOT_A_NUMBER)
    if not raw.startswith("+"):
        digits = re.sub(r"[ ().\-]", "", raw)
        if not (len(digits) == 11 and digits.startswith("1")):
            raise NumberError(NEED_COUNTRY_CODE)
        return _parse(digits, MAINLAND, INVALID_MAINLAND)
    return _parse(raw, None, INVALID_FOR_COUNTRY)


def _parse(raw: str, region: str | None, invalid: str) -> tuple[phonenumbers.PhoneNumber, str]:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise NumberError(NOT_A_NUMBER) from None
    # is_valid_number is exactly these two steps; its country is asked once, not twice
    # (for +1 that walks some twenty NANP countries' patterns).
    country = phonenumbers.region_code_for_number(number)
    if country is None or not phonenumbers.is_valid_number_for_region(number, country):
        raise NumberError(invalid)
    return number, country


def _e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def for_region(text: str, region: str) -> tuple[str, str]:
    """(E.164, ISO country) for a send. Mainland: plain 11-digit or +86 numbers only.
    International: always with a country code, never a mainland number."""
    number, country = _number(text)
    e164 = _e164(number)
    if region == "mainland":
        if not e164.startswith("+86"):
            raise NumberError(NOT_MAINLAND)
        # Landlines and service numbers (400, 95xxx) are valid +86 numbers that take no
        # SMS (found from outside: +86 10 1234 5678 was accepted and billed).
        if phonenumbers.number_type(number) not in _TEXTABLE:
            raise NumberError(INVALID_MAINLAND)
        return e164, MAINLAND
    iso = country
    if iso == MAINLAND:
        raise NumberError(IS_MAINLAND)
    return e164, iso


def is_country_code(iso: str) -> bool:
    return iso in phonenumbers.SUPPORTED_REGIONS
