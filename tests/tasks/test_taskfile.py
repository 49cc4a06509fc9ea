"""Recipient files (app/sms/taskfile.py): the corpus a real team uploads, each file
to the right verdict, and the number fast path against phonenumbers."""

from __future__ import annotations

import codecs
import io
import zipfile

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sms import csvcells, numbers, taskfile
from app.sms.taskfile import FileError, Row, RowError

CODE = taskfile.Template("您的验证码为{1}", "verification", "mainland", "Shop")
NOTE = taskfile.Template("{1}您好 订单{2}已发货", "notification", "mainland", "Shop")
INTL = taskfile.Template("Hi {1}, your order shipped", "notification", "international", None)


def run(data: bytes, template: taskfile.Template = CODE, name: str = "f.csv",
        **kw: int) -> list[Row | RowError]:
    return list(taskfile.validate(io.BytesIO(data), name, template, **kw))


def phones(result: list[Row | RowError]) -> list[str]:
    return [r.phone for r in result if isinstance(r, Row)]


def errors(result: list[Row | RowError]) -> list[tuple[int, str, str]]:
    return [(r.row, r.column, r.reason) for r in result if isinstance(r, RowError)]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "gbk", "utf-16"])
def test_encodings(encoding: str) -> None:
    text = "手机号,姓名,订单\n13800138000,张三,A1\n13800138001,李四,B2\n"
    result = run(text.encode(encoding), NOTE)
    assert phones(result) == ["+8613800138000", "+8613800138001"]
    assert [r.params for r in result if isinstance(r, Row)] == [["张三", "A1"], ["李四", "B2"]]


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_delimiters_with_and_without_header(delimiter: str) -> None:
    body = f"13800138000{delimiter}1234\r\n13800138001{delimiter}5678\r\n"
    assert phones(run(body.encode())) == ["+8613800138000", "+8613800138001"]
    with_header = f"phone{delimiter}code\r\n" + body
    result = run(with_header.encode())
    assert [r.row for r in result] == [2, 3]  # row numbers count the header


def test_what_spreadsheets_do_to_numbers() -> None:
    data = (b"13800138000.0,1234\n'13800138001,1234\n  13800138002  , 1234 \n"
            b"1.38001E+10,1234\n+86 138 0013 8003,1234\n")
    result = run(data)
    assert phones(result) == ["+8613800138000", "+8613800138001", "+8613800138002",
                              "+8613800138003"]
    assert errors(result) == [(4, "phone", taskfile.SCIENTIFIC)]


def test_row_errors_name_row_column_and_reason() -> None:
    data = (b"phone,code\n"
            b"12345,1234\n"  # not a number
            b"+14155550100,1234\n"  # the other region
            b"13800138000\n"  # missing variable
            b"13800138001,1234,x\n"  # extra variable
            b"13800138002,12\n"  # breaks the verification-code rule
            b"13800138003,1234\n"
            b"+8613800138003,1234\n"  # the same number again
            b",1234\n")  # no number at all
    got = errors(run(data))
    assert [(row, col) for row, col, _ in got] == [
        (2, "phone"), (3, "phone"), (4, "{1}"), (5, "{2}"), (6, "{1}"), (8, "phone"),
        (9, "phone")]
    reasons = [r for _, _, r in got]
    assert reasons[1] == numbers.NOT_MAINLAND
    assert "missing" in reasons[2] and "extra" in reasons[3]
    assert "verification code" in reasons[4]
    assert "earlier in the file" in reasons[5]


def test_international_numbers_and_the_mainland() -> None:
    data = b"+14155550100,Ann\n13800138000,Bo\n4155550101,Cy\n"
    result = run(data, INTL)
    assert phones(result) == ["+14155550100"]
    assert [e[2] for e in errors(result)] == [numbers.IS_MAINLAND, numbers.NEED_COUNTRY_CODE]


def test_url_in_a_parameter_is_refused() -> None:
    result = run(b"+14155550100,see evil.com/x\n", INTL)
    assert errors(result)[0][1] == "{1}" and "URL" in errors(result)[0][2]


