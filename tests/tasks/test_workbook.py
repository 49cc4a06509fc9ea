"""XLSX task files read by python-calamine in a child process (app/sms/workbook.py): every
workbook gets the verdicts openpyxl's path gives it, whichever reader took it; the child
declines what it cannot read that way, and a workbook that would abort it costs nothing
but the child."""

from __future__ import annotations

import datetime
import io
import sys
import zipfile
from collections.abc import Iterator
from typing import Any

import openpyxl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from openpyxl.chart import BarChart

from app.sms import memberfile, taskfile, workbook
from app.sms.taskfile import FileError, Row, RowError
from tests.tasks.test_taskfile import _MAIN, CODE, NOTE, excel_book, phone_rows, xlsx

Verdicts = list[Row | RowError] | str


class Readers:
    """Which reader each validation used: the child's answers, in order."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.took: list[bool] = []
        self.children: list[workbook.SheetReader] = []
        real_rows, real_init = workbook.SheetReader.rows, workbook.SheetReader.__init__

        def rows(reader: workbook.SheetReader) -> Any:
            text = real_rows(reader)
            self.took.append(text is not None)
            return text

        def init(reader: workbook.SheetReader, *args: Any, **kw: Any) -> None:
            real_init(reader, *args, **kw)
            self.children.append(reader)

        monkeypatch.setattr(workbook.SheetReader, "rows", rows)
        monkeypatch.setattr(workbook.SheetReader, "__init__", init)


@pytest.fixture
def readers(monkeypatch: pytest.MonkeyPatch) -> Readers:
    return Readers(monkeypatch)


def verdicts(data: bytes, template: taskfile.Template = CODE, **kw: int) -> Verdicts:
    try:
        return list(taskfile.validate(io.BytesIO(data), "f.xlsx", template, **kw))
    except FileError as exc:
        return f"FileError: {exc}"


def by_openpyxl(data: bytes, template: taskfile.Template = CODE, **kw: int) -> Verdicts:
    """The same file read by openpyxl alone (the calamine path never starts)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(taskfile, "_first_sheet", lambda f: None)
        return verdicts(data, template, **kw)


def both(data: bytes, readers: Readers, template: taskfile.Template = CODE,
         **kw: int) -> tuple[Verdicts, bool]:
    """The verdicts, checked equal to openpyxl's; and whether the child read the file."""
    before = len(readers.took)
    got = verdicts(data, template, **kw)
    assert got == by_openpyxl(data, template, **kw)
    return got, any(readers.took[before:])


def test_the_common_file_is_read_by_the_child(readers: Readers) -> None:
    got, child = both(xlsx(phone_rows(300)), readers)
    assert child
    assert isinstance(got, list) and len(got) == 300
    assert got[0] == Row(2, "+8613800138000", "CN", ["1234"], 1)


PLAIN = {
    # what spreadsheets hold: text with spaces, commas, quotes, newlines, CJK; numbers
    # that are whole, negative zero, fractional, 15 digits; booleans; empty cells
    "text": [["phone", "name", "order"], ["13800138000", " 张三 ", 'A,"1"'],
             ["+86 138 0013 8001", "line\nbreak", "x\r\ny"], ["'13800138002", "", "z"]],
    "numbers": [["phone", "name", "order"], [13800138000, 1.5, -0.0],
                [13800138001.0, 123456789012345, 7], [13800138002, 0.1, True],
                [None, "no phone", None], [13800138003, None, "b"], [13800138004]],
    "gaps and widths": [[], [None, None], ["phone", "name", "order"], [],
                        [13800138000, "a", "b", None, None, "extra"],
                        [13800138001, "a"], [None, None, None, None, None, None, 1]],
    "errors in rows": [["12345", "a", "b"], [14155550100, "a", "b"],
                       [13800138000, "a", "b"], [13800138000, "a", "b"],
                       ["1.38001E+10", "a", "b"], ["13800138009.0", "a", "b"]],
}


@pytest.mark.parametrize("name", PLAIN)
def test_plain_workbooks_get_openpyxls_verdicts(name: str, readers: Readers) -> None:
    got, child = both(xlsx(PLAIN[name]), readers, NOTE)
    assert child, "the child declined a plain workbook"
    assert isinstance(got, list) and got


