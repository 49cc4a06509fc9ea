"""The JSON nesting guard shared by the API and policy documents."""

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
