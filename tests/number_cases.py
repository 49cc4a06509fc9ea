"""One table of typed phone numbers, used by the tests of every entry point that takes
them (issue #8): each must accept, normalize and refuse them alike."""

from __future__ import annotations

from app.sms import numbers

# (as typed, E.164)
GOOD = [
    ("13800000000", "+8613800000000"),
    ("138 0000 0001", "+8613800000001"),
    ("+86 138-0000-0002", "+8613800000002"),
    ("\uff0b\uff18\uff16\uff11\uff13\uff18\uff10\uff10\uff10\uff10\uff10\uff10\uff10\uff13",
     "+8613800000003"),  # full-width, as a Chinese keyboard types it
    ("+1 (415) 555-0104", "+14155550104"),
]
# (as typed, the one message every entry point answers)
BAD = [
    ("4155550100", numbers.NEED_COUNTRY_CODE),
    ("abc", numbers.NOT_A_NUMBER),
    ("12345678901", numbers.INVALID_MAINLAND),
    ("+8612345678901", numbers.INVALID_FOR_COUNTRY),
    ("+14155550100x5", numbers.NOT_A_NUMBER),
    ("+999", numbers.NOT_A_NUMBER),
]
