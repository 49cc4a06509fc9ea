"""The gateway port. Sending is added by the sending capability."""

from __future__ import annotations

from typing import Protocol


class Gateway(Protocol):
    name: str

    def register_signature(self, region: str, content: str) -> bool:
        """Ask the carrier to register an approved signature.

        True: effective now. False: the carrier will confirm later, and the
        signature stays "approved, pending effect" until it does.
        """
        ...