def test_group_files_are_read_by_the_child_too(readers: Readers) -> None:
    rows: list[list[object]] = [["phone", "name", "city"], [13800138000, "张三", "Beijing"],
                                ["+1 415 555 0100", "Ann", None], [13800138000, "again", 7],
                                [None, None, None], ["12345", "x", "y"]]
    data = xlsx(rows)

    def members() -> list[object]:
        return list(memberfile.members(io.BytesIO(data), "f.xlsx"))

    got = members()
    assert readers.took == [True]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(taskfile, "_first_sheet", lambda f: None)
        assert got == members()
    assert len(got) == 4


def test_a_phone_column_after_the_first_is_used_past_the_first_block(
        readers: Readers) -> None:
    # The header names column B; column A holds mobiles too (a referrer). Lines of the
    # usual shape past the first 64 KB of text were once read with the phone in A.
    header = ('<row r="1"><c r="A1" t="inlineStr"><is><t>referrer</t></is></c><c r="B1" '
              't="inlineStr"><is><t>phone</t></is></c><c r="C1" t="inlineStr"><is><t>order'
              '</t></is></c></row>')
    rows = "".join(f'<row r="{i}"><c r="A{i}"><v>{13800000000 + i}</v></c><c r="B{i}" '
                   f't="inlineStr"><is><t>139-0000-{i:04d}</t></is></c><c r="C{i}" '
                   f't="inlineStr"><is><t>x{i}</t></is></c></row>' for i in range(2, 4002))
    got, child = both(excel_book(header + rows, [], "A1"), readers, NOTE)
    assert child
    assert isinstance(got, list) and got[-1] == Row(4001, "+8613900004001", "CN",
                                                    ["13800004001", "x4001"], 1)


def test_a_carriage_return_in_a_cell_stays_in_its_cell(readers: Readers) -> None:
    rows = ('<row r="1"><c r="A1"><v>13800138000</v></c><c r="B1" t="s"><v>0</v></c></row>'
            '<row r="2"><c r="A2"><v>13800138001</v></c><c r="B2"><v>5678</v></c></row>')
    got, child = both(excel_book(rows, ["1234&#13;13800138009"], "A1"), readers)
    assert child
    assert isinstance(got, list) and [r.row for r in got] == [1, 2]


def test_a_sheet_name_is_matched_as_openpyxl_reads_it(readers: Readers) -> None:
    # Two sheets whose names differ only by a line break in the XML: openpyxl reads the
    # first as "A B", like the second. The child must not read the second instead.
    data = excel_book('<row r="1"><c r="A1"><v>13800138000</v></c><c r="B1"><v>1234</v>'
                      '</c></row>', [], "A1")
    data = _rename_sheet(data, "A&#10;B", extra="A B")
    got, child = both(data, readers)
    assert not child
    assert isinstance(got, list) and len(got) == 1


