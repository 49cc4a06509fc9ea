"""The JSON guards shared by the API and policy documents: nesting, lone surrogates."""

from __future__ import annotations

import json

import pytest

from app import safejson


def test_brackets_inside_strings_are_text() -> None:
    text = json.dumps({"a": ["[[[{{{", 'say \\"[[[" and ]]]', {"b": "}}}"}]})
    assert safejson.nesting_depth(text) == 3
    assert safejson.loads(text)["a"][0] == "[[[{{{"


def test_the_limit_is_inclusive() -> None:
    assert safejson.loads("[" * 32 + "]" * 32) is not None
    with pytest.raises(safejson.TooDeep, match="more than 32 levels"):
        safejson.loads("[" * 33 + "]" * 33)
    with pytest.raises(safejson.TooDeep):  # far past the decoder's own recursion limit
        safejson.loads(b'{"x": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")


def test_bytes_are_decoded_as_json_loads_does() -> None:
    assert safejson.loads('{"k": ["v"]}'.encode("utf-16")) == {"k": ["v"]}
    with pytest.raises(json.JSONDecodeError):
        safejson.loads(b'{"k": ')
    assert safejson.loads("7") == 7


@pytest.mark.parametrize("text", [
    '"x\\udfffy"', '{"a": ["\\uD800"]}', '{"\\udc00": 1}', '["\\ude00\\ud83d"]',
    '"\\ud83d"'])
def test_half_a_surrogate_pair_is_refused(text: str) -> None:
    with pytest.raises(safejson.LoneSurrogate, match="surrogate pair"):
        safejson.loads(text)


def test_a_raw_surrogate_in_bytes_is_refused_too() -> None:
    with pytest.raises(safejson.LoneSurrogate):  # bytes are decoded with surrogatepass
        safejson.loads('"\udcff"'.encode("utf-8", "surrogatepass"))


def test_pairs_and_escaped_backslashes_are_text() -> None:
    assert safejson.loads('"\\ud83d\\ude00"') == "\U0001f600"
    assert safejson.loads('["\\\\ud800"]') == ["\\ud800"]  # a backslash, then text
    assert safejson.loads(b'{"k": "\xf0\x9f\x98\x80"}') == {"k": "\U0001f600"}
