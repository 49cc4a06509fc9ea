"""Recipient files for bulk send tasks: CSV or XLSX in, one verdict per row out.

Pure apart from reading the file it is given: `validate` streams rows (the whole
file is never held in memory) and yields a `Row` for each usable line and a
`RowError` for each unusable one; a `FileError` stops everything (no task is made
from half a file). Formulas in XLSX: the value a spreadsheet cached when it saved the
file is used; a first sheet with formulas never calculated (a script wrote them and saved
no value, as openpyxl does) is refused as a whole before any row is read, naming the
first such cells: each would read as an empty cell, every one has the same cause and the
same fix (open and save the file in a spreadsheet program, or paste values), and
refusing only those rows would send the rest and leave them to be found and sent again.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import functools
import io
import itertools
import operator
import re
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, NamedTuple

import phonenumbers

from app.sms import numbers, params, templating, workbook
from app.sms.text import GSM7, GSM_BASIC, MAINLAND, MULTI, SINGLE, UCS2, compose, count, is_gsm7
from app.sms.workbook import cell_text

MAX_BYTES = 30 * 1024 * 1024  # a setting (TASK_MAX_UPLOAD_MB); the default
MAX_ROWS = 1_000_000
SHOWN_ERRORS = 100
# An XLSX is a zip: refuse one whose parts inflate beyond this many times its size
# (real spreadsheets compress 5-20x) once that is more than ZIP_FLOOR bytes, and one
# with a single part that does so past PART_FLOOR (a part is judged by itself: a
# stored, incompressible part beside it must not raise its allowance).
ZIP_RATIO, ZIP_FLOOR, PART_FLOOR = 100, 50 * 1024 * 1024, 4 * 1024 * 1024
# openpyxl reads every shared string (a text cell's value) into memory before the
# first row, ~11 us and ~180 bytes each: more than a file of the row limit needs
# (a phone and a parameter, both unique text) is refused before it opens.
MAX_SHARED_STRINGS = 2 * MAX_ROWS
_SHARED_ENTRY = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?si[\s/>]")
# Past Excel's last row a sheet is corrupt; cells read from one sheet, empty ones between
# filled ones included, are capped far above a million rows of a phone and its variables:
# a few KB of XML can put a cell in the last column of each of a million rows.
SHEET_ROWS, SHEET_CELLS = 1_048_576, 50_000_000
# Formulas without a calculated value: a cell holding a formula (<f> is its first child)
# and no <v> with text, up to its end tag, in the part's namespace prefix (group 1; the
# usual unprefixed part has its own pattern, which starts with a literal "<c" and is ~2x
# faster). Possessive throughout: a calculated cell, or one with no end tag, costs a scan
# to its value or the next cell, never a backtrack over the block; and a tag's attributes
# end at the next "<" too (XML allows none in them), or a run of "<c " with no ">" made
# each start scan to the end of the run (2.5 KB took 6 s).
_UNCALCULATED_CELL = (rb"<(%s)c(\s[^<>]*+)?+>\s*+<\1f[\s/>]"
                      rb"(?:[^<]++|<(?!/?\1c[\s/>]|\1v(?:\s[^<>]*+)?+>[^<]))*+</\1c>")
_UNCALCULATED = re.compile(_UNCALCULATED_CELL % b"")
_UNCALCULATED_NS = re.compile(_UNCALCULATED_CELL % rb"(?:[A-Za-z_][\w.-]*+:)?+")
_CELL_ATTR = re.compile(rb"""\s([rt])\s*=\s*["']([^"']*)["']""")
_TEXT_VALUE = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?(?:v|is)[\s/>]")  # an empty <v>, an <is>
# What calamine reads otherwise than openpyxl (app/sms/workbook.py): an escaped character
# (openpyxl keeps "_x000D_" as it is, calamine decodes it) and an error cell (#N/A to
# openpyxl, empty to calamine).
_ESCAPE = re.compile(rb"_x[0-9A-Fa-f]{4}_")
_ERROR_CELL = re.compile(rb"""\st\s*=\s*["']e["']""")
# The first sheet's XML is inflated SCAN_BYTES at a time; the last CELL_BYTES of a block
# go on with the next, so a cell split between two is read whole (the XML of a cell of
# 32,767 characters, Excel's most, escaped, is less; only a longer one could be missed).
SCAN_BYTES, CELL_BYTES = 1 << 20, 1 << 18
SHOWN_CELLS = 5  # formula cells named in the message
_UNREADABLE = "This XLSX file is corrupt and cannot be read to the end."
PHONE_HEADERS = ("phone", "mobile", "number", "tel", "手机", "电话", "号码")
PHONE = "phone"  # the column name in errors
DUPLICATE = "The same number appears earlier in the file."
BLOCK_CHARS = 1 << 16  # CSV text read at a time (whole lines)
BATCH = 2000  # verdicts per Batch of rows read one at a time


class FileError(ValueError):
    """The file as a whole cannot be used; one clear message."""


class Row(NamedTuple):  # a tuple: millions are made, cheaply
    row: int  # 1-based line (or sheet row) number, header included
    phone: str  # E.164
    iso: str
    params: list[str]
    fee: int  # billed items of this row's text


class RowError(NamedTuple):
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
# The same decision in one pattern (the mobile pattern only matches 11 digits): a cell
# that matches is clean (nothing for clean_phone to undo) and fast_number accepts it.
_CN_FIELD = r"(?:\+86)?(" + _CN.mobile.national_number_pattern + ")"
CN_CELL = re.compile(_CN_FIELD)


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


def dup_key(e164: str) -> str:
    """What two rows with the same number share: the national number for the mainland
    (what the fast path reads), the E.164 number otherwise (never 11 bare digits)."""
    return e164[3:] if e164.startswith("+86") else e164


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

    def by_length(self, most: list[int]) -> list[int] | None:
        """Billed items by the parameters' weighted length (sum of len(value) times its
        uses), for values of at most `most` characters each, all in the BMP; None when
        it is not that arithmetic (see __call__)."""
        if not (self.bmp and self.ucs2 and len(most) == len(self.times)):
            return None
        top = sum(m * t for m, t in zip(most, self.times, strict=True))
        return [1 if self.base_len + n <= SINGLE[UCS2] else -(-(self.base_len + n)
                                                             // MULTI[UCS2])
                for n in range(top + 1)]

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
        f.seek(0)
        if _western(f.read(1 << 20)):
            raise FileError(WESTERN) from None
        return "gb18030"
    finally:
        f.seek(0)


WESTERN = ("The file is not UTF-8, and read as Chinese (GB18030) its text comes out garbled: "
           "it looks like a Western file (Windows-1252). Save it as \"CSV UTF-8\" and "
           "upload it again.")
NEITHER = ("The file is neither UTF-8 nor Chinese (GB18030) text: it may be a Western file "
           "(Windows-1252). Save it as \"CSV UTF-8\" and upload it again.")
_GBK_COMMON = re.compile(rb"[\x81-\xfe][\x80-\xfe]")  # both bytes high: GB2312's hanzi
_GBK_RARE = re.compile(rb"[\x81-\xfe][\x40-\x7e]")  # a trail byte in ASCII's range


def _western(head: bytes) -> bool:
    """Whether bytes that are not UTF-8 are more likely Windows-1252 than GBK: there an
    accented letter and the letter after it pair into one of GBK's rare characters (é
    and e make 閑), while Chinese text is mostly the common ones, both bytes high. The
    pairs are taken left to right as a decoder takes them: the common ones first."""
    rest = _GBK_COMMON.sub(b"", head)
    common = (len(head) - len(rest)) // 2
    rare = len(_GBK_RARE.findall(rest))
    return rare >= 2 and rare > 2 * common


class _CsvText:
    """A CSV file as text: records one at a time through `csv` (a quoted field may span
    lines), or blocks of whole lines for a caller that reads lines of a shape it knows
    itself and hands the others back to `records`."""

    def __init__(self, text: io.TextIOWrapper, delimiter: str | None = None) -> None:
        self.text = text
        # The first line is queued either way: it may be the header, which must be read
        # (and the phone column known) before any block of lines is.
        first = text.readline()
        self.delimiter = delimiter or (max((",", ";", "\t"), key=first.count) if first
                                       else ",")
        self._queue: deque[str] = deque([first] if first else [])
        self._reader = csv.reader(self._lines(), delimiter=self.delimiter)

    def _lines(self) -> Iterator[str]:
        # Lines handed back first; beyond them only the rest of a record begun there.
        while True:
            if self._queue:
                yield self._queue.popleft()
            elif line := self.text.readline():
                yield line
            else:
                return

    def records(self, lines: list[str]) -> Iterator[list[str]]:
        """The records these lines begin (and those they end, if a quoted field spans)."""
        self._queue.extend(lines)
        while self._queue:
            cells = next(self._reader, None)
            if cells is None:
                return
            yield cells

    def blocks(self) -> Iterator[list[str]]:
        while lines := self.text.readlines(BLOCK_CHARS):
            yield lines

    def all_records(self) -> Iterator[list[str]]:
        yield from self.records([])
        for lines in self.blocks():
            yield from self.records(lines)


@contextlib.contextmanager
def _csv_text(f: IO[bytes]) -> Iterator[_CsvText]:
    """The file as CSV text; its decoding and parsing errors as one FileError."""
    encoding = _encoding(f)
    text = io.TextIOWrapper(f, encoding=encoding, newline="", errors="strict")
    try:
        yield _CsvText(text)
    except UnicodeDecodeError:
        if encoding == "gb18030":  # the guess for bytes that are not UTF-8
            raise FileError(NEITHER) from None
        raise FileError(f"The file is not valid text in {encoding}: save it as UTF-8 "
                        "CSV.") from None
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise FileError(f"A cell of this file is longer than {csv.field_size_limit():,} "
                            "characters: no recipient's cell is that long. Is a quote left "
                            "open, taking in the rest of the file?") from None
        raise FileError(f"The CSV cannot be read: {exc}.") from None
    finally:
        text.detach()  # the caller's file stays open


def _csv_rows(f: IO[bytes]) -> Iterator[list[str]]:
    with _csv_text(f) as src:
        yield from src.all_records()


def _zip_checks(f: IO[bytes]) -> bool:
    """What is refused before a workbook is opened: encryption, a zip bomb, too many
    shared strings. Returns whether the shared strings hold `_xHHHH_` escapes."""
    size = _size(f)
    escaped = False
    try:
        with zipfile.ZipFile(f) as z:
            infos = z.infolist()
            if any(i.flag_bits & 0x1 for i in infos):
                raise FileError("This workbook is encrypted: save it without a password.")
            inflated = sum(i.file_size for i in infos)
            if (inflated > ZIP_FLOOR and inflated > ZIP_RATIO * max(size, 1)) or any(
                    i.file_size > PART_FLOOR and i.file_size > ZIP_RATIO * max(
                        i.compress_size, 1) for i in infos):
                raise FileError("This workbook inflates to far more than its size (a zip "
                                "bomb?); it was not opened.")
            for info in infos:
                if info.filename.lower().endswith("sharedstrings.xml"):
                    found, escapes = _shared_strings(z, info)
                    if found > MAX_SHARED_STRINGS:
                        raise FileError(f"The workbook holds more than {MAX_SHARED_STRINGS:,} "
                                        "different texts: save it as CSV and upload that.")
                    escaped |= escapes
    except (zipfile.BadZipFile, zlib.error, EOFError):
        raise FileError("This XLSX file is corrupt and cannot be opened.") from None
    f.seek(0)
    return escaped


def _xlsx_rows(f: IO[bytes], *, zip_checked: bool = False,
               scanned: bool = False) -> Iterator[list[str]]:
    """The first sheet's rows through openpyxl; the zip checks and the sheet's formula
    scan are skipped where they were made already (`_xlsx_source`)."""
    import openpyxl

    if not zip_checked:
        _zip_checks(f)
    f.seek(0)
    try:
        # read_only streams the sheet XML; data_only gives formulas' cached values.
        book = openpyxl.load_workbook(f, read_only=True, data_only=True)
    except Exception:  # invalid XML or values anywhere in the package raise all sorts
        raise FileError("This XLSX file is corrupt and cannot be opened.") from None
    try:
        if not book.worksheets:
            raise FileError("The workbook has no sheet.")
        sheet = next((s for s in book.worksheets if s.sheet_state in _SHOWN), None)
        if sheet is None:
            raise FileError(NO_VISIBLE_SHEET)
        # Before any row: a formula never calculated would read as an empty cell. (The
        # part's name is openpyxl's own, as it opens it; there is no public accessor.)
        if not scanned:
            with zipfile.ZipFile(f) as z:
                found, first, _ = _sheet_scan(z, sheet._worksheet_path)
                shown = _shown_cells(z, sheet._worksheet_path, _shown_otherwise(book))
            if found:
                raise FileError(_uncalculated_message(found, first))
            if shown[0]:
                raise FileError(_shown_message(*shown))
        # The sheet's <dimension> is not trusted: openpyxl would stop at its last row (and
        # silently drop the rows after it when the writer left it stale) and pad every row
        # to its width (a few bytes can declare A1:XFD1048576).
        sheet.reset_dimensions()
        cells = 0
        for row_no, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells += len(values)
            if row_no > SHEET_ROWS:
                raise FileError(f"This XLSX file is corrupt: its sheet goes past row "
                                f"{SHEET_ROWS:,}.")
            if cells > SHEET_CELLS:
                raise FileError(f"The sheet spans more than {SHEET_CELLS:,} cells (empty "
                                "ones between filled ones count): delete the columns and rows "
                                "that are not needed.")
            yield [cell_text(v) for v in values]
    except FileError:
        raise
    except Exception:  # any parser failure mid-sheet means a corrupt file
        raise FileError(_UNREADABLE) from None
    finally:
        book.close()


def _shared_strings(z: zipfile.ZipFile, info: zipfile.ZipInfo) -> tuple[int, bool]:
    """How many entries a shared-strings part holds, counted as it inflates (the part
    is never held whole; stops counting once past the limit), and whether any holds an
    `_xHHHH_` escape."""
    found, escaped, tail = 0, False, b""
    with z.open(info) as part:
        while chunk := part.read(1 << 20):
            # An entry's tag may straddle two chunks: the last bytes are read again,
            # and a tag is counted in the chunk where it ends.
            block = tail + chunk
            found += len(_SHARED_ENTRY.findall(block)) - len(_SHARED_ENTRY.findall(tail))
            escaped = escaped or (b"_x" in block and _ESCAPE.search(block) is not None)
            tail = block[-64:]
            if found > MAX_SHARED_STRINGS:
                break
    return found, escaped


def _sheet_scan(z: zipfile.ZipFile, name: str) -> tuple[int, list[str], bool]:
    """Formula cells of a sheet part saved without a calculated value (openpyxl's data_only
    reads each as empty): how many, and the references of the first SHOWN_CELLS; and
    whether the sheet holds what only openpyxl reads as the file rules expect (an error
    cell, an `_xHHHH_` escape). Scanned as the part inflates (never held whole); a block
    without a formula tag costs a few substring searches. A formula's text result is
    kept with t="str" and may be empty (IF(…,"",…)): that one was calculated if it has a
    <v> at all."""
    found, carry, unusual = 0, b"", False
    first: list[str] = []
    with z.open(name) as part:
        while chunk := part.read(SCAN_BYTES):
            block, done = carry + chunk, 0
            unusual = unusual or (b"_x" in block and _ESCAPE.search(block) is not None) or (
                (b'"e"' in block or b"'e'" in block) and _ERROR_CELL.search(block) is not None)
            pattern = _UNCALCULATED_NS if b":f" in block else \
                _UNCALCULATED if b"<f" in block else None
            if pattern is not None:
                for m in pattern.finditer(block):
                    done = m.end()
                    attrs = dict(_CELL_ATTR.findall(m.group(2) or b""))
                    if attrs.get(b"t") in (b"str", b"inlineStr") and _TEXT_VALUE.search(
                            m.group(0)):
                        continue  # a text result, calculated and empty
                    found += 1
                    if len(first) < SHOWN_CELLS and b"r" in attrs:
                        first.append(attrs[b"r"].decode("ascii", "replace"))
            carry = block[max(done, len(block) - CELL_BYTES):]
    return found, first, unusual


def _shown_otherwise(wb: Any) -> dict[int, str]:
    """Cell styles whose number format shows a number otherwise than the file holds it
    (index → the format): zero-padded (000000 shows 12345 as 012345), percentages,
    currencies, thousands separators, fixed decimals, fractions, and the built-in
    formats openpyxl does not know (the CJK dates 27-36 and 50-58, which it reads as
    plain numbers). General, text (@), 0 and #-only formats show what the file holds,
    and dates read as dates."""
    from openpyxl.styles.numbers import BUILTIN_FORMATS, BUILTIN_FORMATS_MAX_SIZE, is_date_format

    custom = list(getattr(wb, "_number_formats", []))
    found: dict[int, str] = {}
    for i, style in enumerate(getattr(wb, "_cell_styles", [])):
        fid = int(style.numFmtId)
        n = fid - BUILTIN_FORMATS_MAX_SIZE
        fmt = BUILTIN_FORMATS.get(fid) if n < 0 else custom[n] if n < len(custom) else None
        if fmt is None:  # unknown to openpyxl: whatever it shows, not what openpyxl reads
            found[i] = f"number format {fid}"
            continue
        plain = fmt.strip().strip(";")
        if plain in ("General", "@", "0", "") or set(plain) == {"#"} or is_date_format(fmt):
            continue
        found[i] = fmt
    return found


def _shown_cells(z: zipfile.ZipFile, name: str, styles: dict[int, str]
                 ) -> tuple[int, list[str], str]:
    """Cells holding a number (no type, or t="n") in one of `styles`: how many, the
    references of the first SHOWN_CELLS, and the first one's format. Scanned as the
    part inflates; a cell tag is counted in the block where it ends."""
    if not styles:
        return 0, [], ""
    ids = b"|".join(str(i).encode() for i in sorted(styles))
    # A cell tag naming one of the styles (its attributes in any order), holding a value
    # or a formula's (an empty <c ...></c> shows nothing).
    tag = re.compile(rb"<(?:[A-Za-z_][\w.-]*+:)?+c(?=\s)([^<>]*?\ss\s*=\s*[\"'](" + ids
                     + rb")[\"'][^<>]*+)(?<!/)>(?=\s*+<(?:[A-Za-z_][\w.-]*+:)?+[vf][\s/>])")
    found, fmt, carry = 0, "", b""
    first: list[str] = []
    with z.open(name) as part:
        while chunk := part.read(SCAN_BYTES):
            block = carry + chunk
            for m in tag.finditer(block):
                if m.end() <= len(carry):
                    continue  # seen with the block before
                attrs = dict(_CELL_ATTR.findall(m.group(1)))
                if attrs.get(b"t", b"n") != b"n":
                    continue  # text, a boolean, an error: shown as held
                found += 1
                if len(first) < SHOWN_CELLS and b"r" in attrs:
                    first.append(attrs[b"r"].decode("ascii", "replace"))
                fmt = fmt or styles[int(m.group(2))]
            carry = block[-CELL_BYTES:]  # a cell split between two blocks is read whole
    return found, first, fmt


def _shown_message(found: int, first: list[str], fmt: str) -> str:
    cells = f"{found:,} cell{'' if found == 1 else 's'}"
    if first:
        more = f" and {found - len(first):,} more" if found > len(first) else ""
        cells += f": {', '.join(first)}{more}"
    return (f"This workbook shows numbers otherwise than it holds them ({cells}, with the "
            f"number format {fmt}): a format such as 000000 shows 012345 where the file "
            "holds 12345, so the messages would not say what you see. Format those cells "
            "as Text and type the values again, or save the sheet as CSV from your "
            "spreadsheet program (it writes what is shown), then upload that.")


def _uncalculated_message(found: int, first: list[str]) -> str:
    cells = f"{found:,} cell{'' if found == 1 else 's'}"
    if first:
        more = f" and {found - len(first):,} more" if found > len(first) else ""
        cells += f": {', '.join(first)}{more}"
    return (f"This workbook holds formulas that were never calculated ({cells}): the program "
            "that wrote it saved no value for them, so they would read as empty. Either "
            "open the file in a spreadsheet program and save it (that calculates them), or "
            "copy those cells and paste them as values; then upload it again.")


def _opened(f: IO[bytes], filename: str, max_bytes: int) -> str:
    """"csv" or "xlsx" for a file of an allowed size, or a FileError."""
    size = _size(f)
    if size == 0:
        raise FileError("The file is empty.")
    if size > max_bytes:
        raise FileError(f"The file is {size / 1048576:.1f} MB; at most "
                        f"{max_bytes // 1048576} MB are allowed.")
    return kind_of(f, filename)


# The sheet read is the first one Excel shows: a hidden sheet (lookups, an old list)
# is not what the user sees and means to send.
_SHOWN = (None, "visible")
NO_VISIBLE_SHEET = "The workbook has no visible sheet."


def _first_sheet(f: IO[bytes]) -> tuple[str, str, dict[int, str]] | None:
    """The title and part of the sheet openpyxl's path reads, found by the steps of
    openpyxl's own load_workbook but the slow ones (the shared strings, which the child
    reads; sizing each worksheet; defined names): so a workbook it cannot open is
    refused alike whichever reader would take it; with the styles `_shown_otherwise`
    finds. None when openpyxl's path should report what is wrong."""
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.styles.stylesheet import apply_stylesheet
    from openpyxl.xml.constants import SHARED_STRINGS

    try:
        reader = ExcelReader(f, read_only=True, data_only=True)
        try:
            reader.read_manifest()
            # openpyxl reads the shared strings the manifest names (and fails if they are
            # missing); calamine those the workbook's relationships name: leave any doubt
            # about which part that is to openpyxl.
            strings = reader.package.find(SHARED_STRINGS)
            if (strings is not None and strings.PartName[1:] not in reader.valid_files) or sum(
                    n.lower().endswith("sharedstrings.xml") for n in reader.valid_files) > 1:
                return None
            reader.read_workbook()
            reader.read_properties()
            reader.read_custom()
            reader.read_theme()
            apply_stylesheet(reader.archive, reader.wb)
            # read_worksheets' choice, without making the worksheets: openpyxl parses a
            # whole sheet that has no <dimension> to size it (11 s for a million rows).
            first = None
            for sheet, rel in reader.parser.find_sheets():
                if rel.target not in reader.valid_files:
                    continue
                if "chartsheet" in rel.Type:
                    reader.read_chartsheet(sheet, rel)  # as openpyxl's load reads them
                elif first is None and sheet.state in _SHOWN:
                    first = (str(sheet.name), str(rel.target), _shown_otherwise(reader.wb))
            return first
        finally:
            reader.archive.close()
    except Exception:  # openpyxl's path reports it as it always has
        return None
    finally:
        f.seek(0)


@contextlib.contextmanager
def _xlsx_source(f: IO[bytes]) -> Iterator[_CsvText | Iterator[list[str]]]:
    """The first sheet: as CSV text from python-calamine in a child process
    (app/sms/workbook.py), to be read as a CSV file is; or openpyxl's rows when the child
    declines the sheet or it holds what only openpyxl reads as the file rules expect.
    The text must be read to its end (its last rows are checked to have come)."""
    escaped = _zip_checks(f)
    sheet = None if escaped else _first_sheet(f)
    if sheet is None:
        yield _xlsx_rows(f, zip_checked=True)
        return
    name, part, styles = sheet
    with workbook.SheetReader(f, name, most_rows=SHEET_ROWS, most_cells=SHEET_CELLS) as child:
        try:
            with zipfile.ZipFile(f) as z:
                found, first, unusual = _sheet_scan(z, part)
                shown = _shown_cells(z, part, styles) if not found else (0, [], "")
        except (zipfile.BadZipFile, zlib.error, EOFError, KeyError):
            raise FileError("This XLSX file is corrupt and cannot be opened.") from None
        if found:
            raise FileError(_uncalculated_message(found, first))
        if shown[0]:
            raise FileError(_shown_message(*shown))
        text = None if unusual else child.rows()
        if text is not None:
            try:
                yield _CsvText(text, ",")
            except (csv.Error, UnicodeDecodeError):
                raise FileError(_UNREADABLE) from None
            if not child.finished():
                raise FileError(_UNREADABLE)
            return
    f.seek(0)
    yield _xlsx_rows(f, zip_checked=True, scanned=True)


def _xlsx_cells(f: IO[bytes]) -> Iterator[list[str]]:
    with _xlsx_source(f) as source:
        yield from source.all_records() if isinstance(source, _CsvText) else source


def rows_of(f: IO[bytes], filename: str, *, max_bytes: int = MAX_BYTES) -> Iterator[list[str]]:
    return _xlsx_cells(f) if _opened(f, filename, max_bytes) == "xlsx" else _csv_rows(f)


# --- validating -------------------------------------------------------------------------


def line_breaks(value: str) -> str:
    """Why a cell holding line breaks is refused, and the likely cause in a CSV."""
    breaks = value.count("\n") or value.count("\r")
    return (f"This cell holds {breaks} line break(s), which a parameter may not. In a CSV "
            "file a quote opened in a cell and never closed reads the rows after it into "
            "that cell: close it.")


def is_header(cells: list[str]) -> bool:
    """A first row whose first cell holds no digit is a header."""
    first = cells[0].strip().lstrip("\ufeff") if cells else ""
    return not any(c.isdigit() for c in first)


# How surely a header names the phone column: exactly a phone word; holding a word
# that only means a phone ("Mobile phone", "phone_number", "手机号"; "tel" on its own,
# not inside "Hotel"); holding one that may ("Order number", "订单号码").
_PHONE_WORDS = re.compile(r"phone|mobile|手机|电话|(?<![a-z])tel(?![a-z])")


def _phone_rank(name: str) -> int | None:
    if name in PHONE_HEADERS:
        return 0
    if _PHONE_WORDS.search(name):
        return 1
    return 2 if any(h in name for h in PHONE_HEADERS) else None


def phone_column(cells: list[str]) -> int:
    """The column whose header most surely names a phone (the first of equals)."""
    ranks = [(rank, i) for i, cell in enumerate(cells)
             if (rank := _phone_rank(cell.strip().lstrip("\ufeff").strip().lower()))
             is not None]
    if ranks:
        return min(ranks)[1]
    raise FileError("The header row has no phone column: name the first column "
                    "\"phone\" (or remove the header).")


_row: Callable[[tuple[int, str, str, list[str], int]], Row] = functools.partial(
    tuple.__new__, Row)  # type: ignore[assignment]  # Row(...), without Python-level __new__


class Batch:
    """The verdicts of consecutive rows: `valid` accepted rows billed `billed` items in
    all, and `errors`. `items()` lists them in file order, made when asked (counting
    needs none of them)."""

    __slots__ = ("_columns", "_items", "billed", "errors", "valid")

    def __init__(self, items: list[Row | RowError]) -> None:
        self._items: list[Row | RowError] | None = items
        self._columns: tuple[int, Any, list[Any], list[int]] | None = None
        self.errors = [i for i in items if type(i) is RowError]
        self.valid = len(items) - len(self.errors)
        self.billed = sum(i.fee for i in items if type(i) is Row)

    @classmethod
    def mainland(cls, first: int, nationals: Any, values: list[Any],
                 fees: list[int]) -> Batch:
        """Rows first, first + 1, … all accepted: their national numbers, one column
        per parameter, their billed items."""
        batch = cls([])
        batch._items, batch._columns = None, (first, nationals, values, fees)
        batch.valid, batch.billed = len(fees), sum(fees)
        return batch

    @property
    def rows(self) -> int:
        return self.valid + len(self.errors)

    @property
    def columns(self) -> tuple[int, Any, list[Any], list[int]] | None:
        """For rows all accepted from a block of mainland lines: (first row number,
        national numbers, one column of values per parameter, billed items)."""
        return self._columns

    def items(self) -> list[Row | RowError]:
        if self._items is None:
            assert self._columns is not None
            first, nationals, values, fees = self._columns
            self._items = list(map(_row, zip(
                range(first, first + len(fees)), map("+86".__add__, nationals),
                itertools.repeat(numbers.MAINLAND), map(list, zip(*values, strict=True)) if values
                else ([] for _ in fees), fees)))
        return self._items

    def accepted(self) -> list[Row]:
        return [i for i in self.items() if type(i) is Row] if self.errors else \
            self.items()  # type: ignore[return-value]


class _Checker:
    """One file's rows against one template, in order (duplicates need the order).

    A row is read one of three ways, all to the same verdict: a whole block of lines
    of the common shape (a mainland mobile, then parameters that pass the template's
    precompiled check, nothing to strip) by one regex over the block and column
    arithmetic; a row whose cells have that shape by one regex per cell; any other row
    by the rules themselves (clean_phone, numbers, params.check)."""

    def __init__(self, template: Template, max_rows: int) -> None:
        self.template, self.max_rows = template, max_rows
        self.want = len(templating.variables(template.content))
        self.phone_col = self.row_no = self.data_rows = 0
        self.seen: set[str] = set()  # numbers so far, as dup_key gives them
        self.biller = Biller(template)
        self.safe = params.safe_values(template.content, template.sms_type,
                                       max_length=template.max_param_length,
                                       allow_urls=template.allow_urls)
        self.values_re = params.values_pattern(template.content, template.sms_type,
                                               max_length=template.max_param_length,
                                               allow_urls=template.allow_urls)
        most = [8 if p == params.CODE_PATTERN else template.max_param_length
                for p in self.safe or ()]
        self.fee_table = self.biller.by_length(most) if self.safe is not None else None

    def _too_many(self) -> FileError:
        return FileError(f"The file has more than {self.max_rows:,} rows; split it into "
                         "several tasks.")

    def records(self, records: Iterable[list[str]]) -> Iterator[Batch]:
        """Rows read one at a time, a Batch per BATCH verdicts."""
        items: list[Row | RowError] = []
        row = self.row
        for cells in records:
            self.row_no += 1
            # A blank first row (a spreadsheet's formatted empty cells) is no header.
            if self.row_no == 1 and any(c.strip() for c in cells) and is_header(cells):
                self.phone_col = phone_column(cells)
                continue
            item = row(self.row_no, cells)
            if item is not None:
                items.append(item)
                if len(items) >= BATCH:
                    yield Batch(items)
                    items = []
        if items:
            yield Batch(items)

    def row(self, row_no: int, cells: list[str]) -> Row | RowError | None:
        """One row's verdict; None for a blank line (not a row)."""
        pc, t = self.phone_col, self.template
        m = CN_CELL.fullmatch(cells[pc]) if pc < len(cells) else None
        if m is None and not any(c.strip() for c in cells):
            return None  # blank lines (and Excel's empty trailing rows) are not rows
        self.data_rows += 1
        if self.data_rows > self.max_rows:
            raise self._too_many()
        if m is not None:
            if t.region != MAINLAND:
                return RowError(row_no, PHONE, numbers.IS_MAINLAND)
            key = m.group(1)
            phone, iso = "+86" + key, numbers.MAINLAND
        else:
            if pc >= len(cells):
                return RowError(row_no, PHONE, numbers.EMPTY)
            cleaned = clean_phone(cells[pc])
            if isinstance(cleaned, RowError):
                return RowError(row_no, PHONE, cleaned.reason)
            found = parse_number(cleaned, t.region) if cleaned else numbers.EMPTY
            if isinstance(found, str):
                return RowError(row_no, PHONE, found)
            (phone, iso), key = found, dup_key(found[0])
        values = cells[1:] if pc == 0 else cells[:pc] + cells[pc + 1:]
        joined = "\x00".join(values)
        if (self.values_re is not None and len(values) == self.want
                and not params.may_hold_artifact(joined)
                and self.values_re.fullmatch(joined) is not None):
            table = self.fee_table
            fee = self.biller(values) if table is None else table[sum(
                map(operator.mul, map(len, values), self.biller.times))]
        else:
            values = [c.strip() for c in values]
            while values and not values[-1]:
                values.pop()  # trailing empty cells are not extra variables
            for at, value in enumerate(values, start=1):
                if "\n" in value or "\r" in value:  # found from outside: rows vanished
                    return RowError(row_no, f"{{{at}}}", line_breaks(value))
            want = self.want
            if len(values) != want:
                what = "missing" if len(values) < want else "extra"
                return RowError(row_no, f"{{{min(len(values), want) + 1}}}",
                                f"The template has {want} variable(s); this row gives "
                                f"{len(values)} ({what}).")
            for at, value in enumerate(values, start=1):
                why = params.spreadsheet_artifact(value)
                if why is not None:  # found from outside: "#DIV/0!" went out as text
                    return RowError(row_no, f"{{{at}}}", why)
            problem = params.check(t.content, t.sms_type, tuple(values),
                                   max_length=t.max_param_length,
                                   allow_urls=t.allow_urls) if want else None
            if problem is not None:
                n = re.search(r"\{(\d+)\}", problem.message)
                return RowError(row_no, n.group(0) if n else "", problem.message)
            fee = self.biller(values)
        if key in self.seen:
            return RowError(row_no, PHONE, DUPLICATE)
        self.seen.add(key)
        return _row((row_no, phone, iso, values, fee))

    def line_patterns(self, delimiter: str) -> list[re.Pattern[str]]:
        """A CSV line of the common shape (nothing to strip, no quote inside a field),
        one group per column: every field bare, or every field quoted (as some
        exporters write them); none for a template without such a shape."""
        if (self.template.region != MAINLAND or self.safe is None
                or self.phone_col > len(self.safe)):
            return []
        fields = [f"({p})" for p in self.safe]
        fields.insert(self.phone_col, _CN_FIELD)
        return [re.compile("^" + re.escape(delimiter).join(f"{q}{f}{q}" for f in fields)
                           + r"\r?$", re.MULTILINE) for q in ("", '"')]

    def block(self, found: list[Any]) -> Batch:
        """Lines that all matched one of `line_patterns`: the regex's groups, line by line."""
        n, first = len(found), self.row_no + 1
        self.row_no += n
        self.data_rows += n
        if self.data_rows > self.max_rows:
            raise self._too_many()
        columns: list[Any] = list(zip(*found, strict=True)) if self.safe else [found]
        nationals = columns.pop(self.phone_col)
        seen = self.seen  # keys: the national numbers (dup_key)
        if seen.isdisjoint(nationals):
            before = len(seen)
            seen.update(nationals)
            if len(seen) - before == n:
                return Batch.mainland(first, nationals, columns, self._fees(columns, n))
            seen.difference_update(nationals)  # all were new: take them back, row by row
        items: list[Row | RowError] = []
        for i, key in enumerate(nationals):
            if key in seen:
                items.append(RowError(first + i, PHONE, DUPLICATE))
                continue
            seen.add(key)
            values = [c[i] for c in columns]
            items.append(Row(first + i, "+86" + nationals[i], numbers.MAINLAND, values,
                             self.biller(values)))
        return Batch(items)

    def _fees(self, columns: list[Any], n: int) -> list[int]:
        table = self.fee_table
        if table is None:
            return [self.biller(list(values)) for values in zip(*columns, strict=True)] if columns \
                else [self.biller([])] * n
        weighted: Any = None
        for column, times in zip(columns, self.biller.times, strict=True):
            lengths: Any = map(len, column)
            if times != 1:
                lengths = map(times.__mul__, lengths)
            weighted = lengths if weighted is None else map(operator.add, weighted, lengths)
        return [table[0]] * n if weighted is None else list(map(table.__getitem__, weighted))

    def csv(self, f: IO[bytes]) -> Iterator[Batch]:
        with _csv_text(f) as src:
            yield from self.text(src)

    def text(self, src: _CsvText) -> Iterator[Batch]:
        yield from self.records(src.records([]))  # the header, if any
        bare, quoted = self.line_patterns(src.delimiter) or (None, None)
        for lines in src.blocks():
            block = "".join(lines) if bare is not None else ""
            if bare is not None and quoted is not None and not params.may_hold_artifact(block):
                found = (quoted if block.startswith('"') else bare).findall(block)
                if len(found) == len(lines):  # every line matched, once
                    yield self.block(found)
                    continue
            yield from self.records(src.records(lines))

    def xlsx(self, f: IO[bytes]) -> Iterator[Batch]:
        with _xlsx_source(f) as source:
            yield from self.text(source) if isinstance(source, _CsvText) else \
                self.records(source)


def scan(f: IO[bytes], filename: str, template: Template, *, max_bytes: int = MAX_BYTES,
         max_rows: int = MAX_ROWS) -> Iterator[Batch]:
    """`validate`, a Batch of rows at a time (what the services use)."""
    checker = _Checker(template, max_rows)
    if _opened(f, filename, max_bytes) == "xlsx":
        yield from checker.xlsx(f)
    else:
        yield from checker.csv(f)
    if checker.data_rows == 0:
        raise FileError("The file has no recipient rows.")


def validate(f: IO[bytes], filename: str, template: Template, *, max_bytes: int = MAX_BYTES,
             max_rows: int = MAX_ROWS) -> Iterator[Row | RowError]:
    """Every data row's verdict, in file order. Raises FileError for the whole file
    (possibly after some rows were yielded: callers keep nothing then)."""
    for batch in scan(f, filename, template, max_bytes=max_bytes, max_rows=max_rows):
        yield from batch.items()


# --- writing ---------------------------------------------------------------------------

def standard_columns(content: str) -> list[str]:
    return [PHONE, *(f"{{{n}}}" for n in templating.variables(content))]


def example_row(content: str, sms_type: str, region: str) -> list[str]:
    phone = "13800138000" if region == MAINLAND else "+14155550100"
    return [phone, *templating.sample_params(len(templating.variables(content)), sms_type)]
