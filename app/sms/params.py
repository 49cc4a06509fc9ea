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


@lru_cache(maxsize=1024)
def check(content: str, sms_type: str, params: tuple[str, ...], *,
          max_length: int = DEFAULT_MAX_LENGTH, allow_urls: bool = False) -> Problem | None:
    """The first parameter that breaks a rule, or None. The caller has checked that
    the number of parameters matches the template's variables."""
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
