"""Slack as a notification channel, and the one place a Web API client is built."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from app.notify import DeliveryError, Message

log = logging.getLogger("smsops.slack")
DEFAULT_API_URL = "https://slack.com/api/"


def web_client(config: dict[str, Any]) -> WebClient:
    base = config.get("SLACK_API_URL") or DEFAULT_API_URL
    return WebClient(token=config.get("SLACK_BOT_TOKEN"), base_url=base.rstrip("/") + "/",
                     timeout=10)


def describe(exc: SlackApiError) -> str:
    """Slack's error code, and how long to wait when rate limited."""
    error = exc.response.get("error", "unknown_error") if exc.response else "no_response"
    retry = exc.response.headers.get("Retry-After") if exc.response is not None else None
    return f"{error} (retry after {retry} s)" if retry else str(error)


# mrkdwn has no escape for its formatting marks: user text gets look-alikes instead,
# so `*bold*`, `_it_`, `~del~` and `code` in a name or a reason stay as typed.
_INERT = str.maketrans({"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"})
_URL = re.compile(r"https?://\S+")


def escape(text: object) -> str:
    """User text for mrkdwn: & < > escaped (no mentions, no links) and formatting marks
    made inert, except inside URLs, which must stay usable."""
    escaped = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    out, last = [], 0
    for url in _URL.finditer(escaped):
        out.append(escaped[last:url.start()].translate(_INERT))
        out.append(url.group())
        last = url.end()
    out.append(escaped[last:].translate(_INERT))
    return "".join(out)


class SlackChannel:
    """A DM to a user id (U…/W…), or a post to a channel id (C…)."""

    name = "slack"

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def send(self, message: Message) -> None:
        try:
            self.client.chat_postMessage(
                channel=message.recipient,
                text=f"*{escape(message.subject)}*\n{escape(message.body)}",
                unfurl_links=False,
            )
        except SlackApiError as exc:
            log.warning("Slack chat.postMessage to %s failed: %s", message.recipient,
                        describe(exc))
            raise DeliveryError(f"Slack: {describe(exc)}") from None
