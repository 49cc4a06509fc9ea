"""The pipeline's jobs: drain accepted messages in batches, apply receipts, sweep.

The rules (states, leases, what recovers each fault) are written down at the top of
app/services/pipeline.py; these jobs only move batches through them. Every job here
is a wake-up that may run any number of times: the database says what is left.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

import redis as redis_lib
from flask import Flask
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.gateways.base import GatewayUnavailable, Outbound, Receipt, SubmitResult
from app.queue import DRAIN_JOB, RECEIPTS_JOB, enqueue_each, wake, wake_key
from app.services import pipeline, sending
from app.services.pipeline import PipelineSettings
from jobs import runtime
from jobs.alarms import observe_link

log = logging.getLogger("smsops.sending")
T = TypeVar("T")
DRAIN_BUDGET_S = 60.0  # one drain job's share before it hands over to a new one
SLACK_RECEIPT_KEY = "smsops:slack:receipt:{}"
# GETDEL of every message's Slack reply key; ARGV[1] is the key prefix, then the ids.
# Keys are named inside the script (not in KEYS): fine on a single Redis server.
_TAKE_SLACK_REPLIES = """
local out = {}
for i = 2, #ARGV do out[i - 1] = redis.call('GETDEL', ARGV[1] .. ARGV[i]) or false end
return out
"""


def _settings(app: Flask) -> PipelineSettings:
    return PipelineSettings.from_config(app.config)


def _wake(app: Flask, job: str) -> None:
    """A lost wake-up is the sweeper's job: never fail work already done for it."""
    try:
        wake(app.extensions["redis"], job)
    except redis_lib.RedisError as exc:
        log.warning("could not wake %s (%s); the sweeper will", job, exc)


def _clear_wake(app: Flask, job: str) -> None:
    with contextlib.suppress(redis_lib.RedisError):
        app.extensions["redis"].delete(wake_key(job))


def _db_retry(work: Callable[[Session], T], budget_s: float) -> T:
    """Run `work` in a unit of work, retrying while the database is unreachable (a
    restart takes a second or so); gives up after `budget_s` and leaves the rest to
    the sweeper."""
    deadline = time.monotonic() + budget_s
    delay = 0.05
    while True:
        try:
            with runtime.unit_of_work() as session:
                return work(session)
        except DBAPIError as exc:
            if not exc.connection_invalidated and not _is_disconnect(exc):
                raise
            if time.monotonic() + delay > deadline:
                raise
            log.warning("database unreachable (%s); retrying", type(exc.orig).__name__)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def _is_disconnect(exc: DBAPIError) -> bool:
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError)


def drain() -> int:
    """Submit accepted messages a batch at a time until none are left; returns how
    many were claimed. One job serves any number of API requests."""
    app = runtime.app()
    _clear_wake(app, DRAIN_JOB)  # rows committed from now on wake another job
    settings = _settings(app)
    total = 0
    deadline = time.monotonic() + DRAIN_BUDGET_S
    while True:
        claimed = _submit_batch(app, settings, None)
        total += claimed
        if claimed < settings.batch:
            return total
        if time.monotonic() > deadline:
            _wake(app, DRAIN_JOB)  # hand over; keeps the queue fair
            return total
        _wake(app, DRAIN_JOB)  # more waiting: let an idle worker help


def submit(ids: list[int]) -> None:
    """Submit these accepted messages (those still accepted; any others are skipped)."""
    app = runtime.app()
    _submit_batch(app, _settings(app), ids)


def _submit_batch(app: Flask, settings: PipelineSettings, ids: list[int] | None) -> int:
    attempt = pipeline.new_attempt()

    def take(session: Session) -> list[Any]:
        claimed = pipeline.claim(session, attempt, settings, ids)
        return pipeline.outbound(session, claimed, attempt)

    with runtime.unit_of_work() as session:  # committed before anything leaves
        batch = take(session)
    if not batch:
        return 0
    submit_claimed(app, settings, attempt, batch)
    return len(batch)


