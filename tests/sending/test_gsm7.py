"""GSM-7 as SMPP carries it (app/sms/text.py): the segmenter's character set and the
encoder's table are one, so a message the segmenter counts as GSM-7 always encodes."""

from __future__ import annotations

import smpplib.gsm
from hypothesis import given
from hypothesis import strategies as st

from app.sms import text


def test_the_table_is_the_segmenters_set() -> None:
    assert len(text.GSM_TABLE) == 128 and text.GSM_TABLE[0x1B] == "\x1b"
    assert set(text.GSM_TABLE) - {"\x1b"} == text.GSM_BASIC
    assert set(text.GSM_EXTENSION_CODES) == text.GSM_EXTENSION


def test_codes_agree_with_smpplib_except_where_its_table_is_wrong() -> None:
    """smpplib has a backtick at 0x5F ('§' in GSM 03.38) and no form feed."""
    differ = [c for c in sorted(text.GSM_BASIC | text.GSM_EXTENSION)
              if c not in smpplib.gsm.GSM_CHARACTER_TABLE
              or smpplib.gsm.gsm_encode(c) != text.gsm7_encode(c)]
    assert differ == ["\f", "§"]
    assert text.gsm7_encode("§\f€") == b"\x5f\x1b\x0a\x1b\x65"


@given(st.text(alphabet=sorted(text.GSM_BASIC | text.GSM_EXTENSION), max_size=200))
def test_every_gsm7_text_encodes_and_reads_back(s: str) -> None:
    assert text.is_gsm7(s)
    encoded = text.gsm7_encode(s)
    assert len(encoded) == sum(2 if c in text.GSM_EXTENSION else 1 for c in s)
    assert text.gsm7_decode(encoded) == s


def test_other_characters_are_refused_and_odd_bytes_read_as_question_marks() -> None:
    for s in ("`", "é€😀"[2], "ç"):
        try:
            text.gsm7_encode(s)
        except ValueError:
            continue
        raise AssertionError(f"{s!r} encoded")
    assert text.gsm7_decode(b"\x1b\x01a\x80\x1b") == "?a?"
