"""Body templates: variables `{1}..{N}`, the content rules, rendering."""

from __future__ import annotations

import re

MAX_CONTENT = 499  # "under 500 characters"
VARIABLE = re.compile(r"\{(\d+)\}")
# Phrases that tell a reader how to stop marketing messages.
OPT_OUT = re.compile(r"退订|拒收|unsubscribe|opt[\s-]?out|\bstop\b", re.IGNORECASE)
VERIFICATION, NOTIFICATION, MARKETING = "verification", "notification", "marketing"
SMS_TYPES = {VERIFICATION: "Verification code", NOTIFICATION: "Notification",
             MARKETING: "Marketing"}


def variables(content: str) -> list[int]:
    """The distinct variable numbers, in ascending order."""
    return sorted({int(n) for n in VARIABLE.findall(content)})


def problems(content: str, sms_type: str) -> list[str]:
    """Every rule the content breaks; an empty list means it is acceptable."""
    found: list[str] = []
    if not content.strip():
        return ["Enter the message content."]
    if any((ord(c) < 32 and c not in "\n\r\t") or ord(c) == 127 for c in content):
        found.append("Remove control characters (such as NUL).")
    if len(content) > MAX_CONTENT:
        found.append(f"Use under 500 characters ({len(content)} now).")
    numbers = variables(content)
    if numbers and numbers != list(range(1, len(numbers) + 1)):
        found.append("Number variables consecutively from {1}: found "
                     + ", ".join(f"{{{n}}}" for n in numbers) + ".")
    if not VARIABLE.sub("", content).strip():
        found.append("The content cannot be variables only.")
    if sms_type == MARKETING and not OPT_OUT.search(content):
        found.append('Marketing content must say how to opt out, e.g. "Reply R to '
                     'unsubscribe" or "回T退订".')
    return found


def render(content: str, params: list[str]) -> str:
    """Fill `{n}` with params[n-1]; the caller has checked the count."""
    return VARIABLE.sub(lambda m: params[int(m.group(1)) - 1], content)


def sample_params(count: int, sms_type: str) -> list[str]:
    """Plausible values for showing what a message will cost."""
    sample = "123456" if sms_type == VERIFICATION else "sample"
    return [sample] * count
