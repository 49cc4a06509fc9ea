"""Recipient files for bulk send tasks: CSV or XLSX in, one verdict per row out.

Pure apart from reading the file it is given: `validate` streams rows (the whole
file is never held in memory) and yields a `Row` for each usable line and a
`RowError` for each unusable one; a `FileError` stops everything (no task is made
from half a file). Formulas in XLSX: the value Excel cached when it saved the file
is used (a formula never calculated by a spreadsheet reads as an empty cell).
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import phonenumbers

from app.sms import numbers, params, templating
from app.sms.text import GSM7, GSM_BASIC, MAINLAND, MULTI, SINGLE, UCS2, compose, count, is_gsm7

MAX_BYTES = 30 * 1024 * 1024  # a setting (TASK_MAX_UPLOAD_MB); the default
MAX_ROWS = 1_000_000
SHOWN_ERRORS = 100
# An XLSX is a zip: refuse one whose parts inflate beyond this many times its size
# (real spreadsheets compress 5-20x) once that is more than ZIP_FLOOR bytes.
ZIP_RATIO, ZIP_FLOOR = 100, 50 * 1024 * 1024
PHONE_HEADERS = ("phone", "mobile", "number", "tel", "手机", "电话", "号码")
PHONE = "phone"  # the column name in errors


class FileError(ValueError):
    """The file as a whole cannot be used; one clear message."""


@dataclass(frozen=True, slots=True)
class Row:
    row: int  # 1-based line (or sheet row) number, header included
    phone: str  # E.164
    iso: str
    params: list[str]
    fee: int  # billed items of this row's text


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    column: str  # "phone", "{2}", or "" for the whole row
    reason: str


@dataclass(frozen=True)
class Template:
    """What validation needs of a template (no database objects here)."""

    content: str
    sms_type: str
    region: str
    signature: str | None = None
    max_param_length: int = params.DEFAULT_MAX_LENGTH
    allow_urls: bool = False


# --- numbers: a fast path for the common shapes -------------------------------------

_CN = phonenumbers.PhoneMetadata.metadata_for_region("CN")
assert _CN is not None and _CN.mobile is not None and _CN.mobile.national_number_pattern
_CN_MOBILE = re.compile(_CN.mobile.national_number_pattern)
_PLAIN_CN = re.compile(r"(?:\+86)?(1\d{10})")


def fast_number(text: str, region: str) -> tuple[str, str] | str | None:
    """(E.164, ISO), or the refusal message, for the shapes most files hold (an
    11-digit mainland mobile, with or without +86), decided from phonenumbers' own
    mobile pattern for China; None when undecided (use `numbers.for_region`).
    A property test checks it agrees with `numbers.for_region` wherever it decides."""
    m = _PLAIN_CN.fullmatch(text)
    if m is None or not _CN_MOBILE.fullmatch(m.group(1)):
        return None
    if region != MAINLAND:
        return numbers.IS_MAINLAND
    return "+86" + m.group(1), numbers.MAINLAND


def parse_number(text: str, region: str) -> tuple[str, str] | str:
    found = fast_number(text, region)
    if found is not None:
        return found
    try:
        return numbers.for_region(text, region)
    except numbers.NumberError as exc:
        return str(exc)


_EXCEL_FLOAT = re.compile(r"(\+?\d+)\.0+")
_EXCEL_SCI = re.compile(r"[+-]?\d+(?:\.\d+)?[eE][+-]?\d+")
SCIENTIFIC = ("Excel stored this number in scientific notation (like 1.38001E+10) and "
              "dropped digits: format the phone column as text and enter the numbers again.")


def clean_phone(cell: str) -> str | RowError:
    """Undo what spreadsheets do to phone numbers: surrounding spaces, a leading
    apostrophe (Excel's "keep as text"), a trailing .0 (a number stored as a float)."""
    text = cell.strip().lstrip("'").strip()
    if _EXCEL_SCI.fullmatch(text):
        return RowError(0, PHONE, SCIENTIFIC)
    m = _EXCEL_FLOAT.fullmatch(text)
    return m.group(1) if m else text


# --- billed items: a fast path for rows whose count is plain arithmetic ------------------

_GSM_BASIC = re.compile("[" + re.escape("".join(sorted(GSM_BASIC))) + "]*")
_BMP_MAX = "\uffff"


class Biller:
    """Billed items of each row's text. When every character of the text is one
    unit (no surrogate pair, no GSM escape), the count is arithmetic on lengths;
    otherwise `count` segments the text. A property test checks they agree."""

    def __init__(self, template: Template) -> None:
        self.template = template
        found = [int(n) for n in templating.VARIABLE.findall(template.content)]
        self.times = [found.count(n) for n in range(1, max(found, default=0) + 1)]
        base = compose(templating.render(template.content, [""] * len(self.times)),
                       template.signature, template.region)
        self.base_len = len(base)
        self.bmp = not base or max(base) <= _BMP_MAX
        self.gsm_basic = _GSM_BASIC.fullmatch(base) is not None
        self.ucs2 = template.region == MAINLAND or not is_gsm7(base)

    def __call__(self, values: list[str]) -> int:
        if self.bmp and len(values) == len(self.times):
            total = self.base_len + sum(len(v) * t for v, t in zip(values, self.times,
                                                                   strict=True))
            if self.ucs2 and all(not v or max(v) <= _BMP_MAX for v in values):
                return 1 if total <= SINGLE[UCS2] else -(-total // MULTI[UCS2])
            if self.gsm_basic and all(_GSM_BASIC.fullmatch(v) for v in values):
                return 1 if total <= SINGLE[GSM7] else -(-total // MULTI[GSM7])
        t = self.template
        return count(templating.render(t.content, values), t.region, t.signature).billed_items


# --- reading the file ------------------------------------------------------------------


def _size(f: IO[bytes]) -> int:
    f.seek(0, io.SEEK_END)
    size = f.tell()
    f.seek(0)
    return size


def kind_of(f: IO[bytes], filename: str) -> str:
    """"csv" or "xlsx" by content (the name only breaks ties), or a FileError."""
    head = f.read(8)
    f.seek(0)
    if head.startswith(b"PK\x03\x04"):
        return "xlsx"
    if head.startswith(b"\xd0\xcf\x11\xe0"):  # an OLE file: encrypted XLSX or an old .xls
        raise FileError("This spreadsheet is password-protected or in the old .xls format: "
                        "save it as an unprotected .xlsx or as CSV.")
    if filename.lower().endswith((".xlsx", ".xlsm", ".xls")):
        raise FileError("This file is not a valid XLSX workbook (it may be corrupt).")
    chunk = f.read(4096)
    f.seek(0)
    if b"\x00" in chunk and not chunk.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileError("Upload a CSV or XLSX file.")
    return "csv"


def _encoding(f: IO[bytes]) -> str:
    head = f.read(4)
    f.seek(0)
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    # UTF-8 unless some byte says otherwise: a pass with an incremental decoder
    # (C speed, constant memory), then GB18030 (a superset of GBK).
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := f.read(1 << 20):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"
    finally:
        f.seek(0)


def _csv_rows(f: IO[bytes]) -> Iterator[list[str]]:
    encoding = _encoding(f)
    text = io.TextIOWrapper(f, encoding=encoding, newline="", errors="strict")
    try:
        first = text.readline()
        delimiter = max((",", ";", "\t"), key=first.count) if first else ","
        # itertools.chain, not a generator: closing a generator would close `text`.
        rows = csv.reader(itertools.chain([first], text), delimiter=delimiter)
        yield from rows
    except UnicodeDecodeError:
        raise FileError(f"The file is not valid text in {encoding}: save it as UTF-8 "
                        "CSV.") from None
    except csv.Error as exc:
        raise FileError(f"The CSV cannot be read: {exc}.") from None
    finally:
        text.detach()


def _xlsx_rows(f: IO[bytes]) -> Iterator[list[str]]:
    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    size = _size(f)
    try:
        with zipfile.ZipFile(f) as z:
            infos = z.infolist()
            if any(i.flag_bits & 0x1 for i in infos):
                raise FileError("This workbook is encrypted: save it without a password.")
            inflated = sum(i.file_size for i in infos)
            if inflated > ZIP_FLOOR and inflated > ZIP_RATIO * max(size, 1):
                raise FileError("This workbook inflates to far more than its size (a zip "
                                "bomb?); it was not opened.")
    except zipfile.BadZipFile:
        raise FileError("This XLSX file is corrupt and cannot be opened.") from None
    f.seek(0)
    try:
        # read_only streams the sheet XML; data_only gives formulas' cached values.
        book = openpyxl.load_workbook(f, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError):
        raise FileError("This XLSX file is corrupt and cannot be opened.") from None
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if sheet is None:
            raise FileError("The workbook has no sheet.")
        for values in sheet.iter_rows(values_only=True):
            yield [_cell(v) for v in values]
    except FileError:
        raise
    except Exception:  # any parser failure mid-sheet means a corrupt file
        raise FileError("This XLSX file is corrupt and cannot be read to the end.") from None
    finally:
        book.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:  # a number Excel keeps exactly
            return str(int(value))
        return repr(value)
    return str(value)


def rows_of(f: IO[bytes], filename: str, *, max_bytes: int = MAX_BYTES) -> Iterator[list[str]]:
    size = _size(f)
    if size == 0:
        raise FileError("The file is empty.")
    if size > max_bytes:
        raise FileError(f"The file is {size / 1048576:.1f} MB; at most "
                        f"{max_bytes // 1048576} MB are allowed.")
    return _xlsx_rows(f) if kind_of(f, filename) == "xlsx" else _csv_rows(f)


# --- validating -------------------------------------------------------------------------


def is_header(cells: list[str]) -> bool:
    """A first row whose first cell holds no digit is a header."""
    first = cells[0].strip().lstrip("\ufeff") if cells else ""
    return not any(c.isdigit() for c in first)


def phone_column(cells: list[str]) -> int:
    for i, cell in enumerate(cells):
        name = cell.strip().lower()
        if any(h in name for h in PHONE_HEADERS):
            return i
    raise FileError("The header row has no phone column: name the first column "
                    "\"phone\" (or remove the header).")


def validate(f: IO[bytes], filename: str, template: Template, *, max_bytes: int = MAX_BYTES,
             max_rows: int = MAX_ROWS) -> Iterator[Row | RowError]:
    """Every data row's verdict, in file order. Raises FileError for the whole file
    (possibly after some rows were yielded: callers keep nothing then)."""
    want = len(templating.variables(template.content))
    seen: set[int] = set()
    phone_col = 0
    data_rows = 0
    billed = Biller(template)
    for row_no, cells in enumerate(rows_of(f, filename, max_bytes=max_bytes), start=1):
        if row_no == 1 and cells and is_header(cells):
            phone_col = phone_column(cells)
            continue
        if not any(c.strip() for c in cells):
            continue  # blank lines (and Excel's empty trailing rows) are not rows
        data_rows += 1
        if data_rows > max_rows:
            raise FileError(f"The file has more than {max_rows:,} rows; split it into "
                            "several tasks.")
        if phone_col >= len(cells):
            yield RowError(row_no, PHONE, numbers.EMPTY)
            continue
        phone = clean_phone(cells[phone_col])
        if isinstance(phone, RowError):
            yield RowError(row_no, PHONE, phone.reason)
            continue
        found = parse_number(phone, template.region) if phone else numbers.EMPTY
        if isinstance(found, str):
            yield RowError(row_no, PHONE, found)
            continue
        values = [c.strip() for i, c in enumerate(cells) if i != phone_col]
        while values and not values[-1]:
            values.pop()  # trailing empty cells are not extra variables
        if len(values) != want:
            what = "missing" if len(values) < want else "extra"
            yield RowError(row_no, f"{{{min(len(values), want) + 1}}}",
                           f"The template has {want} variable(s); this row gives "
                           f"{len(values)} ({what}).")
            continue
        problem = params.check(template.content, template.sms_type, tuple(values),
                               max_length=template.max_param_length,
                               allow_urls=template.allow_urls) if want else None
        if problem is not None:
            n = re.search(r"\{(\d+)\}", problem.message)
            yield RowError(row_no, n.group(0) if n else "", problem.message)
            continue
        key = int(found[0][1:])
        if key in seen:
            yield RowError(row_no, PHONE, "The same number appears earlier in the file.")
            continue
        seen.add(key)
        yield Row(row_no, found[0], found[1], values, billed(values))
    if data_rows == 0:
        raise FileError("The file has no recipient rows.")


# --- writing ---------------------------------------------------------------------------

def standard_columns(content: str) -> list[str]:
    return [PHONE, *(f"{{{n}}}" for n in templating.variables(content))]


def example_row(content: str, sms_type: str, region: str) -> list[str]:
    phone = "13800138000" if region == MAINLAND else "+14155550100"
    return [phone, *templating.sample_params(len(templating.variables(content)), sms_type)]
