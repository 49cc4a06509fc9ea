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


def escape_message(text: object) -> str:
    """Our own sentences, which may quote user text (a refusal, a usage hint): & < >
    escaped, so no mention or link comes through, and nothing else changed, so our
    own marks (`sms:app/*`, `/sms task 12`, field_names) read as written."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# mrkdwn has no escape for its formatting marks: user text gets look-alikes instead,
# so `*bold*`, `_it_`, `~del~` and `code` in a name or a reason stay as typed.
_INERT = str.maketrans({"*": "\u2217", "_": "\u02cd", "~": "\u223c", "`": "\u02cb"})
_URL = re.compile(r"https?://\S+")


def escape(text: object) -> str:
    """User text for mrkdwn: & < > escaped (no mentions, no links) and formatting marks
    made inert, except inside URLs, which must stay usable."""
    escaped = escape_message(text)
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

    def send(self, message: Message) -> str | None:
        text = f"*{escape(message.subject)}*\n{escape(message.body)}"
        extra: dict[str, Any] = {}
        if message.alarm is not None:
            extra["blocks"] = alarm_blocks(message.alarm)
        try:
            answer = self.client.chat_postMessage(
                channel=message.recipient, text=text, unfurl_links=False, **extra)
        except SlackApiError as exc:
            log.warning("Slack chat.postMessage to %s failed: %s", message.recipient,
                        describe(exc))
            raise DeliveryError(f"Slack: {describe(exc)}") from None
        if message.alarm is None:
            return None
        # A DM lands in a D… channel: chat.update needs that id, not the user's.
        return f"{answer.get('channel') or message.recipient}:{answer.get('ts') or ''}"


# Alarm message buttons (bot/alarms.py answers them).
ALARM_ACK = "alarm_ack"
ALARM_OPEN = "alarm_open"
ALARM_RAISE = "alarm_raise_limit"
ALARM_STOP_TASK = "alarm_stop_task"
ALARM_RAISE_MODAL = "alarm_raise_modal"


def alarm_blocks(data: dict[str, Any]) -> list[dict[str, Any]]:
    """What, which application, the number against its threshold, when; then the
    buttons, or who acknowledged it (no buttons left to click twice)."""
    figures = data.get("figures") or {}
    lines = [f":rotating_light: *{escape(data.get('label', ''))}*: {escape(data['subject'])}"]
    facts = []
    if figures.get("sdk_app_id"):
        facts.append(f"*Application:* {escape(figures.get('app_name') or '')} "
                     f"({figures['sdk_app_id']})")
    elif figures.get("from_sdk_app_id"):  # an account-wide alarm: where it was hit
        facts.append(f"*Hit in:* {escape(figures.get('from_app_name') or '')} "
                     f"({figures['from_sdk_app_id']})")
    if figures.get("value") is not None:
        against = (f" of {figures['threshold']:,}" if isinstance(figures.get("threshold"), int)
                   else "")
        facts.append(f"*Figure:* {figures['value']:,}{against} {escape(figures.get('unit', ''))}"
                     .rstrip())
    facts.append(f"*When:* {escape(data.get('when', ''))}")
    def mrkdwn(text: str) -> dict[str, Any]:  # verbatim: no auto-linked names or URLs
        return {"type": "mrkdwn", "text": text[:2900], "verbatim": True}

    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": mrkdwn("\n".join(lines))},
        {"type": "section", "text": mrkdwn(escape(data.get("body", "")))},
        {"type": "context", "elements": [mrkdwn(" · ".join(facts))]},
    ]
    alarm_id = str(data["alarm_id"])
    if data.get("acknowledged_by"):
        blocks.append({"type": "context", "elements": [mrkdwn(
            f":white_check_mark: Acknowledged by {escape(data['acknowledged_by'])} at "
            f"{escape(data.get('acknowledged_at') or '')}")]})
        buttons: list[dict[str, Any]] = []
    else:
        buttons = [{"type": "button", "action_id": ALARM_ACK, "value": alarm_id,
                    "style": "primary", "text": {"type": "plain_text", "text": "Acknowledge"}}]
    if data.get("url"):
        buttons.append({"type": "button", "action_id": ALARM_OPEN, "url": data["url"],
                        "text": {"type": "plain_text", "text": "Open in web"}})
    if data.get("raise_limit") and not data.get("acknowledged_by"):
        buttons.append({"type": "button", "action_id": ALARM_RAISE, "value": alarm_id,
                        "text": {"type": "plain_text", "text": "Raise limit"}})
    # Stop stays after an acknowledge: it follows the task, which may still be sending.
    for task_id in data.get("stop_tasks") or ():
        buttons.append({  # action ids are unique within a block: the task id is in it
            "type": "button", "action_id": f"{ALARM_STOP_TASK}:{task_id}",
            "value": f"{alarm_id}:{task_id}", "style": "danger",
            "text": {"type": "plain_text", "text": f"Stop task #{task_id}"},
            "confirm": {"title": {"type": "plain_text", "text": f"Stop task #{task_id}?"},
                        "text": {"type": "plain_text", "text": "The rest stays unsent; a "
                                 "stopped task cannot resume."},
                        "confirm": {"type": "plain_text", "text": "Stop task"},
                        "deny": {"type": "plain_text", "text": "Keep it"},
                        "style": "danger"}})
    ended = [f":octagonal_sign: Task #{task_id} stopped" + (f" by {escape(who)}" if who else "")
             if status == "stopped" else f"Task #{task_id} is {escape(status.replace('_', ' '))}"
             for task_id, status, who in data.get("tasks_ended") or ()]
    if ended:
        blocks.append({"type": "context", "elements": [mrkdwn(" · ".join(ended))]})
    blocks.append({"type": "actions", "block_id": f"alarm:{alarm_id}", "elements": buttons})
    return blocks
