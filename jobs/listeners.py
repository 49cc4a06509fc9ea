"""Long-running links to carriers: what arrives is handed to the usual jobs."""

from __future__ import annotations

import logging

from flask import Flask

from app.gateways.base import Receipt
from app.gateways.smpp import Listener, SmppGateway
from app.queue import enqueue_deferred
from app.services import replies
from app.services.accounts import ensure_account, system_actor
from app.services.context import Ctx, Settings
from jobs.sending import store_receipts

log = logging.getLogger("smsops.smpp")


def smpp_listener(app: Flask) -> Listener:
    """Receipts go to the pipeline's inbox a batch at a time (one transaction and one
    wake-up of the receipts queue per batch), not one job per receipt."""
    def on_receipts(receipts: list[Receipt]) -> None:
        store_receipts(app, receipts)

    return Listener(SmppGateway(app.config), on_receipts,
                    lambda number, text: _reply(app, number, text))


def tencentcloud_poll_once(app: Flask) -> int:
    """Pull receipts and replies from Tencent Cloud; returns how many arrived."""
    from app.gateways.tencentcloud import TencentCloudGateway

    gateway = app.extensions["gateway"]
    assert isinstance(gateway, TencentCloudGateway)
    receipts, replies_in = gateway.pull()
    store_receipts(app, receipts)
    for number, text in replies_in:
        _reply(app, number, text)
    return len(receipts) + len(replies_in)


def _reply(app: Flask, number: str, text: str) -> None:
    with app.app_context(), app.extensions["db"].unit_of_work() as session:
        ctx = Ctx(session, system_actor(ensure_account(session), "carrier"),
                  Settings.from_config(app.config))
        try:
            replies.receive(ctx, number, text)
        except ValueError as exc:  # a number we cannot read: skip it, keep polling
            log.warning("reply from %r dropped: %s", number, exc)
            return
    enqueue_deferred(app.extensions["redis"], ctx.deferred)
