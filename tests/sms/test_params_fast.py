"""The per-template precompiled check (`params.safe_values`, `check`'s fast path) against
the rules themselves (`params.rules`):
values that match the patterns always pass the rules; the common templates have
patterns (so files take the fast path); the character classes mean what they say."""

from __future__ import annotations

import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.demo import DEMO_TEMPLATES
from app.sms import params

SAFE = [chr(i) for i in range(0x10000) if re.fullmatch(params.safe_chars(), chr(i))]
# Text near every URL rule (dots and colons of every width, schemes, www, TLDs, IPv4
# and IPv6, slashes, combining and format characters, kinds of whitespace); templates
# are such texts with parts cut out for variables, so a value can put the part back.
NEAR = ["evil.com", "http://x.io/a", "https:evil.com", "www.a.cn", "www2.b", "1.2.3.4",
        "::1", "fe80::1", "1:2:3:4:5:6:7:8", "a@b.cn", "evil.com/x", "例子.中国",
        "evil。com", "\uff45\uff56\uff49\uff4c\uff0e\uff43\uff4f\uff4d", "evil\u200b.com",
        "mailto:a", "javascript:x",
        "10:30", "e.g. 3.5", "Mr.Smith", "node.js", "访问evil.com领取", "xn--fiqs8s.cn",
        "您的验证码为\uff0c分钟内有效\uff0c请勿泄露。", "订单 已发货", "Hi , your code is .",
        "验证码\uff1a。", "【】", "a\u0301.b", "x\uff0fy", "t.co/x", "[::1]"]
PIECES = ["", " ", "\uff0c", "。", "\uff1a", ":", ".", "/", "-", "(", "\u3000", "\t", "Hi", "码",
          "com", "1", "a", "\u0301", "\u200b", "\uff0e", "\u2024"]


@st.composite
def templates(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(NEAR))
    for n in range(1, draw(st.integers(1, 3)) + 1):
        i = draw(st.integers(0, len(text)))
        j = draw(st.integers(i, min(len(text), i + 6)))
        text = text[:i] + f"{{{n}}}" + text[j:]
    return draw(st.sampled_from(PIECES)) + text + draw(st.sampled_from(PIECES))


values = st.one_of(
    st.text(st.sampled_from([*SAFE[:200], "张", "\uff21", "\uff11", "—", "\uff5a"]), max_size=8),
    st.text(st.sampled_from("evilcom1234abfx"), min_size=1, max_size=6),
    st.lists(st.sampled_from([*PIECES, *NEAR, "x", "7"]), max_size=3).map("".join),
    st.sampled_from(["evil", "com", "evil.com", "1.2", "3", "4.5.6", "1234", "abcd", "::1",
                     "www", "http", "/x", "", " a", "a ", "//x", "io"]),
)


def passes_patterns(content: str, sms_type: str, vals: tuple[str, ...], *,
                    max_length: int, allow_urls: bool) -> bool:
    patterns = params.safe_values(content, sms_type, max_length=max_length,
                                  allow_urls=allow_urls)
    return patterns is not None and len(patterns) == len(vals) and all(
        re.fullmatch(p, v) for p, v in zip(patterns, vals, strict=True))


@settings(max_examples=1000, deadline=None)
@given(content=templates(), sms_type=st.sampled_from(["verification", "notification"]),
       vals=st.lists(values, min_size=3, max_size=3),
       max_length=st.sampled_from([0, 2, 35, 35, 35]), allow_urls=st.booleans())
def test_values_the_patterns_accept_pass_check(content: str, sms_type: str, vals: list[str],
                                               max_length: int, allow_urls: bool) -> None:
    want = len({n for n in re.findall(r"\{(\d)\}", content)})
    given_values = tuple(vals[:want])
    # check's own fast path is the same patterns joined (with any count of values)
    for count in {want, max(want - 1, 0), want + 1}:
        some = tuple(vals[:count])
        joined = params.values_pattern(content, sms_type, max_length=max_length,
                                       allow_urls=allow_urls)
        assert (joined is not None and joined.fullmatch("\x00".join(some)) is not None) == \
            passes_patterns(content, sms_type, some, max_length=max_length,
                            allow_urls=allow_urls)
    if passes_patterns(content, sms_type, given_values, max_length=max_length,
                       allow_urls=allow_urls):
        assert params.rules(content, sms_type, given_values, max_length=max_length,
                            allow_urls=allow_urls) is None
        assert not given_values or given_values[-1]  # never an empty last value
        assert all(v == v.strip() for v in given_values)


