"""Delivering recorded notifications through their channels."""

from __future__ import annotations

from app.notify import Channels
from app.notify.email import EmailChannel
from app.notify.slack import SlackChannel, web_client
from app.notify.sms import SmsChannel
from app.services import notifications
from jobs import runtime


def channels() -> Channels:
    config = runtime.app().config
    found = Channels()
    found.add(EmailChannel(config))
    found.add(SmsChannel(runtime.app().extensions["gateway"]))
    if config.get("SLACK_BOT_TOKEN"):
        found.add(SlackChannel(web_client(config)))
    return found


def deliver(ids: list[int]) -> None:
    found = channels()
    failed = 0
    for one in ids:
        # Its own transaction each: a result is kept as soon as it is known, so a
        # crash later in the batch never re-sends what already went out.
        with runtime.unit_of_work() as session:
            failed += notifications.deliver(session, [one], found)
    if failed:
        # RQ retries the job (see app/queue.py); sent ones are not sent again.
        raise RuntimeError(f"{failed} notification(s) failed; will retry")
