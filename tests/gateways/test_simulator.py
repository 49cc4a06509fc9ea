"""The simulator: documented test numbers, and failure rates by carrier code."""

from __future__ import annotations

import pytest

from app.gateways.base import Outbound
from app.gateways.simulator import SimulatorGateway


def test_rates_by_carrier_code_are_honoured() -> None:
    sim = SimulatorGateway({"SIMULATOR_SEED": 7, "SIMULATOR_REFUSE_RATES": '{"MK:0005": 0.1}',
                            "SIMULATOR_UNDELIVERED_RATES": {"UNDELIV": 0.2, "EXPIRED": 0.1},
                            "SIMULATOR_NO_RECEIPT_RATE": 0.1})
    results = sim.submit([Outbound(i, f"+1415555{i:04d}", "hi", "international")
                          for i in range(1000, 6000)])  # clear of the fixed test numbers
    refused = [r for r in results if not r.accepted]
    codes = [r.receipt.carrier_code for r in results if r.receipt]
    assert all(r.carrier_code == "MK:0005" for r in refused)
    assert 400 < len(refused) < 600  # 10 % of 5,000
    assert 850 < codes.count("UNDELIV") < 1150 and 400 < codes.count("EXPIRED") < 600
    assert 400 < sum(1 for r in results if r.accepted and r.receipt is None) < 600
    assert 2300 < codes.count("DELIVRD") < 2700  # the other half


def test_bad_rates_are_refused_at_start() -> None:
    with pytest.raises(ValueError, match="shares"):
        SimulatorGateway({"SIMULATOR_REFUSE_RATES": '{"X": 2}'})
