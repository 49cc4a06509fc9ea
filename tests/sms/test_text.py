"""Encoding, splitting and billing: the fixed rules of SPEC.md §3."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.sms.text import (
    GSM7,
    GSM_BASIC,
    GSM_EXTENSION,
    UCS2,
    compose,
    count,
    segment,
)


def lengths(text: str, **kw: bool) -> list[int]:
    s = segment(text, **kw)
    return s.as_dict()["part_lengths"]  # type: ignore[return-value]


def test_spec_examples() -> None:
    assert lengths("好" * 150) == [67, 67, 16]
    assert lengths("a" * 320) == [153, 153, 14]


@pytest.mark.parametrize(("n", "parts"), [(0, 1), (1, 1), (160, 1), (161, 2), (306, 2),
                                          (307, 3), (459, 3), (460, 4)])
def test_gsm_boundaries(n: int, parts: int) -> None:
    s = segment("x" * n)
    assert s.encoding == GSM7 and s.billed_items == parts


@pytest.mark.parametrize(("n", "parts"), [(70, 1), (71, 2), (134, 2), (135, 3), (201, 3),
                                          (202, 4)])
def test_ucs2_boundaries(n: int, parts: int) -> None:
    s = segment("é" * 0 + "ж" * n)
    assert s.encoding == UCS2 and s.billed_items == parts


def test_extension_characters_take_two_septets() -> None:
    assert segment("€" * 80).units == 160 and segment("€" * 80).billed_items == 1
    assert segment("€" * 81).billed_items == 2
    assert segment("\f").units == 2 and segment("\f").encoding == GSM7
    for c in "^{}\\[~]|€":
        assert segment(c).encoding == GSM7 and segment(c).units == 2


def test_an_escape_is_never_split_across_parts() -> None:
    # 152 septets then '€' (2 septets) cannot fit the first 153-septet part.
    text = "a" * 152 + "€" + "a" * 10
    assert lengths(text) == [152, 12]
    assert segment(text).parts[1].startswith("€")


def test_one_non_gsm_character_makes_it_ucs2() -> None:
    assert segment("a" * 100).encoding == GSM7
    assert segment("a" * 100 + "ç").encoding == UCS2  # ç (lower) is not in GSM 03.38
    assert segment("Ç").encoding == GSM7  # but Ç is
    assert segment("a" * 100 + "\t").encoding == UCS2


def test_surrogate_pairs_count_two_and_are_never_split() -> None:
    assert segment("😀" * 35).units == 70 and segment("😀" * 35).billed_items == 1
    text = "a" * 66 + "😀" + "b"  # 69 units: one part
    assert segment(text).billed_items == 1
    text = "a" * 66 + "😀" * 3  # 72 units: the pair at unit 67 moves to part 2
    assert lengths(text) == [66, 6]
    assert all(not (0xD800 <= ord(c) <= 0xDFFF) for p in segment(text).parts for c in p)
    assert segment(text).characters == 69


def test_mainland_is_always_ucs2_over_signature_and_body() -> None:
    s = count("Your code is 1234", "mainland", "Shop")
    assert s.text == "【Shop】Your code is 1234" and s.encoding == UCS2
    assert count("a" * 64, "mainland", "Shop").billed_items == 1  # 6 + 64 = 70
    assert count("a" * 65, "mainland", "Shop").billed_items == 2


def test_international_signature_format_and_encoding() -> None:
    assert compose("Hi", "Shop", "international") == "[Shop] Hi"
    assert compose("Hi", None, "international") == "Hi"
    assert count("Hi", "international", "Shop").encoding == GSM7
    assert count("x" * 153, "international", "Shop").billed_items == 2  # 160 + 7


def test_unknown_region() -> None:
    with pytest.raises(ValueError):
        count("x", "moon")


GSM_CHARS = sorted(GSM_BASIC | GSM_EXTENSION)


@given(st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=800))
def test_gsm_parts_rejoin_and_fit(text: str) -> None:
    s = segment(text)
    assert s.encoding == GSM7 and "".join(s.parts) == text
    limit = 160 if len(s.parts) == 1 else 153
    assert all(sum(2 if c in GSM_EXTENSION else 1 for c in p) <= limit for p in s.parts)
    assert all(s.parts) or text == ""


@given(st.text(min_size=1, max_size=600))
def test_any_text_parts_rejoin_and_fit(text: str) -> None:
    s = segment(text)
    assert "".join(s.parts) == text
    if s.encoding == UCS2:
        limit = 70 if len(s.parts) == 1 else 67
        assert all(len(p.encode("utf-16-le")) // 2 <= limit for p in s.parts)
        # Minimal: no two neighbouring parts could have been one.
        for a, b in zip(s.parts, s.parts[1:], strict=False):
            first = b[0]
            assert len(a.encode("utf-16-le")) // 2 + (2 if ord(first) > 0xFFFF else 1) > 67


# --- the counts against the per-character rules they replaced ---------------------------

def _reference(text: str, force_ucs2: bool = False) -> tuple[str, int, tuple[str, ...]]:
    """The rules one character at a time, as first written: encoding, units, parts."""
    gsm = all(c in GSM_BASIC or c in GSM_EXTENSION for c in text)
    encoding = UCS2 if force_ucs2 or not gsm else GSM7

    def units(c: str) -> int:
        if encoding == GSM7:
            return 2 if c in GSM_EXTENSION else 1
        return 2 if ord(c) > 0xFFFF else 1

    total = sum(units(c) for c in text)
    if total <= (160 if encoding == GSM7 else 70):
        return encoding, total, (text,)
    limit = 153 if encoding == GSM7 else 67
    parts: list[str] = []
    current, used = "", 0
    for c in text:
        if used + units(c) > limit:
            parts.append(current)
            current, used = "", 0
        current += c
        used += units(c)
    parts.append(current)
    return encoding, total, tuple(parts)


# GSM characters (escapes included), other BMP characters, astral ones (pairs in
# UTF-16) and lone surrogates (a JSON body may carry "\ud800"), mixed.
MIXED = st.one_of(st.sampled_from(GSM_CHARS), st.sampled_from(sorted(GSM_EXTENSION)),
                  st.characters(max_codepoint=0xFFFF),
                  st.characters(min_codepoint=0x10000),
                  st.characters(categories=["Cs"]))


@given(st.text(alphabet=MIXED, max_size=700), st.booleans())
def test_segment_agrees_with_the_per_character_rules(text: str, force_ucs2: bool) -> None:
    s = segment(text, force_ucs2=force_ucs2)
    assert (s.encoding, s.units, s.parts) == _reference(text, force_ucs2)
    assert s.characters == len(text)
    assert s.as_dict()["part_lengths"] == [
        sum(2 if (c in GSM_EXTENSION if s.encoding == GSM7 else ord(c) > 0xFFFF) else 1
            for c in p) for p in s.parts]


@given(st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=700))
def test_segment_of_gsm_text_agrees_with_the_per_character_rules(text: str) -> None:
    s = segment(text)
    assert (s.encoding, s.units, s.parts) == _reference(text)


def test_lone_surrogates_count_one_unit() -> None:
    s = segment("a\ud800" * 40)
    assert s.encoding == UCS2 and s.units == 80 and s.parts == _reference("a\ud800" * 40)[2]


def test_every_bmp_character_is_classed_as_by_the_rules() -> None:
    for code in [*range(0x10000), 0x10000, 0x1F600, 0x10FFFF]:
        c = chr(code)
        gsm = c in GSM_BASIC or c in GSM_EXTENSION
        s = segment(c)
        assert s.encoding == (GSM7 if gsm else UCS2), hex(code)
        assert s.units == (2 if c in GSM_EXTENSION or code > 0xFFFF else 1), hex(code)
