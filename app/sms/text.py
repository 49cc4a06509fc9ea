"""How a message is encoded, split and billed (SPEC.md §3, fixed rules).

A message made only of GSM 03.38 characters is GSM-7: up to 160 septets in one
part, else 153-septet parts (extension characters take 2 septets and are never
split). Anything else is UCS-2: up to 70 UTF-16 units in one part, else 67-unit
parts that never split a surrogate pair. Mainland messages are always counted as
UCS-2 over `【signature】body`. Each part is one billed item.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GSM7, UCS2 = "GSM-7", "UCS-2"
MAINLAND, INTERNATIONAL = "mainland", "international"
REGIONS = (MAINLAND, INTERNATIONAL)

GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = frozenset("^{}\\[~]|€\f")  # each is escape + char: 2 septets
# GSM 03.38 in code order, 0x00-0x7F (0x1B escapes to the extension table), and the
# extension characters' codes. Ours, not smpplib's: its table has a backtick where
# 0x5F is '§' and lacks the form feed (tests/sending/test_gsm7.py).
GSM_TABLE = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
             "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_EXTENSION_CODES = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C,
                       "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65}
_TO_GSM = {ch: bytes((code,)) for code, ch in enumerate(GSM_TABLE) if code != 0x1B} | {
    ch: bytes((0x1B, code)) for ch, code in GSM_EXTENSION_CODES.items()}
_FROM_GSM_EXTENSION = {code: ch for ch, code in GSM_EXTENSION_CODES.items()}


def gsm7_encode(text: str) -> bytes:
    """GSM-7 text as SMPP carries it with data_coding 0: one septet per byte, an
    extension character as escape + its code. ValueError for any other character."""
    try:
        return b"".join(map(_TO_GSM.__getitem__, text))
    except KeyError as exc:
        raise ValueError(f"not GSM-7: {exc.args[0]!r}") from None


def gsm7_decode(body: bytes) -> str:
    """The reverse; a code with no character (an unknown escape, a byte past 0x7F)
    reads as '?', an escape at the end as nothing."""
    out: list[str] = []
    escaped = False
    for byte in body:
        if escaped:
            out.append(_FROM_GSM_EXTENSION.get(byte, "?"))
            escaped = False
        elif byte == 0x1B:
            escaped = True
        else:
            out.append(GSM_TABLE[byte] if byte < 0x80 else "?")
    return "".join(out)

SINGLE = {GSM7: 160, UCS2: 70}
MULTI = {GSM7: 153, UCS2: 67}


@dataclass(frozen=True)
class Segments:
    text: str
    encoding: str
    characters: int  # what a person counts: code points
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    parts: tuple[str, ...]

    @property
    def billed_items(self) -> int:
        return len(self.parts)

    def as_dict(self) -> dict[str, object]:
        return {"encoding": self.encoding, "characters": self.characters, "units": self.units,
                "parts": self.billed_items, "billed_items": self.billed_items,
                "part_lengths": [self._size(p) for p in self.parts]}

    def _size(self, part: str) -> int:
        return _units(part, self.encoding)


_GSM_ALL = GSM_BASIC | GSM_EXTENSION
_ESCAPED = re.compile("[" + re.escape("".join(sorted(GSM_EXTENSION))) + "]")

# The counts below run in C over the whole string (set membership, a regex, a
# UTF-16 encode): a Python generator per character cost twice as much per message.
# tests/sms/test_text.py checks them against the per-character rules.


def is_gsm7(text: str) -> bool:
    return _GSM_ALL.issuperset(text)


def _char_units(c: str, encoding: str) -> int:
    if encoding == GSM7:
        return 2 if c in GSM_EXTENSION else 1
    return 2 if ord(c) > 0xFFFF else 1  # a surrogate pair in UTF-16


def _units(text: str, encoding: str) -> int:
    if encoding == GSM7:
        return len(text) if _ESCAPED.search(text) is None \
            else len(text) + len(_ESCAPED.findall(text))
    # surrogatepass: a lone surrogate (JSON allows "\ud800") is one unit, as above.
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def segment(text: str, *, force_ucs2: bool = False) -> Segments:
    encoding = UCS2 if force_ucs2 or not is_gsm7(text) else GSM7
    total = _units(text, encoding)
    if total <= SINGLE[encoding]:
        return Segments(text, encoding, len(text), total, (text,))
    limit = MULTI[encoding]
    if total == len(text):  # every character one unit: parts are plain slices
        return Segments(text, encoding, len(text), total,
                        tuple(text[i:i + limit] for i in range(0, len(text), limit)))
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for c in text:  # iterating code points keeps pairs and escapes whole
        size = _char_units(c, encoding)
        if used + size > limit:
            parts.append("".join(current))
            current, used = [], 0
        current.append(c)
        used += size
    parts.append("".join(current))
    return Segments(text, encoding, len(text), total, tuple(parts))


def compose(body: str, signature: str | None, region: str) -> str:
    """The text that leaves: 【Sig】Body on the mainland, [Sig] Body elsewhere."""
    if not signature:
        return body
    return f"【{signature}】{body}" if region == MAINLAND else f"[{signature}] {body}"


def parts_of(sent: str, region: str) -> int:
    """How many parts a message's text (with its signature, as it left) takes."""
    return len(segment(sent, force_ucs2=region == MAINLAND).parts)


def count(body: str, region: str = INTERNATIONAL, signature: str | None = None) -> Segments:
    if region not in REGIONS:
        raise ValueError(f"region must be one of {REGIONS}")
    return segment(compose(body, signature, region), force_ucs2=region == MAINLAND)
