"""The gateway port: what the service layer and jobs need from any carrier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Outbound:
    message_id: int
    phone_number: str  # E.164
    text: str  # exactly what leaves: signature + body
    region: str
    # For carriers that send by template instead of text (tencentcloud).
    template_ref: str | None = None
    params: tuple[str, ...] = ()
    sign_name: str | None = None
    # The claim this submit belongs to: gateways that can be asked later (`lookup`)
    # remember it, so an expired lease is resolved exactly.
    attempt_id: str | None = None
    # When the message was accepted: a lookup searches the carrier's records from here.
    since: datetime | None = None


@dataclass(frozen=True)
class Receipt:
    """A delivery report, matched by our id or by the carrier's."""

    delivered: bool
    carrier_code: str
    message_id: int | None = None
    gateway_id: str | None = None
    at: datetime | None = None


@dataclass(frozen=True)
class SubmitResult:
    message_id: int
    accepted: bool
    gateway_id: str | None = None
    error_code: str | None = None  # from app/sms/errors.py when not accepted
    carrier_code: str | None = None
    # Adapters that know the outcome in advance (the simulator) say it here;
    # real carriers report receipts later through the receipts job.
    receipt: Receipt | None = None
    receipt_after_s: float = 0.0
    # Written to the carrier but no answer came (the link dropped): it may or may
    # not have left, so it must never be sent again.
    unknown: bool = False
    # Never reached the carrier (the link dropped before it was written, or the
    # carrier kept throttling): safe to send again; the pipeline puts it back to
    # `accepted` under the same attempt check.
    not_sent: bool = False
    # Every part's carrier id, in order, when the message went out in several parts
    # (receipts come per part; gateway_id is the first).
    part_ids: tuple[str, ...] = ()


class GatewayUnavailable(Exception):
    """Nothing in the batch left: the carrier could not be reached. Safe to retry."""


class Gateway(Protocol):
    name: str

    def register_signature(self, region: str, content: str) -> bool:
        """Ask the carrier to register an approved signature.

        True: effective now. False: the carrier will confirm later, and the
        signature stays "approved, pending effect" until it does.
        """
        ...

    def submit(self, batch: list[Outbound]) -> list[SubmitResult]:
        """One result per message, in order. Raise GatewayUnavailable only when
        nothing was sent."""
        ...


class Lookup(Protocol):
    """Optional: gateways that can say what became of an attempt (the simulator,
    Tencent Cloud)."""

    # True where a message left `unknown` may still be found later (its report has
    # not come yet): the sweeper asks again (pipeline.ask_carrier).
    asks_again: bool

    def lookup(self, batch: list[Outbound]) -> list[SubmitResult | None]:
        """For each message, its result if this attempt reached the carrier; None if it
        provably did not, which also fences the attempt so it never can; a result
        with `unknown` set where the carrier cannot tell yet."""
        ...
