"""One unit of work per Slack interaction, acting as the linked console user."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from slack_sdk import WebClient

from app.queue import enqueue_deferred
from app.services.accounts import actor_for
from app.services.context import Ctx, Settings
from bot import identity


class NotLinked(Exception):
    def __init__(self, base_url: str, *, disabled: bool = False) -> None:
        super().__init__(
            "The smsops user your Slack account is linked to is disabled: ask an "
            "administrator to enable it." if disabled else
            "Your Slack account is not linked to an smsops user. Open "
            f"{base_url}/account, choose *Link my Slack account* and type the code it shows "
            "as `/sms link CODE` here. A matching confirmed email links automatically."
        )


@contextmanager
def acting(flask_app: Flask, client: WebClient, slack_user_id: str) -> Iterator[Ctx]:
    settings = Settings.from_config(flask_app.config)
    with flask_app.app_context():
        with flask_app.extensions["db"].unit_of_work() as session:
            user = identity.resolve(session, client, slack_user_id)
            if user is None:  # nothing was written: found nobody to link
                raise NotLinked(settings.base_url,
                                disabled=identity.linked_but_disabled(session, slack_user_id))
            ctx = Ctx(session, actor_for(user), settings, gateway=flask_app.extensions["gateway"])
            yield ctx
        enqueue_deferred(flask_app.extensions["redis"], ctx.deferred)


def whole_number(text: str, digits: int = 9) -> int | None:
    """An id typed in a command or carried by a button, or None: ASCII digits only ('²'
    is a digit to str.isdigit, but int() refuses it), few enough for the database."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= digits else None