@pytest.mark.parametrize(("data", "name", "message"), [
    (b"", "f.csv", "empty"),
    (b"phone,code\n", "f.csv", "no recipient rows"),
    (b"\n\n,,\n", "f.csv", "no recipient rows"),
    (b"name,code\nAnn,1234\n", "f.csv", "no phone column"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00", "f.png", "CSV or XLSX"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "f.xlsx", "password-protected"),
    (b"PK\x03\x04garbage", "f.xlsx", "corrupt"),
    (b"just text", "f.xlsx", "not a valid XLSX"),
])
def test_file_level_problems(data: bytes, name: str, message: str) -> None:
    with pytest.raises(FileError, match=message):
        run(data, name=name)


def test_size_and_row_limits() -> None:
    data = b"".join(f"1380013{n:04d},1234\n".encode() for n in range(50))
    with pytest.raises(FileError, match="at most 0 MB"):
        run(data, max_bytes=100)
    with pytest.raises(FileError, match="more than 40 rows"):
        run(data, max_rows=40)
    assert len(run(data, max_rows=50)) == 50


def xlsx(rows: list[list[object]], formula_at: str | None = None) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    if formula_at:
        sheet[formula_at] = "=1000+234"  # openpyxl saves no cached value: reads as empty
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_xlsx_numbers_as_numbers_and_formulas() -> None:
    data = xlsx([["phone", "code"], [13800138000, 1234], [13800138001.0, "5678"],
                 [13800138002, None]], formula_at="B4")
    result = run(data, name="f.xlsx")
    assert phones(result) == ["+8613800138000", "+8613800138001"]
    assert [r.params for r in result if isinstance(r, Row)] == [["1234"], ["5678"]]
    # A formula without a cached value (never calculated by a spreadsheet) is empty.
    assert errors(result)[0][:2] == (4, "{1}")


def test_xlsx_zip_bomb_is_refused_unopened() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<x/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (60 * 1024 * 1024))
    assert len(out.getvalue()) < 200_000
    with pytest.raises(FileError, match="zip bomb"):
        run(out.getvalue(), name="f.xlsx")


def test_xlsx_that_is_a_zip_but_not_a_workbook() -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(FileError, match="corrupt"):
        run(out.getvalue(), name="f.xlsx")


def test_invalid_text_is_read_as_gb18030_not_a_crash() -> None:
    # A lone 0xff is neither UTF-8 nor GB18030: one clear file-level message.
    with pytest.raises(FileError, match="not valid text"):
        run(b"13800138000,1234\n13800138001,\xff\n")


def test_neutralise() -> None:
    assert [csvcells.neutralise(v) for v in ("=1+1", "+86", "-2", "@a", "\tx", "\rx", "ok",
                                             None)] == ["'=1+1", "'+86", "'-2", "'@a", "'\tx",
                                                        "'\rx", "ok", ""]


def test_utf16_without_nul_confusion() -> None:
    data = codecs.BOM_UTF16_LE + "13800138000,1234\n".encode("utf-16-le")
    assert phones(run(data)) == ["+8613800138000"]


# --- the fast path agrees with phonenumbers wherever it decides ----------------------

def slow(text: str, region: str) -> tuple[str, str] | str:
    try:
        return numbers.for_region(text, region)
    except numbers.NumberError as exc:
        return str(exc)


mainland_like = st.builds(lambda p, d: p + d, st.sampled_from(["", "+86", "86", "+", "0"]),
                          st.text(alphabet="0123456789", min_size=9, max_size=13))


@settings(max_examples=1000, deadline=None)
@given(text=st.one_of(mainland_like, st.text(max_size=16)),
       region=st.sampled_from(["mainland", "international"]))
def test_fast_path_agrees_with_phonenumbers(text: str, region: str) -> None:
    fast = taskfile.fast_number(text, region)
    if fast is not None:
        assert fast == slow(text, region)


def test_fast_path_decides_the_common_shapes() -> None:
    for n in ("13800138000", "+8615912345678", "18612345678", "19912345678"):
        assert taskfile.fast_number(n, "mainland") is not None


# --- the billed-items fast path agrees with segmenting the text ----------------------

TEMPLATES = [
    taskfile.Template("您的验证码为{1}", "verification", "mainland", "Shop"),
    taskfile.Template("{1}您好 订单{2}已发货{1}", "notification", "mainland", "店"),
    taskfile.Template("Hi {1}, order {2} shipped", "notification", "international", None),
    taskfile.Template("Hi {1} ^ {2}", "notification", "international", "Shop"),
    taskfile.Template("Привет {1}", "notification", "international", None),
]
values = st.text(alphabet=st.sampled_from("abcXYZ019 ,.^{}€é好😀\n\t"), max_size=90)


@settings(max_examples=600, deadline=None)
@given(which=st.integers(0, len(TEMPLATES) - 1), a=values, b=values)
def test_billed_fast_path_agrees_with_count(which: int, a: str, b: str) -> None:
    from app.sms import templating
    from app.sms.text import count

    t = TEMPLATES[which]
    vals = [a, b][: len(templating.variables(t.content))]
    expected = count(templating.render(t.content, vals), t.region, t.signature).billed_items
    assert taskfile.Biller(t)(vals) == expected