def submit_claimed(app: Flask, settings: PipelineSettings, attempt: str,
                   batch: list[Outbound]) -> None:
    """Submit a batch already held by `attempt` (its claim committed) and record the
    results. GatewayUnavailable: the batch goes back to accepted, and it is raised."""
    gateway = app.extensions["gateway"]
    try:
        results: list[SubmitResult] = gateway.submit(batch)
    except GatewayUnavailable:
        # Nothing left: back to accepted, to be drained again (RQ retry or sweeper).
        _db_retry(lambda s: pipeline.release(s, attempt, [m.message_id for m in batch]),
                  settings.lease_s)
        observe_link(app, up=False)  # down for over a minute: an alarm (jobs/alarms.py)
        raise
    observe_link(app, up=True)
    _db_retry(lambda s: pipeline.record_submissions(s, attempt, results), settings.lease_s)
    if any(r.receipt is not None for r in results):
        _wake(app, RECEIPTS_JOB)
    if any(r.not_sent for r in results):
        _wake(app, DRAIN_JOB)  # back to accepted (SMPP: never written): send them again
    _tell_slack(app, [r.message_id for r in results if not r.accepted and not r.not_sent])


def apply_receipts() -> int:
    """Apply due receipts from the inbox in batches; POST status callbacks."""
    app = runtime.app()
    _clear_wake(app, RECEIPTS_JOB)
    applied = 0

    def work(session: Session) -> tuple[list[int], list[int], int]:
        changed, taken = pipeline.apply_receipts(session)
        callbacks = sending.apps_with_callbacks(session, changed) if changed else []
        return changed, callbacks, taken

    while True:
        changed, with_callback, taken = _db_retry(work, 30)
        applied += len(changed)
        enqueue_each(app.extensions["redis"], sending.STATUS_CALLBACK_JOB,
                     [(message_id,) for message_id in with_callback])
        _tell_slack(app, changed)
        if taken < pipeline.BATCH:
            return applied


def receipts(items: list[dict[str, Any]]) -> None:
    """Receipts handed over as a job (older producers): into the inbox, then applied."""
    store_receipts(runtime.app(), [Receipt(**i) for i in items])


def store_receipts(app: Flask, found: list[Receipt]) -> None:
    """Gateways and listeners hand receipts over here: durable first, then a wake-up."""
    if not found:
        return
    with app.app_context(), app.extensions["db"].unit_of_work() as session:
        pipeline.add_receipts(session, [(r, r.message_id, 0.0) for r in found])
    _wake(app, RECEIPTS_JOB)


def sweep_once(app: Flask) -> pipeline.SweepReport:
    """One sweeper pass (run every few seconds by each worker, see jobs/worker.py)."""
    with app.app_context(), app.extensions["db"].unit_of_work() as session:
        report = pipeline.sweep(session, app.extensions["gateway"], _settings(app))
    if report.redrive:
        _wake(app, DRAIN_JOB)
    if report.receipts_due:
        _wake(app, RECEIPTS_JOB)
    from jobs.tasks import redrive  # bulk tasks feed this pipeline: a lost feeder restarts

    redrive(app)
    if report.resolved_sent or report.requeued or report.unknown or report.expired:
        log.info("sweeper: %s", asdict(report))
    return report


def _tell_slack(app: Flask, message_ids: list[int]) -> None:
    """Messages sent from `/sms send`: update that reply with the outcome. One round
    trip for the whole batch."""
    if not message_ids:
        return
    conn = app.extensions["redis"]
    try:
        # One command for the batch (a pipeline of a thousand GETDELs costs redis-py
        # more than Redis): the ids go as arguments, the script builds the keys.
        urls = conn.eval(_TAKE_SLACK_REPLIES, 0, SLACK_RECEIPT_KEY.format(""), *message_ids)
        enqueue_each(conn, "jobs.slack.receipt_reply", [
            (url.decode(), message_id) for message_id, url in zip(message_ids, urls, strict=True)
            if url])
    except redis_lib.RedisError as exc:
        log.warning("Slack receipt replies skipped: %s", exc)
