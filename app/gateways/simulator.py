"""The in-process simulator: the default gateway, and the only stand-in for a carrier.

Realistic on purpose: a latency per batch, random carrier refusals, undelivered
messages and lost receipts at configurable rates, receipts after a delay. And
test numbers with a fixed outcome, so people and tests can see each path:

| number (mainland / international) | outcome |
|---|---|
| +8613900000001 / +14155550101 | delivered |
| +8613900000002 / +14155550102 | refused by the carrier at submission (`MK:0012`) |
| +8613900000003 / +14155550103 | accepted, then undelivered (`UNDELIV`) |
| +8613900000004 / +14155550104 | accepted, no receipt ever |
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

from app.gateways.base import Outbound, Receipt, SubmitResult

DELIVERED, REFUSED, UNDELIVERED, SILENT = "delivered", "refused", "undelivered", "silent"
TEST_NUMBERS = {
    "+8613900000001": DELIVERED, "+14155550101": DELIVERED,
    "+8613900000002": REFUSED, "+14155550102": REFUSED,
    "+8613900000003": UNDELIVERED, "+14155550103": UNDELIVERED,
    "+8613900000004": SILENT, "+14155550104": SILENT,
}


class SimulatorGateway:
    name = "simulator"

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        c = config or {}
        self.latency_s = float(c.get("SIMULATOR_LATENCY_MS", 0)) / 1000
        self.refuse_rate = float(c.get("SIMULATOR_REFUSE_RATE", 0.0))
        self.undelivered_rate = float(c.get("SIMULATOR_UNDELIVERED_RATE", 0.0))
        self.silent_rate = float(c.get("SIMULATOR_NO_RECEIPT_RATE", 0.0))
        self.receipt_delay_s = float(c.get("SIMULATOR_RECEIPT_DELAY_S", 2.0))
        self.random = random.Random(c.get("SIMULATOR_SEED"))

    def register_signature(self, region: str, content: str) -> bool:
        return True  # the simulator's carrier registers at once

    def _outcome(self, number: str) -> str:
        if number in TEST_NUMBERS:
            return TEST_NUMBERS[number]
        roll = self.random.random()
        for outcome, rate in ((REFUSED, self.refuse_rate), (UNDELIVERED, self.undelivered_rate),
                              (SILENT, self.silent_rate)):
            if roll < rate:
                return outcome
            roll -= rate
        return DELIVERED

    def submit(self, batch: list[Outbound]) -> list[SubmitResult]:
        if self.latency_s:
            time.sleep(self.latency_s)  # one round trip per batch, like a windowed SMSC
        results = []
        for m in batch:
            outcome = self._outcome(m.phone_number)
            gateway_id = uuid.uuid4().hex
            if outcome == REFUSED:
                results.append(SubmitResult(m.message_id, False, gateway_id,
                                            "FailedOperation.GatewayRejected", "MK:0012"))
                continue
            receipt = None if outcome == SILENT else Receipt(
                delivered=outcome == DELIVERED,
                carrier_code="DELIVRD" if outcome == DELIVERED else "UNDELIV",
                gateway_id=gateway_id)
            results.append(SubmitResult(m.message_id, True, gateway_id, receipt=receipt,
                                        receipt_after_s=self.receipt_delay_s))
        return results
