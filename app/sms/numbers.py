"""Phone numbers and countries, through `phonenumbers`."""

from __future__ import annotations

import phonenumbers

MAINLAND = "CN"


class NumberError(ValueError):
    pass


def parse_e164(text: str) -> str:
    """A number written in E.164 (+ country code + number); returns it normalized."""
    raw = text.strip()
    if not raw.startswith("+"):
        raise NumberError("Write the number in E.164 format, e.g. +8613800000000.")
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        raise NumberError("Not a phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise NumberError("Not a valid phone number for its country.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_any(text: str) -> str:
    """E.164, or a plain mainland China number (11 digits); returns E.164."""
    raw = text.strip()
    if raw.startswith("+"):
        return parse_e164(raw)
    try:
        number = phonenumbers.parse(raw, MAINLAND)
    except phonenumbers.NumberParseException:
        raise NumberError("Not a phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise NumberError("Not a valid number; add the country code, e.g. +1 415 555 0100.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def region_of(e164: str) -> str | None:
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))


def is_country_code(iso: str) -> bool:
    return iso in phonenumbers.SUPPORTED_REGIONS


def dial_code(iso: str) -> int:
    return phonenumbers.country_code_for_region(iso)
