"""Parsing of the small values users type into forms, commands and APIs."""

from __future__ import annotations

from collections.abc import Mapping

from app.services.errors import ValidationError
from app.sms.params import is_control

MAX_COUNT = 999_999_999
MAX_ID = 2**31 - 1  # ids are 32-bit in the database: a larger one names nothing
TRUE, FALSE = frozenset({"1", "true", "on", "yes"}), frozenset({"0", "false", "off", "no"})


def digits(text: str) -> bool:
    """Only 0-9. str.isdigit() also takes '²' (which int() refuses: a 500) and other
    scripts' digits (which int() reads: '٣' is 3)."""
    return text.isascii() and text.isdigit()


def record_id(value: object) -> int | None:
    """An id typed as text, or None when it cannot name a row."""
    text = str(value).strip() if value is not None else ""
    return int(text) if digits(text) and len(text) <= 10 and int(text) <= MAX_ID else None


def record_ids(values: list[str]) -> list[int]:
    """The ids of a form's list (checkboxes) that can name a row; the rest name none."""
    return [i for i in map(record_id, values) if i is not None]


def whole_number(
    value: str | int | None, field: str, errors: dict[str, str], *, required: bool = False
) -> int | None:
    """A non-negative whole number; blank gives None unless required.

    Problems are added to `errors` so a form can report every field at once.
    """
    text = str(value).strip().replace(",", "") if value is not None else ""
    if not text:
        if required:
            errors[field] = "Required."
        return None
    if not digits(text) or len(text) > len(str(MAX_COUNT)) or int(text) > MAX_COUNT:
        errors[field] = f"Enter a whole number from 0 to {MAX_COUNT:,}."
        return None
    return int(text)


def text(value: str | None, field: str, errors: dict[str, str], *, max_len: int,
         required: bool = False, multiline: bool = False) -> str:
    """Trimmed text. One line unless `multiline` (notes, descriptions, reasons):
    a name with a line break could forge extra lines in logs, alarms and Slack."""
    out = (value or "").strip()
    if required and not out:
        errors[field] = "Required."
    elif len(out) > max_len:
        errors[field] = f"Use at most {max_len} characters."
    elif not multiline and any(is_control(c) for c in out):
        errors[field] = "Use one line: line breaks and control characters are not allowed."
    elif any(is_control(c) and c not in "\r\n\t" for c in out):
        errors[field] = "Control characters are not allowed."
    return out


def flag(value: bool | str | None, field: str, errors: dict[str, str], *,
         required: bool = False) -> bool:
    """On or off, as a checkbox, a select or an API sends it. An unchecked box sends
    nothing (off); anything else that is not clearly on or off is refused."""
    if isinstance(value, bool):
        return value
    raw = (value or "").strip().lower()
    if raw in TRUE:
        return True
    if raw in FALSE or (not raw and not required):
        return False
    errors[field] = "Choose on or off." if not raw else (
        f"“{raw[:20]}” is not a valid choice: use on or off.")
    return False


def choice(value: str | None, field: str, options: Mapping[str, object] | tuple[str, ...],
           errors: dict[str, str], message: str) -> str:
    """One of `options` exactly; anything else is refused with `message`."""
    raw = value if isinstance(value, str) else ""
    if raw not in options:
        errors[field] = message
    return raw


def checked(field: str, value: bool | str | None, *, required: bool = False) -> bool:
    """`flag` for a single value: raises at once."""
    errors: dict[str, str] = {}
    out = flag(value, field, errors, required=required)
    if errors:
        raise ValidationError(errors)
    return out
