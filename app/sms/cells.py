"""Spreadsheet cells from user data (exports)."""

from __future__ import annotations

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutral(cell: object) -> str:
    """The cell as text that no spreadsheet runs as a formula (OWASP's CSV injection
    advice: a leading quote). Phone numbers in E.164 start with + and are quoted too."""
    text = "" if cell is None else str(cell)
    return "'" + text if text.startswith(FORMULA_START) else text
