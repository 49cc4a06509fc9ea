"""Slack Web API calls made after the interaction was acknowledged."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from rq import Queue, get_current_job
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient

from app.notify.slack import describe, web_client
from jobs import runtime

log = logging.getLogger("smsops.slack")


def client() -> WebClient:
    return web_client(runtime.app().config)


def call(method: Callable[..., Any], **kwargs: Any) -> Any | None:
    """One Web API call. Rate limited: the job runs again after Retry-After. Other
    errors (channel_not_found, token_revoked, …) are logged with Slack's code."""
    try:
        return method(**kwargs)
    except SlackApiError as exc:
        if exc.response is not None and exc.response.status_code == 429:
            delay = int(exc.response.headers.get("Retry-After", "30"))
            job = get_current_job()
            if job is not None and job.func_name:  # typed optional by RQ
                Queue(job.origin, connection=job.connection).enqueue_in(
                    timedelta(seconds=delay), job.func_name, *job.args, **job.kwargs)
                log.warning("Slack rate limited %s; again in %s s", job.func_name, delay)
                return None
        log.error("Slack %s failed: %s", getattr(method, "__name__", method), describe(exc))
        return None


def ephemeral(channel: str, user: str, text: str) -> None:
    c = client()
    call(c.chat_postEphemeral, channel=channel, user=user, text=text)


def replace_ephemeral(response_url: str, kind: str, obj_id: int) -> None:
    """After a decision from the `/sms reviews` list, show the outcome there."""
    from jobs.reviews import message_blocks

    with runtime.unit_of_work() as session:
        found = message_blocks(session, kind, obj_id, buttons=False)
    if found is None:
        return
    text, blocks = found
    try:
        WebhookClient(response_url, timeout=10).send(text=text, blocks=blocks,
                                                     replace_original=True)
    except Exception as exc:  # the URL expires after 30 minutes; nothing to retry then
        log.warning("response_url update failed: %s", type(exc).__name__)


def receipt_reply(response_url: str, message_id: int) -> None:
    """The outcome of a `/sms send`, in place of the reply that announced it."""
    from app.models import Message
    from app.sms import errors

    with runtime.unit_of_work() as session:
        msg = session.get(Message, message_id)
        if msg is None:
            return
        if msg.status == "delivered":
            text = f":white_check_mark: Delivered to {msg.phone_number} ({msg.carrier_code})."
        else:
            reason = errors.describe(msg.error_code).reason if msg.error_code else msg.status
            text = (f":x: Not delivered to {msg.phone_number}: `{msg.error_code}` "
                    f"({msg.carrier_code or 'no carrier code'}) — {reason}")
    try:
        WebhookClient(response_url, timeout=10).send(text=text, replace_original=True)
    except Exception as exc:  # the URL expires after 30 minutes; nothing to retry then
        log.warning("response_url update failed: %s", type(exc).__name__)
