"""Template parameter rules and URL detection: a table of cases, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.sms import params
from app.sms.params import FORMAT_ERROR, LENGTH_LIMIT, check, has_control, has_url

URLS = [
    "https://evil.com", "http://1.2.3.4/x", "HTTPS://EVIL.COM", "ftp://files.example.org",
    "hxxp://evil.com", "javascript:alert(1)", "https:evil.com", "mailto:a@b.cn",
    "www.evil", "WWW.Evil", "visit www2.evil.net now", "evil.com", "evil.com/x",
    "EVIL.COM/X", "go to evil.co.uk today", "a.b.c.shop", "login.evil.xyz?a=1",
    "evil.com:8080", "(evil.com)", "“evil.com”", "you@evil.com", "xn--fiqs8s.xn--fiqs8s",
    "例子.中国", "访问evil.com领取", "evil\u200b.com", "evil.c\u00adom",
    "\uff45\uff56\uff49\uff4c\uff0e\uff43\uff4f\uff4d",  # full-width evil.com
    "127.0.0.1", "10.0.0.1:80/x", "999.1.1.1", "[::1]", "2001:db8::1", "fe80::1%eth0",
    "bit.ly/abc", "t.co/x", "evil.app", "evil.zip",
]
WORDS = [
    "", "123456", "Zhang San", "张三", "A-1001", "order #42", "e.g. 3.5 kg", "Mr.Smith",
    "i.e.", "No.5", "v1.2", "1.2.3", "3.14159", "10:30", "10:30:45", "2026-11-24",
    "12.50 USD", "¥12.50", "50%", "Dr. Wang", "St. Louis", "U.S.A", "a.m.", "hello. world",
    "好的。谢谢", "Room 12.3", "www", "wwwx", "com", ".com", "smith@", "C++", "x.y",
    "ten . com", "http", "OK!", "👍🏽", "👨\u200d👩\u200d👧", "Co., Ltd.", "node.js",
    "10.30am", "No.A123", "Vue.js 3", "1.5k",
]


@pytest.mark.parametrize("text", URLS)
def test_urls_are_found(text: str) -> None:
    assert has_url(text), text


@pytest.mark.parametrize("text", WORDS)
def test_ordinary_words_are_not_urls(text: str) -> None:
    assert not has_url(text), text


@pytest.mark.parametrize(("text", "bad"), [
    ("a\nb", True), ("a\r\nb", True), ("a\tb", True), ("a\x00b", True), ("a\x7fb", True),
    ("a\u2028b", True), ("a\u2029b", True), ("a\x85b", True), ("abc\u202egnp.exe", True),
    ("a\u2066b", True), ("plain", False), ("emoji 👨\u200d👩\u200d👧", False), ("中文", False),
])
def test_control_characters(text: str, bad: bool) -> None:
    assert has_control(text) is bad


@pytest.mark.parametrize(("content", "sms_type", "values", "code"), [
    ("Code {1}", "verification", ("1234",), None),
    ("Code {1}", "verification", ("abCD5678",), None),
    ("Code {1}", "verification", ("123",), FORMAT_ERROR),
    ("Code {1}", "verification", ("123456789",), FORMAT_ERROR),
    ("Code {1}", "verification", ("12_34",), FORMAT_ERROR),
    ("Code {1}", "verification", ("١٢٣٤",), FORMAT_ERROR),  # Arabic-Indic digits
    ("Code {1}, valid {2} min", "verification", ("1234", "5"), None),
    ("Code {1}, valid {2} min", "verification", ("1234", "5\n"), FORMAT_ERROR),
    ("Hi {1}", "notification", ("x" * 35,), None),
    ("Hi {1}", "notification", ("x" * 36,), LENGTH_LIMIT),
    ("Hi {1}", "marketing", ("evil.com",), FORMAT_ERROR),
    ("Hi {1}", "notification", ("x" * 36 + "\n",), LENGTH_LIMIT),  # length is checked first
    ("See {1}.com", "notification", ("evil",), FORMAT_ERROR),
    ("See www.{1}", "notification", ("evil",), FORMAT_ERROR),
    ("See https://shop.example.com/t/{1}", "notification", ("A1",), None),  # reviewed URL
    ("See https://shop.example.com/?r={1}", "notification", ("evil.com",), FORMAT_ERROR),
    ("{1}{2}", "notification", ("a", "b"), None),
    # Side by side, parameters cannot build a URL neither holds alone (outside review).
    ("Your order {1}{2} shipped", "notification", ("evil", ".com/x"), FORMAT_ERROR),
    ("Your order {1}{2} shipped", "notification", ("evil.", "com/x"), FORMAT_ERROR),
    ("Code {1}{2}", "verification", ("evilco", ".com/x"), FORMAT_ERROR),
    ("Go to {1} {2}", "notification", ("evil", ".com"), None),  # a space breaks the link
    ("Your order {1}", "notification", ("evil\u3002com/x",), FORMAT_ERROR),  # 。 as a dot
    ("Hello {1}{2}.", "notification", ("Ann", "Lee"), None),
])
def test_check(content: str, sms_type: str, values: tuple[str, ...], code: str | None) -> None:
    problem = check(content, sms_type, values)
    assert (problem.code if problem else None) == code


def test_urls_allowed_by_the_template_and_length_setting() -> None:
    assert check("Hi {1}", "notification", ("evil.com/x",), allow_urls=True) is None
    problem = check("Hi {1}", "notification", ("a\nevil.com",), allow_urls=True)
    assert problem is not None and problem.code == FORMAT_ERROR
    problem = check("Hi {1}", "notification", ("abcdef",), max_length=5)
    assert problem is not None and problem.code == LENGTH_LIMIT
    assert problem.message == "Parameter {1} has 6 characters; at most 5 are allowed."


LETTERS = st.text(st.characters(categories=["Lu", "Ll", "Lo", "Nd", "Zs"]), max_size=35)


@settings(max_examples=300, deadline=None)
@given(LETTERS)
def test_text_without_dots_colons_or_slashes_is_never_a_url(text: str) -> None:
    assert not has_url(text)


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(categories=["L", "N", "P", "S", "Zs"]), max_size=20),
       st.sampled_from(["evil.com", "https://x.io", "www.a.cn", "10.1.2.3", "bit.ly/x"]))
def test_a_url_anywhere_is_found(prefix: str, url: str) -> None:
    assert has_url(f"{prefix} {url} ")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_check_never_raises_and_enforces_the_length(value: str) -> None:
    problem = check("Hi {1}", "notification", (value,))
    if len(value) > params.DEFAULT_MAX_LENGTH:
        assert problem is not None and problem.code == LENGTH_LIMIT
    elif problem is None:
        assert not has_control(value) and not has_url(value)
