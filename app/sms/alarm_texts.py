"""The fixed wording of alarm SMS.

An alarm SMS is texted outside the review of templates, so it may carry no text a
user typed (no template, signature or application names, no reasons): only the
phrases below, filled with ids, counts and words from fixed sets. Email and Slack
carry the details.
"""

from __future__ import annotations

import re

# What each placeholder may hold.
PARAMS: dict[str, str] = {
    "app": r"\d{10}",  # an SDK AppID
    "id": r"\d{1,12}",
    "used": r"\d{1,3}(?:,\d{3})*",
    "left": r"\d{1,3}(?:,\d{3})*",
    "region": r"mainland|international",
    "country": r"[A-Z]{2}",  # an ISO 3166 code
    "kind": r"template|signature|qualification|unsubscribe removal request",
    "outcome": r"approved|approved, pending effect|effective|rejected",
    "code": r"\d{6}",
    "minutes": r"\d{1,3}",
    "pct": r"\d{1,3}",
    "status": r"failed|stopped",
}

_FIGURES = frozenset({"used", "left"})  # counts, shown as 12,345

TEXTS: dict[str, str] = {
    "review": "Review result: {kind} #{id} is {outcome}. Details in the console.",
    "threshold": "App {app} passed its daily {region} alarm threshold: {used} billed items "
                 "today.",
    "limit": "App {app} reached its daily {region} limit; sending there is suspended until "
             "the end of the day.",
    "country_threshold": "App {app} passed its daily alarm threshold for {country}: {used} "
                         "billed items today.",
    "country_limit": "App {app} reached its daily limit for {country}; sending there is "
                     "suspended until the end of the day.",
    "frequency": "App {app}: frequency limits refused {used} number(s) so far this hour. "
                 "Details in the console.",
    "package": "Credit packages are low: {left} mainland billed items left.",
    "captcha": "App {app}: unusual verification-code traffic. Details in the console.",
    "captcha_figures": "App {app}: unusual verification-code traffic, {used} in an hour, "
                       "{pct}% successful. Details in the console.",
    "quota": "The account reached its daily international quota; international sending is "
             "suspended until the end of the day.",
    "package_expired": "A credit package expired; {left} mainland billed items are left.",
    "link_down": "The carrier link is down for {minutes} minute(s); messages wait to be sent.",
    "link_up": "The carrier link is back up after {minutes} minute(s).",
    "task": "App {app}: bulk task #{id} {status}. Details in the console.",
    "test": "A test alarm from smsops: this contact receives alarm SMS.",
    "confirm": "Your alarm contact confirmation code is {code}. It expires in {minutes} "
               "minutes.",
}

_FIELD = re.compile(r"\{(\w+)\}")


def _pattern(template: str) -> re.Pattern[str]:
    parts, last = [], 0
    for m in _FIELD.finditer(template):
        parts.append(re.escape(template[last:m.start()]))
        parts.append(f"(?:{PARAMS[m.group(1)]})")
        last = m.end()
    parts.append(re.escape(template[last:]))
    return re.compile("".join(parts))


_PATTERNS = {key: _pattern(t) for key, t in TEXTS.items()}


def render(key: str, **params: str | int) -> str:
    """The catalogue text `key` filled in; ValueError for anything outside it."""
    template = TEXTS[key]
    wanted = set(_FIELD.findall(template))
    if set(params) != wanted:
        raise ValueError(f"{key} takes {sorted(wanted)}, got {sorted(params)}")
    values: dict[str, str] = {}
    for name, value in params.items():
        # Figures with thousands separators, ids without (#1000, not #1,000).
        shown = f"{value:,}" if isinstance(value, int) and name in _FIGURES else str(value)
        if not re.fullmatch(PARAMS[name], shown):
            raise ValueError(f"{name} may not be {shown[:40]!r} in an alarm SMS")
        values[name] = shown
    return template.format(**values)


def is_catalogued(text: str) -> bool:
    """True only for a text render() could have produced."""
    return any(p.fullmatch(text) for p in _PATTERNS.values())
