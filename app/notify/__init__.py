"""The notification port: channels that deliver a message to one recipient.

Services record what to send (Notification rows) and defer delivery to a job;
the job hands each row to the channel named on it. Email is here now; Slack and
SMS register themselves the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Message:
    recipient: str
    subject: str
    body: str
    # An alarm's figures (app/services/alarms.py slack_data) for channels that can show
    # them richly (Slack blocks with buttons); others send subject and body.
    alarm: dict[str, Any] | None = None


class DeliveryError(Exception):
    """The channel could not deliver; the message says why (never a secret).
    `permanent`: trying again cannot help (the message itself is refused)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class Channel(Protocol):
    name: str

    def send(self, message: Message) -> str | None:
        """Deliver; may return where it landed (Slack: channel:ts) to update it later."""


class Channels:
    def __init__(self) -> None:
        self._by_name: dict[str, Channel] = {}

    def add(self, channel: Channel) -> None:
        self._by_name[channel.name] = channel

    def get(self, name: str) -> Channel:
        try:
            return self._by_name[name]
        except KeyError:
            raise DeliveryError(f"no {name} channel is configured") from None

    def __contains__(self, name: str) -> bool:
        return name in self._by_name
