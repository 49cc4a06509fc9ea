"""The in-process simulator: the default gateway, and the only stand-in for a carrier."""

from __future__ import annotations


class SimulatorGateway:
    name = "simulator"

    def register_signature(self, region: str, content: str) -> bool:
        return True  # the simulator's carrier registers at once
