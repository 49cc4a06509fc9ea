"""Which statistics bucket a message is in (SPEC.md §7): pure rules, no I/O.

A message's outcome follows from its state alone (plus whether a receipt came),
so moving a message between states moves exactly one count between buckets.
"""

from __future__ import annotations

from typing import Any

# Outcomes, in the order pages list them.
PENDING = "accepted"  # passed every check; not with the carrier yet (accepted, submitting)
REFUSED = "rejected"  # refused by a check before leaving
SUBMITTED = "submitted"  # the carrier took it; no receipt yet
CARRIER_REFUSED = "refused"  # the carrier refused it at submission
DELIVERED = "delivered"
FAILED = "failed"  # a receipt said it could not be delivered
NO_RECEIPT = "no_receipt"  # no receipt within the validity period
UNKNOWN = "unknown"  # may or may not have left
OUTCOMES = (PENDING, REFUSED, SUBMITTED, CARRIER_REFUSED, DELIVERED, FAILED, NO_RECEIPT,
            UNKNOWN)

# Accepted by the carrier (the "success" of the overview).
SUCCESS = (SUBMITTED, DELIVERED, FAILED, NO_RECEIPT)
WITH_RECEIPT = (DELIVERED, FAILED)
WITHOUT_RECEIPT = (SUBMITTED, NO_RECEIPT)  # taken, and no receipt (yet or ever)
# Outcomes whose error code says why (failure analysis).
FAILURES = (REFUSED, CARRIER_REFUSED, FAILED, NO_RECEIPT, UNKNOWN)

_BY_STATUS = {"accepted": PENDING, "submitting": PENDING, "rejected": REFUSED,
              "submitted": SUBMITTED, "delivered": DELIVERED, "no_receipt": NO_RECEIPT,
              "unknown": UNKNOWN}

def outcome(status: str, has_receipt: bool) -> str:
    if status == "failed":
        return FAILED if has_receipt else CARRIER_REFUSED
    return _BY_STATUS[status]


def key(status: str, has_receipt: bool, error_code: str | None,
        carrier_code: str | None) -> tuple[str, str, str]:
    """(outcome, error code, carrier code) as the rollup keeps them: an error code
    only where it explains a failure (a message sent again after `unknown` keeps the
    stale code on its row), a carrier code only for failed receipts."""
    out = outcome(status, has_receipt)
    error = (error_code or "") if out in FAILURES else ""
    carrier = (carrier_code or "")[:64] if out == FAILED else ""
    return out, error[:64], carrier


def billed_items(m: Any) -> int:
    """What a message (a row with status, receipt_at and fee) is billed: its items, but
    none once the carrier refused it at submission (SPEC.md §7 bills what the carrier
    accepted; its credit came back)."""
    return 0 if outcome(m.status, m.receipt_at is not None) == CARRIER_REFUSED else m.fee
