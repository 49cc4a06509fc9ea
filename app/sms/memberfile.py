"""Number files for customer groups: CSV or XLSX in, numbers and their extra columns out.

The same reader as bulk-task files (app/sms/taskfile.py: encodings, XLSX, size and
zip-bomb limits, Excel's number shapes, a header row or not); numbers of any region
are welcome (mainland as 11 digits or +86, others with their country code), every
other column is kept as the number's attributes, and a number seen before in the
file is merged, not an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import IO, NamedTuple

from app.sms import numbers, params, taskfile

MAX_ATTRIBUTES = 20  # extra columns kept per number
MAX_ATTRIBUTE_LENGTH = 100


class Member(NamedTuple):  # a tuple: cheap to make by the million
    row: int
    phone: str  # E.164
    attributes: list[str] | None


@lru_cache(maxsize=4096)  # files repeat numbers (they are merged), and phonenumbers is slow
def _parse(text: str) -> str:
    """E.164, or the reason as a NumberError."""
    fast = taskfile.fast_number(text, numbers.MAINLAND)
    if isinstance(fast, tuple):
        return fast[0]
    return numbers.parse_any(text)


def _artifact(cells: list[str], phone_col: int) -> tuple[str, str] | None:
    """The first cell besides the phone that a spreadsheet shows instead of a value
    (as a task file refuses it): its column, and why."""
    for at, cell in enumerate(cells, start=1):
        why = params.spreadsheet_artifact(cell.strip()) if at != phone_col + 1 else None
        if why is not None:
            return f"column {at}", why
    return None


def members(f: IO[bytes], filename: str, *, max_bytes: int = taskfile.MAX_BYTES,
            max_rows: int = taskfile.MAX_ROWS) -> Iterator[Member | taskfile.RowError]:
    """Each data row's number or its problem, in file order; FileError for the file."""
    phone_col, data_rows = 0, 0
    for row_no, cells in enumerate(taskfile.rows_of(f, filename, max_bytes=max_bytes),
                                   start=1):
        if row_no == 1 and any(c.strip() for c in cells) and taskfile.is_header(cells):
            phone_col = taskfile.phone_column(cells)
            continue
        # A mainland mobile as is (most rows): clean, valid, and the row not blank.
        m = taskfile.CN_CELL.fullmatch(cells[phone_col]) if phone_col < len(cells) else None
        if m is None and not any(c.strip() for c in cells):
            continue
        data_rows += 1
        if data_rows > max_rows:
            raise taskfile.FileError(f"The file has more than {max_rows:,} rows; split it.")
        if m is not None:
            e164 = "+86" + m.group(1)
        else:
            phone = taskfile.clean_phone(cells[phone_col]) if phone_col < len(cells) else ""
            if isinstance(phone, taskfile.RowError):
                yield taskfile.RowError(row_no, taskfile.PHONE, phone.reason)
                continue
            try:
                e164 = _parse(phone)
            except numbers.NumberError as exc:
                yield taskfile.RowError(row_no, taskfile.PHONE, str(exc))
                continue
        extra = [c.strip() for c in cells[:phone_col]] + [c.strip() for c in
                                                           cells[phone_col + 1:]]
        while extra and not extra[-1]:
            extra.pop()
        if len(extra) > MAX_ATTRIBUTES:
            yield taskfile.RowError(row_no, "", f"At most {MAX_ATTRIBUTES} columns besides "
                                                "the phone.")
            continue
        if any(len(v) > MAX_ATTRIBUTE_LENGTH for v in extra):
            yield taskfile.RowError(row_no, "", f"A cell is longer than "
                                                f"{MAX_ATTRIBUTE_LENGTH} characters.")
            continue
        artifact = _artifact(cells, phone_col) if params.may_hold_artifact(
            "".join(extra)) else None
        if artifact is not None:  # a group's columns become a task's parameters
            yield taskfile.RowError(row_no, *artifact)
            continue
        yield Member(row_no, e164, extra or None)
    if data_rows == 0:
        raise taskfile.FileError("The file has no numbers.")
