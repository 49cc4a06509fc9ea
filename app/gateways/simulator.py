"""The in-process simulator: the default gateway, and the only stand-in for a carrier.

Realistic on purpose: a latency per batch, carrier refusals and delivery failures
at configurable rates by carrier code, lost receipts, receipts after a delay. And
test numbers with a fixed outcome, so people and tests can see each path:

| number (mainland / international) | outcome |
|---|---|
| +8613900000001 / +14155550101 | delivered |
| +8613900000002 / +14155550102 | refused by the carrier at submission (`MK:0012`) |
| +8613900000003 / +14155550103 | accepted, then undelivered (`UNDELIV`) |
| +8613900000004 / +14155550104 | accepted, no receipt ever |

Settings (SMSOPS_SIMULATOR_*): LATENCY_MS (per batch, default 0), REFUSE_RATES and
UNDELIVERED_RATES (JSON objects of carrier code → share, e.g.
{"MK:0012": 0.01, "MK:0005": 0.005} and {"UNDELIV": 0.02, "EXPIRED": 0.01}),
NO_RECEIPT_RATE, RECEIPT_DELAY_S (default 2), SEED (for repeatable runs).
"""

from __future__ import annotations

import json
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
        self.refuse_rates = _rates(c.get("SIMULATOR_REFUSE_RATES"))
        self.undelivered_rates = _rates(c.get("SIMULATOR_UNDELIVERED_RATES"))
        self.silent_rate = float(c.get("SIMULATOR_NO_RECEIPT_RATE", 0.0))
        self.receipt_delay_s = float(c.get("SIMULATOR_RECEIPT_DELAY_S", 2.0))
        self.random = random.Random(c.get("SIMULATOR_SEED"))

    def register_signature(self, region: str, content: str) -> bool:
        return True  # the simulator's carrier registers at once

    def _outcome(self, number: str) -> tuple[str, str]:
        """(outcome, carrier code)."""
        if number in TEST_NUMBERS:
            outcome = TEST_NUMBERS[number]
            return outcome, {REFUSED: "MK:0012", UNDELIVERED: "UNDELIV"}.get(outcome, "DELIVRD")
        roll = self.random.random()
        chances = [(REFUSED, code, rate) for code, rate in self.refuse_rates.items()]
        chances += [(UNDELIVERED, code, rate) for code, rate in self.undelivered_rates.items()]
        chances.append((SILENT, "", self.silent_rate))
        for outcome, code, rate in chances:
            if roll < rate:
                return outcome, code
            roll -= rate
        return DELIVERED, "DELIVRD"

    def submit(self, batch: list[Outbound]) -> list[SubmitResult]:
        if self.latency_s:
            time.sleep(self.latency_s)  # one round trip per batch, like a windowed SMSC
        results = []
        for m in batch:
            outcome, code = self._outcome(m.phone_number)
            gateway_id = uuid.uuid4().hex
            if outcome == REFUSED:
                results.append(SubmitResult(m.message_id, False, gateway_id,
                                            "FailedOperation.GatewayRejected", code))
                continue
            receipt = None if outcome == SILENT else Receipt(
                delivered=outcome == DELIVERED, carrier_code=code, gateway_id=gateway_id)
            results.append(SubmitResult(m.message_id, True, gateway_id, receipt=receipt,
                                        receipt_after_s=self.receipt_delay_s))
        return results


def _rates(value: Any) -> dict[str, float]:
    """A JSON object (or dict) of carrier code → share of messages."""
    if not value:
        return {}
    found = json.loads(value) if isinstance(value, str) else dict(value)
    if not all(isinstance(v, int | float) and 0 <= v <= 1 for v in found.values()):
        raise ValueError("simulator rates are shares from 0 to 1")
    return {str(k): float(v) for k, v in found.items()}