def _rename_sheet(data: bytes, name: str, extra: str) -> bytes:
    """The workbook with its sheet named `name` and a second sheet `extra` (the same
    part, so a reader of either sees the same rows only if it picks the first)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "xl/workbook.xml":
                body = body.replace(b'<sheet name="Sheet1" sheetId="1" r:id="rId1"/>',
                                    f'<sheet name="{name}" sheetId="1" r:id="rId1"/>'
                                    f'<sheet name="{extra}" sheetId="2" r:id="rId9"/>'.encode())
            if info.filename == "xl/_rels/workbook.xml.rels":
                body = body.replace(b"</Relationships>", (
                    b'<Relationship Id="rId9" Type="http://schemas.openxmlformats.org/'
                    b'officeDocument/2006/relationships/worksheet" Target="worksheets/'
                    b'sheet2.xml"/></Relationships>'))
            z.writestr(info, body)
        z.writestr("xl/worksheets/sheet2.xml", f'<worksheet xmlns="{_MAIN}"><sheetData><row '
                   'r="1"><c r="A1"><v>13900139000</v></c><c r="B1"><v>1</v></c></row>'
                   '</sheetData></worksheet>')
    return out.getvalue()


def test_a_workbook_openpyxl_cannot_open_is_refused_by_both(readers: Readers) -> None:
    # A style with a text number format id: openpyxl's load raised TypeError (a 500).
    data = excel_book('<row r="1"><c r="A1"><v>13800138000</v></c><c r="B1"><v>1234</v>'
                      '</c></row>', [], "A1")
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as z:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "xl/styles.xml":
                body = body.replace(b'numFmtId="14"', b'numFmtId="abc"')
            z.writestr(info, body)
    got, child = both(out.getvalue(), readers)
    assert not child and got == "FileError: This XLSX file is corrupt and cannot be opened."


def test_a_child_past_its_deadline_is_killed_and_openpyxl_reads(
        monkeypatch: pytest.MonkeyPatch, readers: Readers) -> None:
    monkeypatch.setattr(workbook, "DEADLINE_S", 0.001)  # before the interpreter is up
    data = xlsx(phone_rows(20))
    got = verdicts(data)
    assert readers.took == [False] and got == by_openpyxl(data)
    proc = readers.children[0].proc
    assert proc is not None and proc.returncode is not None


def test_a_child_that_died_while_given_the_file_is_declined() -> None:
    """Seen as a flake of the test above under load: the watchdog killed the child while
    the file was still being written to it; the broken pipe closed the reader, and
    asking it for rows then read a closed pipe (ValueError, a 500) instead of declining."""
    reader = workbook.SheetReader(io.BytesIO(xlsx(phone_rows(5))), "Sheet", most_rows=10,
                                  most_cells=100)
    reader.close()  # as the broken pipe does
    assert reader.rows() is None


def test_the_rows_may_be_read_at_the_callers_pace(readers: Readers) -> None:
    # Once the child has decided, its deadline is the caller's (a create inserts each
    # batch as it comes): the short one is for the child alone.
    scan = taskfile.scan(io.BytesIO(xlsx(phone_rows(100))), "f.xlsx", CODE)
    next(scan)
    watchdog = readers.children[0].watchdog
    assert watchdog is not None and watchdog.interval == workbook.STREAM_DEADLINE_S
    assert sum(b.rows for b in scan) >= 0
    assert watchdog.finished.is_set()  # cancelled once the child is done


def test_leading_empty_columns_and_rows_keep_their_places(readers: Readers) -> None:
    # The first cell in column C, row 3: the child's grid starts there; columns A-B and
    # rows 1-2 must still count.
    rows = ('<row r="3"><c r="C3"><v>13800138000</v></c><c r="D3"><v>1234</v></c></row>'
            '<row r="5"><c r="C5"><v>13800138001</v></c><c r="D5"><v>5678</v></c></row>')
    got, child = both(excel_book(rows, [], "C3:D5"), readers)
    assert child
    assert isinstance(got, list) and [r.row for r in got] == [3, 5]
    assert all(isinstance(r, RowError) for r in got)  # phone column A is empty


DECLINED = {
    # calamine reads these otherwise than openpyxl: the openpyxl path takes them
    "an error cell": ('<row r="1"><c r="A1"><v>13800138000</v></c>'
                      '<c r="B1" t="e"><v>#N/A</v></c></row>', []),
    "an error cell, spaced": ('<row r="1"><c r="A1"><v>13800138000</v></c>'
                              '<c r="B1" t = "e"><v>#N/A</v></c></row>', []),
    "an escape in a shared string": ('<row r="1"><c r="A1"><v>13800138000</v></c>'
                                     '<c r="B1" t="s"><v>0</v></c></row>', ["12_x0033_4"]),
    "an escape inline": ('<row r="1"><c r="A1"><v>13800138000</v></c><c r="B1" '
                         't="inlineStr"><is><t>12_x0033_4</t></is></c></row>', []),
    "a date": ('<row r="1"><c r="A1"><v>13800138000</v></c><c r="B1" s="1"><v>45293</v>'
               '</c></row>', []),
    "16 digits": ('<row r="1"><c r="A1"><v>13800138000</v></c>'
                  '<c r="B1"><v>1234567890123456</v></c></row>', []),
    "one cell at the last row and column": (
        '<row r="1"><c r="A1"><v>13800138000</v></c><c r="B1"><v>1234</v></c></row>'
        '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>', []),
    "a stray cell in the last column": (
        '<row r="1"><c r="A1"><v>13800138000</v></c><c r="XFD1"><v>1</v></c></row>'
        + "".join(f'<row r="{n}"><c r="A{n}"><v>{13800138000 + n}</v></c><c r="B{n}"><v>1234'
                  f'</v></c></row>' for n in range(2, 40)), []),
    "an empty sheet": ("", []),
}


@pytest.mark.parametrize("name", DECLINED)
def test_what_calamine_reads_otherwise_goes_to_openpyxl(name: str, readers: Readers) -> None:
    rows, strings = DECLINED[name]
    _, child = both(excel_book(rows, strings, "A1"), readers)
    assert not child


ODD = {
    # either reader may take these; the verdicts must not tell which did
    "a number with spaces": '<row r="1"><c r="A1"><v>13800138000</v></c><c r="B1"><v> 1234 </v>'
                            '</c></row>',
    "cells without references": '<row><c><v>13800138000</v></c><c><v>1234</v></c></row>'
                                '<row><c/><c><v>5678</v></c></row>',
    "text kept with and without xml:space": '<row r="1"><c r="A1" t="inlineStr"><is><t> '
                                            '13800138000 </t></is></c><c r="B1" t="inlineStr">'
                                            '<is><t xml:space="preserve"> 1234 </t></is></c></row>',
    "styled empty cells": '<row r="1"><c r="A1"><v>13800138000</v></c><c r="B1"><v>1234</v>'
                          '</c><c r="C1" s="2"/></row><row r="2"><c r="A2" s="2"/></row>',
}


@pytest.mark.parametrize("name", ODD)
def test_odd_sheets_get_the_same_verdicts(name: str, readers: Readers) -> None:
    both(excel_book(ODD[name], [], "A1"), readers)


def test_a_blank_first_row_is_no_header(readers: Readers) -> None:
    # Formatted empty cells in row 1 (openpyxl reads them as empty values; calamine not
    # at all): a blank row, not a header without a phone column. Found by the property.
    rows = ('<row r="1"><c r="A1" s="2"/><c r="B1" s="2"/></row>'
            '<row r="2"><c r="A2"><v>13800138000</v></c><c r="B2"><v>1234</v></c></row>')
    got, _ = both(excel_book(rows, [], "A1:B2"), readers)
    assert isinstance(got, list) and [r.row for r in got if isinstance(r, Row)] == [2]


def test_rows_out_of_order_are_each_read_at_their_place(readers: Readers) -> None:
    # No spreadsheet program writes them; openpyxl's reader would lose row 1 here, so
    # this is the one file whose verdicts depend on the reader that took it.
    rows = ('<row r="2"><c r="A2"><v>13800138001</v></c><c r="B2"><v>5678</v></c></row>'
            '<row r="1"><c r="A1"><v>13800138000</v></c><c r="B1"><v>1234</v></c></row>')
    got = verdicts(excel_book(rows, [], "A1"))
    assert readers.took == [True]
    assert isinstance(got, list) and [(r.row, r.phone) for r in got if isinstance(r, Row)] == [
        (1, "+8613800138000"), (2, "+8613800138001")]


def test_a_grid_past_the_cap_kills_only_the_child(readers: Readers) -> None:
    # 5 KB that calamine would grow into a grid of 17 billion cells: its allocation fails
    # under the child's cap and Rust aborts the child; openpyxl's path refuses the file.
    rows = ('<row r="1"><c r="A1"><v>13800138000</v></c><c r="B1"><v>1234</v></c></row>'
            '<row r="1048576"><c r="XFD1048576"><v>1</v></c></row>')
    got = verdicts(excel_book(rows, [], "A1"))
    assert got == by_openpyxl(excel_book(rows, [], "A1"))
    assert readers.took == [False]
    child = readers.children[0].proc
    assert child is not None and child.returncode != 0


def test_chart_sheets_first_are_skipped_by_both_readers(readers: Readers) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    book.create_chartsheet("chart", 0).add_chart(BarChart())
    for row in phone_rows(3):
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    got, _ = both(out.getvalue(), readers)
    assert isinstance(got, list) and len(got) == 3


def test_uncalculated_formulas_refuse_the_file_before_the_child_is_read(
        readers: Readers) -> None:
    data = xlsx(phone_rows(5), {"B3": "=1000+234"})
    got, _ = both(data, readers)
    assert isinstance(got, str) and "never calculated" in got
    assert readers.took == []  # refused before the child's answer was waited for
    assert all(c.proc is None or c.proc.returncode is not None for c in readers.children)


def test_a_file_stopped_halfway_stops_the_child(readers: Readers) -> None:
    with pytest.raises(FileError, match="more than 100 rows"):
        list(taskfile.validate(io.BytesIO(xlsx(phone_rows(5000))), "f.xlsx", CODE,
                               max_rows=100))
    assert readers.took == [True]
    proc = readers.children[0].proc
    assert proc is not None and proc.returncode is not None  # killed and reaped


def test_a_child_that_dies_mid_sheet_fails_the_file(readers: Readers) -> None:
    # 100,000 rows are ~2 MB of text, twice the pipe: the child is still writing when
    # it is killed after the first block is read.
    scan: Iterator[taskfile.Batch] = taskfile.scan(
        io.BytesIO(xlsx(phone_rows(100_000))), "f.xlsx", CODE)
    first = next(scan)
    assert first.rows > 0 and readers.took == [True]
    proc = readers.children[0].proc
    assert proc is not None
    proc.kill()
    with pytest.raises(FileError, match="cannot be read to the end"):
        list(scan)


def test_no_child_to_start_means_openpyxl(monkeypatch: pytest.MonkeyPatch,
                                          readers: Readers) -> None:
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    data = xlsx(phone_rows(3))
    assert verdicts(data) == by_openpyxl(data)
    assert readers.took == [False]


_TEXT = st.lists(st.sampled_from([*"13800 ab,\"'\n\r\t张_x0D", "_x000D_"]),
                 max_size=8).map("".join)
_VALUE = st.one_of(
    st.none(), st.booleans(), _TEXT,
    st.integers(min_value=-10**16, max_value=10**16),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.sampled_from([13800138000, 13800138001.0, 1234, "13800138002", "1234", "+86 13800138003"]),
    st.dates(min_value=datetime.date(1990, 1, 1), max_value=datetime.date(2030, 1, 1)))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=st.lists(st.lists(_VALUE, max_size=4), min_size=1, max_size=12))
def test_any_workbook_gets_openpyxls_verdicts(rows: list[list[object]]) -> None:
    data = xlsx(rows)
    assert verdicts(data, NOTE) == by_openpyxl(data, NOTE)


def test_fractions_and_dates_as_the_spreadsheet_shows_them(readers: Readers) -> None:
    """Found from outside: 99*0.9 went out as "89.10000000000001" and 0.1+0.2 as
    "0.30000000000000004" (Excel shows 15 significant digits: 89.1 and 0.3), and a date
    as "2026-01-02 00:00:00". Both readers read them alike."""
    rows: list[list[object]] = [["phone", "a", "b"], [13800138000, 99 * 0.9, 0.1 + 0.2],
                                [13800138001, 1.5, 1 / 3]]
    got, child = both(xlsx(rows), readers, NOTE)
    assert child  # numbers only: python-calamine's path
    assert [r.params for r in got if isinstance(r, Row)] == [
        ["89.1", "0.3"], ["1.5", "0.333333333333333"]]
    dated: list[list[object]] = [["phone", "a", "b"],
                                 [13800138000, datetime.date(2026, 1, 2),
                                  datetime.datetime(2026, 1, 2, 13, 45)]]
    got, _child = both(xlsx(dated), readers, NOTE)
    assert [r.params for r in got if isinstance(r, Row)] == [
        ["2026-01-02", "2026-01-02 13:45:00"]]


def test_the_first_visible_sheet_is_read(readers: Readers) -> None:
    """Found from outside: a hidden first sheet was read, and the sheet the user sees
    ignored without a word. The sheet read is the first one Excel shows."""
    book = openpyxl.Workbook()
    hidden = book.active
    assert hidden is not None
    hidden.append(["phone", "code"])
    hidden.append([13800138000, 1111])
    hidden.sheet_state = "hidden"
    shown = book.create_sheet("Visible")
    shown.append(["phone", "code"])
    shown.append([13900139000, 2222])
    out = io.BytesIO()
    book.save(out)
    got, child = both(out.getvalue(), readers)
    assert child
    assert [(r.phone, r.params) for r in got if isinstance(r, Row)] == [
        ("+8613900139000", ["2222"])]
    # Excel keeps one sheet visible (openpyxl refuses to save otherwise): a writer that
    # did not is refused, whichever reader would take it.
    patched = io.BytesIO()
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(patched, "w") as dst:
        for item in src.infolist():
            part = src.read(item)
            if item.filename == "xl/workbook.xml":
                assert part.count(b'state="visible"') == 1
                part = part.replace(b'state="visible"', b'state="veryHidden"')
            dst.writestr(item, part)
    assert both(patched.getvalue(), readers)[0] == \
        "FileError: The workbook has no visible sheet."
