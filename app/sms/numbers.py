"""Phone numbers and countries, through `phonenumbers`."""

from __future__ import annotations

import phonenumbers

MAINLAND = "CN"


class NumberError(ValueError):
    pass


def _parse(raw: str, region: str | None, invalid: str) -> str:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise NumberError("Not a phone number.") from None
    if not phonenumbers.is_valid_number(number):
        raise NumberError(invalid)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def parse_e164(text: str) -> str:
    """A number written in E.164 (+ country code + number); returns it normalized."""
    raw = text.strip()
    if not raw.startswith("+"):
        raise NumberError("Write the number in E.164 format, e.g. +8613800000000.")
    return _parse(raw, None, "Not a valid phone number for its country.")


def parse_any(text: str) -> str:
    """E.164, or a plain mainland China number (11 digits); returns E.164."""
    raw = text.strip()
    if raw.startswith("+"):
        return parse_e164(raw)
    return _parse(raw, MAINLAND,
                  "Not a valid number; add the country code, e.g. +1 415 555 0100.")


def is_country_code(iso: str) -> bool:
    return iso in phonenumbers.SUPPORTED_REGIONS

