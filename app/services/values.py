"""Parsing of the small values users type into forms, commands and APIs."""

from __future__ import annotations

MAX_COUNT = 999_999_999


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
    if not text.isdigit() or int(text) > MAX_COUNT:
        errors[field] = f"Enter a whole number from 0 to {MAX_COUNT:,}."
        return None
    return int(text)


def text(value: str | None, field: str, errors: dict[str, str], *, max_len: int,
         required: bool = False) -> str:
    out = (value or "").strip()
    if required and not out:
        errors[field] = "Required."
    elif len(out) > max_len:
        errors[field] = f"Use at most {max_len} characters."
    elif any(ord(c) < 32 and c not in "\n\t" for c in out):
        errors[field] = "Control characters are not allowed."
    return out
