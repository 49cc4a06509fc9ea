"""Gateways: one interface to the carrier, several adapters (SPEC.md §3)."""

from __future__ import annotations

from typing import Any

from app.gateways.base import Gateway


def build(config: dict[str, Any]) -> Gateway:
    name = config.get("GATEWAY", "simulator")
    if name == "simulator":
        from app.gateways.simulator import SimulatorGateway

        return SimulatorGateway(config)
    if name == "smpp":
        from app.gateways.smpp import SmppGateway

        return SmppGateway(config)
    if name == "tencentcloud":
        from app.gateways.tencentcloud import TencentCloudGateway

        return TencentCloudGateway(config)
    raise ValueError(f"unknown gateway {name!r}; this build has: simulator, smpp, tencentcloud")
