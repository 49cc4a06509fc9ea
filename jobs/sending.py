"""Submitting accepted messages in batches, and recording receipts."""

from __future__ import annotations

import logging
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from rq import Queue

from app.gateways.base import GatewayUnavailable, Receipt
from app.models.sending import ACCEPTED, SUBMITTING
from app.queue import enqueue
from app.services import sending
from jobs import runtime

log = logging.getLogger("smsops.sending")


def submit(ids: list[int]) -> None:
    app = runtime.app()
    gateway = app.extensions["gateway"]
    with runtime.unit_of_work() as session:
        claimed = sending.claim(session, ids)
        if not claimed:
            return  # another try already took them
        batch = sending.outbound(session, claimed)
        try:
            results = gateway.submit(batch)
        except GatewayUnavailable:
            # Nothing left: give them back so the retry can claim them again.
            from sqlalchemy import update

            from app.models import Message

            session.execute(update(Message).where(Message.id.in_([m.id for m in claimed]),
                                                  Message.status == SUBMITTING)
                            .values(status=ACCEPTED))
            session.commit()
            raise
        sending.record_submissions(session, results)
    _tell_slack([r.message_id for r in results if not r.accepted])
    by_delay: dict[float, list[dict[str, Any]]] = {}
    for r in results:
        if r.receipt is not None:
            receipt = asdict(r.receipt) | {"message_id": r.message_id}
            by_delay.setdefault(r.receipt_after_s, []).append(receipt)
    queue = Queue("default", connection=app.extensions["redis"])
    for delay, receipts in by_delay.items():
        if delay > 0:
            queue.enqueue_in(timedelta(seconds=delay), "jobs.sending.receipts", receipts)
        else:
            queue.enqueue("jobs.sending.receipts", receipts)


def receipts(items: list[dict[str, Any]]) -> None:
    """Delivery reports from any gateway; POSTs them to status callbacks."""
    with runtime.unit_of_work() as session:
        changed = sending.record_receipts(session, [Receipt(**i) for i in items])
        with_callback = sending.apps_with_callbacks(session, changed)
    redis = runtime.app().extensions["redis"]
    for message_id in with_callback:
        enqueue(redis, sending.STATUS_CALLBACK_JOB, message_id)
    _tell_slack(changed)


def _tell_slack(message_ids: list[int]) -> None:
    """Messages sent from `/sms send`: update that reply with the outcome."""
    redis = runtime.app().extensions["redis"]
    for message_id in message_ids:
        url = redis.getdel(f"smsops:slack:receipt:{message_id}")
        if url:
            enqueue(redis, "jobs.slack.receipt_reply", url.decode(), message_id)
