"""json.loads with a nesting limit, for any JSON a user or client sends.

The standard decoder recurses once per level and raises RecursionError (a 500)
on a few thousand nested brackets; this refuses such text with a plain message
before decoding it. Pure: no I/O, no framework.
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


class TooDeep(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the JSON is nested more than {limit} levels deep")
        self.limit = limit


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects (0 for a scalar)."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    # A running sum in C (a Python loop takes a second per megabyte). A stray closing
    # bracket makes the text invalid JSON before any deeper level is decoded.
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def loads(data: str | bytes, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads, raising TooDeep (a ValueError) past `max_depth` levels. Bytes are
    decoded as json.loads would (UTF-8, -16 or -32); UnicodeDecodeError and
    json.JSONDecodeError propagate as usual."""
    text = data.decode(json.detect_encoding(data), "surrogatepass") \
        if isinstance(data, bytes) else data
    if nesting_depth(text) > max_depth:
        raise TooDeep(max_depth)
    return json.loads(text)