# Values that make a URL with the template's text (each rule of the argument in
# params.py guards one): the patterns must never accept them.
URL_MAKERS = [("{1}.com", "evil"), ("evil.{1}", "com"), ("{1}。com", "evil"),
              ("www.{1}", "evil"), ("{1}.2.3.4", "1"), ("http:{1}", "x"), ("{1}:x", "http"),
              ("Hi {1}:{2}", "https"), ("{1}{2}", "evil")]


@pytest.mark.parametrize(("content", "value"), URL_MAKERS)
def test_values_that_make_a_url_are_never_accepted(content: str, value: str) -> None:
    vals = (value, ".com") if "{2}" in content else (value,)
    if content == "Hi {1}:{2}":
        vals = (value, "//x")
    assert params.rules(content, "notification", vals) is not None
    assert params.check(content, "notification", vals) is not None
    assert not passes_patterns(content, "notification", vals, max_length=35,
                               allow_urls=False)
    if "{2}" not in content:  # and the same value where the template ends in a safe way
        assert passes_patterns("Hi {1}", "notification", vals, max_length=35,
                               allow_urls=False)


@pytest.mark.parametrize(("content", "sms_type"), [
    *[(c, t) for region in DEMO_TEMPLATES.values() for _n, t, c in region],
    ("您的验证码为{1}", "verification"), ("{1}您好 订单{2}已发货", "notification"),
    ("Hi {1}, your order shipped", "notification"), ("验证码\uff1a{1}。", "verification"),
    ("【{1}】您的快递已到{2}号柜", "notification"), ("Your code is {1}.", "verification"),
    ("Dear {1} ({2}), see https://shop.example/t/{3}", "notification"),
])
def test_common_templates_have_patterns(content: str, sms_type: str) -> None:
    assert params.safe_values(content, sms_type) is not None


@pytest.mark.parametrize("content", ["See {1}.com", "http:{1}", "{1}:{2}", "a.{1}",
                                     "{1}。{2}", "see {1}/x.{2}", "时\uff1a{1}分\uff1a"])
def test_templates_a_value_could_turn_into_a_url_have_none(content: str) -> None:
    assert params.safe_values(content, "notification") is None


def test_safe_characters_are_what_they_claim() -> None:
    for ch in SAFE:
        shown = params._visible(ch)
        assert not params.is_control(ch) and not ch.isspace() and ch not in '",;\\'
        assert not any(c in ".:/" or c.isspace() for c in shown), hex(ord(ch))
    assert set("0123456789AZaz-_张三") <= set(SAFE)
    assert not set(" .:/,;\"\\\u3002\uff0e\uff1a\u2024\u3000\t") & set(SAFE)


def test_nothing_before_a_plain_character_changes_how_it_normalizes() -> None:
    # Why a run's visible text is its pieces' visible texts side by side.
    firsts = [*"aZ9-(【\uff0c、张\uff21\uff01", *SAFE[::4000]]
    assert all(params._plain(c) for c in firsts)
    for code in range(0x10000):
        before = chr(code)
        if unicodedata.category(before) == "Cs":
            continue
        for c in firsts:
            assert unicodedata.normalize("NFKC", before + c) == (
                unicodedata.normalize("NFKC", before) + unicodedata.normalize("NFKC", c)), (
                hex(code), c)


def test_the_any_character_class_is_exactly_not_control() -> None:
    any_char = re.compile(params._ANY_CHAR)
    for code in [*range(0x10000), 0x1F600, 0x10FFFF]:
        ch = chr(code)
        expected = (not params.is_control(ch) and ch not in '",;\\' and code <= 0xFFFF)
        assert bool(any_char.fullmatch(ch)) == expected, hex(code)
