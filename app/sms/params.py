"""Template parameter rules (SPEC.md §3): a parameter fills a reviewed template, so it
must never carry unreviewed text of its own.

- In a verification-code template, `{1}` is the code: 4 to 8 letters or digits.
- Every other parameter: at most `max_length` characters (a setting, 35 by default),
  no line breaks or other control characters, and no URL unless the template allows
  URLs in its parameters (a reviewed template field).

Pure functions, no I/O; the results are cached because a request's parameters are
checked for each of its numbers.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from tld import is_tld

from app.sms import templating

DEFAULT_MAX_LENGTH = 35
FORMAT_ERROR = "InvalidParameterValue.TemplateParameterFormatError"
LENGTH_LIMIT = "InvalidParameterValue.TemplateParameterLengthLimit"

# Directional overrides and isolates reorder what the reader sees (Trojan-source style);
# other format characters (zero-width joiners in emoji) are harmless and kept.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")
# Each needs something after it: "https://" or "www." alone is not yet a link.
SCHEME = re.compile(r"(?:[a-z][a-z0-9+.\-]{0,30}://|\b(?:https?|ftp|mailto|javascript):)\S",
                    re.IGNORECASE)
WWW = re.compile(r"\bwww\d{0,3}\.[\w-]", re.IGNORECASE)
# Dotted names; the last label must be a real top-level domain (Public Suffix List,
# bundled by `tld`), so "e.g.", "3.5" or "Mr.Smith" stay ordinary words.
DOMAIN = re.compile(r"[\w-]+(?:\.[\w-]+)+")
ASCII_START = re.compile(r"[a-z0-9-]*")
IPV4 = re.compile(r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d])")
IPV6 = re.compile(r"\[?[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\]?", re.IGNORECASE)


IDEOGRAPHIC_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


@dataclass(frozen=True)
class Problem:
    code: str  # a send error code from app/sms/errors.py
    message: str  # which parameter, and why


def is_control(ch: str) -> bool:
    """Line breaks and other characters that have no place in one line of text."""
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in BIDI_CONTROLS


def has_control(text: str) -> bool:
    return any(is_control(c) for c in text)


def _visible(text: str) -> str:
    """What a phone shows and links: compatibility forms folded (full-width letters
    and dots), invisible format characters (zero-width spaces) removed."""
    # Ideographic full stops separate labels in URLs as a dot does (IDNA/WHATWG).
    folded = unicodedata.normalize("NFKC", text).translate(IDEOGRAPHIC_DOTS)
    return "".join(c for c in folded if unicodedata.category(c) != "Cf")


def has_url(text: str) -> bool:
    """scheme://…, www.…, a bare domain with a real top-level domain (evil.com/x,
    例子.中国, xn--…), or an IPv4/IPv6 address."""
    text = _visible(text)
    if SCHEME.search(text) or WWW.search(text) or IPV4.search(text):
        return True
    for m in DOMAIN.finditer(text):
        labels = m.group().lower().strip("-").split(".")
        # A domain runs into text without spaces (访问evil.com领取): phones still link it.
        labels[-1] = ASCII_START.match(labels[-1]).group() or labels[-1]  # type: ignore[union-attr]
        if any(is_tld(".".join(labels[i:])) for i in range(max(1, len(labels) - 2),
                                                            len(labels))):
            return True
    for m in IPV6.finditer(text):
        candidate = m.group().strip("[]")
        if candidate.count(":") >= 2:
            try:
                ipaddress.IPv6Address(candidate)
                return True
            except ValueError:
                pass
    return False


def is_verification_code(value: str) -> bool:
    return 4 <= len(value) <= 8 and value.isascii() and value.isalnum()


def _runs(content: str, params: tuple[str, ...]) -> list[tuple[str, str, list[int]]]:
    """Each whitespace-separated run of the rendered message that parameters are part
    of: (the run, the template's own text in it, those parameters). Runs are judged
    whole, so two variables side by side ({1}{2} = "evil" + ".com/x") cannot build a
    URL that neither holds alone."""
    pieces: list[tuple[str, int | None]] = []
    last = 0
    for m in templating.VARIABLE.finditer(content):
        n = int(m.group(1))
        pieces += [(content[last:m.start()], None), (params[n - 1] if n <= len(params)
                                                     else "", n)]
        last = m.end()
    pieces.append((content[last:], None))
    runs: list[tuple[str, str, list[int]]] = []
    run, own = "", ""
    members: list[int] = []
    for piece, index in pieces:
        for i, part in enumerate(re.split(r"\s+", piece)):
            if i:
                if members:
                    runs.append((run, own, members))
                run, own, members = "", "", []
            run += part
            if index is None:
                own += part
            elif part:
                members.append(index)
    if members:
        runs.append((run, own, members))
    return runs


def check(content: str, sms_type: str, params: tuple[str, ...], *,
          max_length: int = DEFAULT_MAX_LENGTH, allow_urls: bool = False) -> Problem | None:
    """The first parameter that breaks a rule, or None. The caller has checked that
    the number of parameters matches the template's variables. Values of the common
    shape pass by the template's precompiled pattern (one C call, see below); any
    other by `rules` (a bulk batch of unique codes spent 12% of a worker there)."""
    fast = values_pattern(content, sms_type, max_length=max_length, allow_urls=allow_urls)
    if fast is not None and fast.fullmatch("\x00".join(params)) is not None:
        return None
    return rules(content, sms_type, params, max_length=max_length, allow_urls=allow_urls)


@lru_cache(maxsize=1024)
def rules(content: str, sms_type: str, params: tuple[str, ...], *,
          max_length: int = DEFAULT_MAX_LENGTH, allow_urls: bool = False) -> Problem | None:
    """`check` by the rules themselves, value by value and run by run."""
    for n, value in enumerate(params, start=1):
        if n == 1 and sms_type == templating.VERIFICATION:
            if not is_verification_code(value):
                return Problem(FORMAT_ERROR, "Parameter {1} is the verification code: use 4 "
                                             "to 8 letters or digits.")
            continue
        if len(value) > max_length:
            return Problem(LENGTH_LIMIT, f"Parameter {{{n}}} has {len(value)} characters; "
                                         f"at most {max_length} are allowed.")
        if has_control(value):
            return Problem(FORMAT_ERROR, f"Parameter {{{n}}} contains a line break or "
                                         "another control character.")
        if allow_urls:
            continue
        if has_url(value):
            return _url_problem(n)
    if not allow_urls:
        # A URL the parameters make with each other or with the template's text;
        # one the reviewed text already holds (https://shop.example/t/{1}) may go on.
        for run, own, members in _runs(content, params):
            if has_url(run) and not has_url(own):
                return _url_problem(members[0])
    return None


def _url_problem(n: int) -> Problem:
    return Problem(FORMAT_ERROR, f"Parameter {{{n}}} contains a URL; this template does "
                                 "not allow URLs in its parameters.")


# --- per-template precompiled checks (the fast path of bulk files) ---------------------
#
# `safe_values` gives, for one template, a regular expression per parameter such that
# values matching all of them pass `check` (it returns None). Files are checked a row at a
# time with those (one C call); any other row, or any template the argument below does
# not cover, gets `check` itself. tests/sms/test_params_fast.py compares the two.
#
# Why it holds. Safe values are made of SAFE_CHARS: no whitespace (so the runs are the
# template's own), no control or format character, nothing whose visible form holds a
# ".", ":" or "/" (so a value alone is never a URL), and only characters that start a new
# normalization segment (so the visible form of a run is the visible forms of its pieces
# side by side). Every URL pattern above needs a "." or ":" of the visible text inside
# the match: a scheme needs ":" right after a scheme character (and only then may a "."
# follow ":" or "/"); IPv6 needs two colons; domains, www. and IPv4 need a "." followed
# by [\w+.:-]. A run whose own text has such a "." or ":" (whatever the values, or a
# value's character beside it) is not covered.

CODE_PATTERN = "[0-9A-Za-z]{4,8}"  # is_verification_code, as one pattern
# Characters that start a new normalization segment (NFKD of each is starters only, and
# none of them combines with what precedes it): ASCII, general punctuation, CJK
# symbols, ideographs, full-width forms.
_PLAIN_RANGES = ((0x20, 0x7E), (0x2010, 0x2027), (0x3000, 0x303F), (0x3400, 0x4DBF),
                 (0x4E00, 0x9FFF), (0xFF01, 0xFF65))


def _plain(ch: str) -> bool:
    if not any(lo <= ord(ch) <= hi for lo, hi in _PLAIN_RANGES):
        return False
    return unicodedata.category(ch) != "Cf" and all(
        unicodedata.combining(c) == 0 for c in unicodedata.normalize("NFKD", ch))


def _safe_char(ch: str) -> bool:
    seen = _visible(ch)
    return (_plain(ch) and not is_control(ch) and not ch.isspace() and ch not in '",;\\'
            and not any(c.isspace() or c in ".:/" for c in seen))


def _char_class(chars: list[str]) -> str:
    """A regex class for these (BMP) characters, as ranges."""
    codes = sorted(ord(c) for c in chars)
    out, start = [], 0
    for i in range(1, len(codes) + 1):
        if i == len(codes) or codes[i] != codes[i - 1] + 1:
            lo, hi = codes[start], codes[i - 1]
            out.append(f"\\u{lo:04x}" if lo == hi else f"\\u{lo:04x}-\\u{hi:04x}")
            start = i
    return "[" + "".join(out) + "]"


@lru_cache(maxsize=1)
def safe_chars() -> str:
    """The class of SAFE_CHARS, built at first use (27,000 characters normalised: 0.17 s
    of every process's start-up when it was a module constant)."""
    return _char_class([chr(i) for lo, hi in _PLAIN_RANGES for i in range(lo, hi + 1)
                        if _safe_char(chr(i))])
# Anything but a control character (allow_urls templates check nothing else), a
# quote, a delimiter or a character outside the BMP (billed-items arithmetic).
_NOT_CONTROL = ("\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029" + "".join(
    f"\\u{ord(c):04x}" for c in sorted(BIDI_CONTROLS)) + '",;\\\\\\U00010000-\\U0010ffff')
_ANY_CHAR, _EDGE_CHAR = f"[^{_NOT_CONTROL}]", f"[^\\s{_NOT_CONTROL}]"
_AFTER_DOT = re.compile(r"[\w\-+.:]")  # what follows a "." inside any URL match
_SCHEME_CHAR = re.compile(r"[a-z0-9+.\-]", re.IGNORECASE)  # what precedes its ":"
VALUE = object()  # a neighbour that is some value's character


def _template_runs(content: str) -> list[list[str | int]]:
    """The runs of `_runs` with variables left as their numbers (values of SAFE_CHARS
    hold no whitespace, so they never split a run)."""
    runs: list[list[str | int]] = [[]]
    last = 0
    for m in [*templating.VARIABLE.finditer(content), None]:
        text = content[last:m.start() if m else len(content)]
        for i, part in enumerate(re.split(r"\s+", text)):
            if i:
                runs.append([])
            if part:
                runs[-1].append(part)
        if m:
            runs[-1].append(int(m.group(1)))
            last = m.end()
    return [run for run in runs if any(isinstance(t, int) for t in run)]


def _beside(run: list[str | int], i: int, step: int) -> set[object]:
    """What can stand next to piece i in direction step: a value's character for each
    variable passed (a value may be empty, so look on), then the next own character."""
    found: set[object] = set()
    i += step
    while 0 <= i < len(run):
        piece = run[i]
        if isinstance(piece, int):
            found.add(VALUE)
        elif piece:
            found.add(piece[-1] if step < 0 else piece[0])
            break
        i += step
    return found


def _safe_run(run: list[str | int]) -> bool:
    """Whether no values of SAFE_CHARS can make this run a URL its own text is not."""
    if has_url("".join(p for p in run if isinstance(p, str))):
        return True  # the reviewed text already links: `check` lets the run go on
    if any(isinstance(p, str) and i and not _plain(p[0]) for i, p in enumerate(run)):
        return False
    seen: list[str | int] = [_visible(p) if isinstance(p, str) else p for p in run]
    if sum(p.count(":") for p in seen if isinstance(p, str)) >= 2:
        return False  # IPv6
    for i, piece in enumerate(seen):
        if isinstance(piece, int):
            continue
        for j, ch in enumerate(piece):
            if ch == ":":  # a scheme's colon (then "." after ":" or "/" is no URL either)
                before = {piece[j - 1]} if j else _beside(seen, i, -1)
                if VALUE in before or any(isinstance(c, str) and _SCHEME_CHAR.match(c)
                                          for c in before):
                    return False
            elif ch == ".":  # a domain's, an address's or a scheme name's dot
                after = {piece[j + 1]} if j + 1 < len(piece) else _beside(seen, i, 1)
                if VALUE in after or any(isinstance(c, str) and _AFTER_DOT.match(c)
                                         for c in after):
                    return False
    return True


def _bounded(char: str, edge: str, most: int, *, required: bool) -> str:
    """Up to `most` of `char`, the first and last of them `edge` (nothing to strip)."""
    if most <= 0:
        return "(?!)" if required else ""
    inner = edge if most == 1 else f"{edge}(?:{char}{{0,{most - 2}}}{edge})?"
    return f"(?:{inner})" if required else f"(?:{inner})?"


@lru_cache(maxsize=256)
def values_pattern(content: str, sms_type: str, *, max_length: int = DEFAULT_MAX_LENGTH,
                   allow_urls: bool = False) -> re.Pattern[str] | None:
    """`safe_values` as one compiled pattern over the values joined by NUL: no pattern
    admits a control character, so it matches exactly when there are as many values
    as patterns and each matches its own. None: the template has no such patterns."""
    safe = safe_values(content, sms_type, max_length=max_length, allow_urls=allow_urls)
    return re.compile("\x00".join(safe)) if safe else None


@lru_cache(maxsize=256)
def safe_values(content: str, sms_type: str, *, max_length: int = DEFAULT_MAX_LENGTH,
                allow_urls: bool = False) -> tuple[str, ...] | None:
    """One pattern per parameter (for `re.fullmatch`): values that all match pass
    `check`, and need no stripping. The last never matches an empty value (a file's
    trailing empty cells are not parameters). None: no such patterns for this template."""
    want = len(templating.variables(content))
    if not allow_urls and not all(_safe_run(run) for run in _template_runs(content)):
        return None
    out = []
    for n in range(1, want + 1):
        last = n == want
        if n == 1 and sms_type == templating.VERIFICATION:
            out.append(CODE_PATTERN)
        elif allow_urls:
            out.append(_bounded(_ANY_CHAR, _EDGE_CHAR, max_length, required=last))
        else:
            out.append(f"{safe_chars()}{{{int(last)},{max_length}}}" if max_length >= int(last)
                       else "(?!)")
    return tuple(out)


# --- what a spreadsheet puts where it has no value to show ------------------------------
# Its error values, and a number too long for it in scientific notation (1.23457E+17:
# 15 digits kept, the rest lost). In a bulk file they are row errors (taskfile.py), not
# text to send. A file's fast paths (`safe_values`) skip text that `may_hold_artifact`
# (a substring search: a lookahead before every value cost 12% of a CSV's validation).
SPREADSHEET_ERRORS = ("#N/A", "#DIV/0!", "#REF!", "#NAME?", "#NUM!", "#NULL!", "#VALUE!",
                      "#SPILL!", "#CALC!", "#FIELD!", "#BLOCKED!", "#CONNECT!", "#BUSY!",
                      "#UNKNOWN!", "#GETTING_DATA")
_ARTIFACT_RE = re.compile(r"\#(?:" + "|".join(re.escape(e[1:]) for e in SPREADSHEET_ERRORS)
                          + r")|[+-]?+\d++(?:\.\d++)?+[eE]\+\d++")


def may_hold_artifact(text: str) -> bool:
    """Whether some value in `text` may be one `spreadsheet_artifact` refuses."""
    return "#" in text or "E+" in text or "e+" in text


def spreadsheet_artifact(value: str) -> str | None:
    """Why a file's value is no value to send, or None."""
    if not value or _ARTIFACT_RE.fullmatch(value) is None:
        return None
    if value.startswith("#"):
        return (f"The cell shows a spreadsheet error ({value}), not a value: correct the "
                "formula or the cells it uses.")
    return (f"{value} is a number in scientific notation: the spreadsheet kept only its "
            "first 15 digits. Format the column as Text and type the numbers again.")
