"""json.loads with a nesting limit, for any JSON a user or client sends.

The standard decoder recurses once per level and raises RecursionError (a 500)
on a few thousand nested brackets; this refuses such text with a plain message
before decoding it. It also refuses strings holding half of a UTF-16 surrogate pair
("\\ud800" is valid JSON): no database, SMS encoding or JSON column can store one,
and one used to reach the insert and fail there as "database unavailable". Pure: no
I/O, no framework.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate
from typing import Any

MAX_DEPTH = 32  # far above any policy document or API body (3 to 4 levels)

# A JSON string (escapes included): its brackets are text, not nesting. The unrolled
# form scans runs of plain characters at C speed and cannot backtrack: each character
# belongs to exactly one part.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class Refused(ValueError):
    """Valid JSON we do not take; str() says why, for the user."""


class TooDeep(Refused):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the JSON is nested more than {limit} levels deep")
        self.limit = limit


class LoneSurrogate(Refused):
    def __init__(self) -> None:
        super().__init__("a string holds half of a UTF-16 surrogate pair (\\ud800-\\udfff "
                         "alone), which is not a character")


# A surrogate escape (a pair is decoded into one character) or a raw surrogate code
# point (bytes decoded with surrogatepass): only then are the strings walked.
_MAYBE_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects (0 for a scalar)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    # A running sum in C (a Python loop takes a second per megabyte). A stray closing
    # bracket makes the text invalid JSON before any deeper level is decoded.
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def loads(data: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads, raising TooDeep past `max_depth` levels and LoneSurrogate for a
    string with an unpaired surrogate (both Refused, a ValueError). Bytes are decoded
    as json.loads would (UTF-8, -16 or -32); UnicodeDecodeError and
    json.JSONDecodeError propagate as usual."""
    text = data.decode(json.detect_encoding(data), "surrogatepass") \
        if isinstance(data, bytes) else data
    if nesting_depth(text) > max_depth:
        raise TooDeep(max_depth)
    value = json.loads(text)
    if _MAYBE_SURROGATE.search(text) and _has_lone_surrogate(value):
        raise LoneSurrogate()
    return value
