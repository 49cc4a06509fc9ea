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
    """E.164, or a plain 11-digit mainland China mobile number; returns E.164.

    Anything else needs its country code: a plain 10-digit US number would
    otherwise parse as a valid Chinese landline.
    """
    raw = text.strip()
    if raw.startswith("+"):
        return parse_e164(raw)
    digits = raw.replace(" ", "").replace("-", "")
    if not (len(digits) == 11 and digits.isdigit() and digits.startswith("1")):
        raise NumberError("Add the country code, e.g. +1 415 555 0100; only mainland "
                          "mobile numbers (11 digits) may be written without it.")
    return _parse(digits, MAINLAND, "Not a valid mainland China mobile number.")


def for_region(text: str, region: str) -> tuple[str, str]:
    """(E.164, ISO country) for a send. Mainland: plain 11-digit or +86 numbers only.
    International: always with a country code, never a mainland number."""
    if region == "mainland":
        e164 = parse_any(text)
        if not e164.startswith("+86"):
            raise NumberError("Mainland messages go to mainland China numbers only.")
        return e164, MAINLAND
    e164 = parse_e164(text)
    iso = phonenumbers.region_code_for_number(phonenumbers.parse(e164, None)) or ""
    if iso == MAINLAND:
        raise NumberError("Mainland China numbers are sent as mainland messages.")
    return e164, iso


def is_country_code(iso: str) -> bool:
    return iso in phonenumbers.SUPPORTED_REGIONS

