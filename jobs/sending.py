"""The pipeline's jobs: drain accepted messages in batches, apply receipts, sweep.

The rules (states, leases, what recovers each fault) are written down at the top of
app/services/pipeline.py; these jobs only move batches through them. Every job here
is a wake-up that may run any number of times: the database says what is left.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any, TypeVar

import redis as redis_lib
from flask import Flask
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.gateways.base import GatewayUnavailable, Outbound, Receipt, SubmitResult
from app.models.sending import SUBMITTING, UNKNOWN
from app.queue import (
    COALESCED,
    DRAIN_JOB,
    RECEIPTS_JOB,
    enqueue,
    enqueue_each,
    queued,
    wake,
    wake_key,
)
from app.services import pipeline, sending, tasks
from app.services.limits import Check, Limiter
from app.services.pipeline import PipelineSettings
from app.supervise import stopping
from jobs import runtime
from jobs.alarms import observe_link

log = logging.getLogger("smsops.sending")
T = TypeVar("T")
DRAIN_BUDGET_S = 60.0  # one drain job's share before it hands over to a new one
SLACK_RECEIPT_KEY = "smsops:slack:receipt:{}"
_HELP_KEY = "jobs.sending.drain:helper"  # a helper drain is queued (see _ask_help)
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


def drain(helper: bool = False) -> int:
    """Submit accepted messages a batch at a time until none are left; returns how
    many were claimed. One job serves any number of API requests; a `helper` is
    another worker asked to share a backlog (it never lingers)."""
    app = runtime.app()
    settings = _settings(app)
    if helper:
        _clear_wake(app, _HELP_KEY)  # the next full batch may ask for one more
    return _run(app, DRAIN_JOB, lambda: _submit_batch(app, settings, None), settings.batch,
                settings.linger_s, _ask_help, holds_key=not helper)


def _run(app: Flask, job: str, step: Callable[[], int], batch: int, linger_s: float,
         on_full: Callable[[Flask], None] | None = None, *, holds_key: bool = True) -> int:
    """Run `step` (one batch; returns how many it took) while there is work.

    The job holds its wake-up key (app/queue.py) while it runs, so requests made
    meanwhile enqueue nothing: the next step takes their rows. A partial batch means
    work is trickling in (one-number API requests, receipts of small batches): the
    job waits `linger_s` and takes what gathered, so a stream of requests travels in
    batches rather than one job each (each RQ job, claim and commit has a fixed
    cost). It stops waiting when work of any kind is queued for the workers, when
    the worker is stopping or after DRAIN_BUDGET_S (both also end a run of full
    batches: a new job takes over), and then ends as before: it
    releases the key and looks once more, so a row committed before the release is
    taken now and one committed after it wakes a new job. A job that does not hold
    the key (a helper) never lingers."""
    total = 0
    deadline = time.monotonic() + DRAIN_BUDGET_S
    try:
        while True:
            taken = step()
            total += taken
            if taken >= batch:
                # Hand over: keeps the queues fair; a stopping worker's job ends after
                # the batch in hand (the rest is for a new job, on another worker).
                if time.monotonic() > deadline or stopping.is_set():
                    if holds_key:
                        _clear_wake(app, job)
                    _wake(app, job)
                    return total
                if on_full is not None:
                    on_full(app)  # more waiting: let an idle worker help
                continue
            if holds_key and taken and linger_s > 0 and time.monotonic() < deadline \
                    and _linger(app, job, linger_s):
                continue
            if not holds_key:
                return total
            _clear_wake(app, job)
            holds_key = False
    except BaseException:
        if holds_key:
            _clear_wake(app, job)  # a retry or the next request wakes a new job
        raise


def _linger(app: Flask, job: str, linger_s: float) -> bool:
    """Wait `linger_s` for more work, keeping the wake-up key (its TTL renewed);
    False, without waiting, when another job waits for this worker or the worker is
    stopping. Receipts woken by the drainer's own batches are applied here rather
    than made way for: with one worker, a drainer that made way for them would never
    linger, and one that ignored them would hold them back while requests flow."""
    if stopping.is_set():
        return False
    conn = app.extensions["redis"]
    try:
        conn.set(wake_key(job), 1, ex=COALESCED[job][1])
        jobs = queued(conn)
    except redis_lib.RedisError:
        return False
    if job == DRAIN_JOB and jobs.pop("receipts"):
        _receipts_batch(app)
    if any(jobs.values()):
        return False
    time.sleep(linger_s)
    return True


def _ask_help(app: Flask) -> None:
    """One helper drain at a time waits in the queue; it clears the key as it starts."""
    conn = app.extensions["redis"]
    try:
        if conn.set(wake_key(_HELP_KEY), 1, nx=True, ex=COALESCED[DRAIN_JOB][1]):
            enqueue(conn, DRAIN_JOB, True, queue=COALESCED[DRAIN_JOB][0])
    except redis_lib.RedisError as exc:
        log.warning("could not ask for a helper drain (%s)", exc)


def submit(ids: list[int]) -> None:
    """Submit these accepted messages (those still accepted; any others are skipped)."""
    app = runtime.app()
    _submit_batch(app, _settings(app), ids)


def _submit_batch(app: Flask, settings: PipelineSettings, ids: list[int] | None) -> int:
    attempt = pipeline.new_attempt()

    def take(session: Session) -> tuple[list[Outbound], list[int], list[int], list[Check]]:
        claimed = pipeline.claim(session, attempt, settings, ids)
        claimed, refused = pipeline.refuse_disabled(session, attempt, claimed)
        return (pipeline.outbound(session, claimed, attempt), refused,
                sending.apps_with_callbacks(session, refused) if refused else [],
                sending.never_billed(session, refused))

    with runtime.unit_of_work() as session:  # committed before anything leaves
        batch, refused, with_callback, units = take(session)
    if refused:  # a final state, as a carrier's refusal
        _give_back(app, units)
        _callbacks(app, with_callback)
        _tell_slack(app, refused)
    if batch:
        submit_claimed(app, settings, attempt, batch)
    return len(batch) + len(refused)


def submit_claimed(app: Flask, settings: PipelineSettings, attempt: str,
                   batch: list[Outbound]) -> None:
    """Submit a batch already held by `attempt` (its claim committed) and record the
    results. GatewayUnavailable: the batch goes back to accepted, and it is raised."""
    gateway = app.extensions["gateway"]
    # Committed before the call: a worker killed before this point sent nothing, and
    # the sweeper, finding no hand-over, sends the batch again (pipeline.fenced).
    if not _db_retry(lambda s: pipeline.hand_over(s, attempt, batch[0].message_id),
                     settings.lease_s):
        log.warning("attempt %s: lease ran out before its call; the sweeper requeued it",
                    attempt)
        return
    try:
        results: list[SubmitResult] = gateway.submit(batch)
    except GatewayUnavailable:
        # Nothing left: back to accepted, to be drained again (RQ retry or sweeper);
        # also rows the sweeper marked `unknown` while the gateway kept trying (a bind
        # that outlasted the lease): the gateway says none of them was sent.
        _db_retry(lambda s: pipeline.release(s, attempt, [m.message_id for m in batch],
                                             (SUBMITTING, UNKNOWN)), settings.lease_s)
        observe_link(app, up=False)  # down for over a minute: an alarm (jobs/alarms.py)
        raise
    observe_link(app, up=True)
    refused = [r.message_id for r in results if not r.accepted and not r.not_sent]
    by_carrier = {r.message_id for r in results if not r.accepted and not r.not_sent
                  and not r.unknown}

    def record(session: Session) -> tuple[list[int], list[Check]]:
        settled: list[int] = []
        pipeline.record_submissions(session, attempt, results, settled)
        # Never billed: credit back now, limit units once this commits.
        units = sending.never_billed(session, [i for i in settled if i in by_carrier])
        # A refusal is a final state: its status callback, as a receipt's.
        return (sending.apps_with_callbacks(session, refused) if refused else []), units

    with_callback, units = _db_retry(record, settings.lease_s)
    _give_back(app, units)
    if any(r.receipt is not None for r in results):
        _wake(app, RECEIPTS_JOB)
    if any(r.not_sent for r in results):
        _wake(app, DRAIN_JOB)  # back to accepted (SMPP: never written): send them again
    _callbacks(app, with_callback)
    _tell_slack(app, refused)


def _give_back(app: Flask, units: list[Check]) -> None:
    """Limit units of messages never billed, after their state committed (a failure
    here keeps them: never too many given back)."""
    if units:
        try:
            Limiter(app.extensions["redis"]).release(units)
        except redis_lib.RedisError as exc:
            log.warning("could not give back %d limit unit(s) (%s)", len(units), exc)


def _callbacks(app: Flask, message_ids: list[int]) -> None:
    """Status callbacks for messages that reached a final state (their jobs retry).
    The state is recorded already: a Redis failure here must not fail the work."""
    if not message_ids:
        return
    try:
        enqueue_each(app.extensions["redis"], sending.STATUS_CALLBACK_JOB,
                     [(message_id,) for message_id in message_ids])
    except redis_lib.RedisError as exc:
        log.warning("could not queue %d status callback(s) (%s)", len(message_ids), exc)


def apply_receipts() -> int:
    """Apply due receipts from the inbox in batches; POST status callbacks. Returns
    how many messages they changed."""
    app = runtime.app()
    applied = 0

    def step() -> int:
        nonlocal applied
        taken, changed = _receipts_batch(app)
        applied += changed
        return taken

    _run(app, RECEIPTS_JOB, step, pipeline.BATCH, _settings(app).linger_s)
    return applied


def _receipts_batch(app: Flask) -> tuple[int, int]:
    """One batch of due receipts: how many inbox rows it took, how many messages
    they changed."""
    slack = bool(app.config.get("SLACK_BOT_TOKEN"))

    def work(session: Session) -> tuple[list[int], list[int], int, dict[int, bool]]:
        changed, taken = pipeline.apply_receipts(session)
        callbacks = sending.apps_with_callbacks(session, changed) if changed else []
        # Bulk tasks whose figures these receipts moved: their progress messages.
        moved = tasks.figures_moved(session, changed) if slack and changed else {}
        return changed, callbacks, taken, moved

    changed, with_callback, taken, moved = _db_retry(work, 30)
    _callbacks(app, with_callback)
    _tell_slack(app, changed)
    if moved:
        from jobs.tasks import slack_progress

        for task_id, final in moved.items():  # at most every SLACK_EVERY_S, but the last
            slack_progress(app, task_id, force=final)
    return taken, len(changed)


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


_NO_GATE = contextlib.nullcontext()  # reusable: it holds nothing


def sweep_once(app: Flask, forks: contextlib.AbstractContextManager[Any] = _NO_GATE
               ) -> pipeline.SweepReport:
    """One sweeper pass (run every few seconds by each worker, see jobs/worker.py).
    `forks`: held around each of its transactions, not its calls to the carrier (the
    worker's fork gate on SQLite, app/supervise.py ForkGate)."""
    gateway = app.extensions["gateway"]
    with forks, app.app_context(), app.extensions["db"].unit_of_work() as session:
        report = pipeline.sweep(session, gateway, _settings(app))
    if getattr(gateway, "asks_again", False):  # carrier calls, outside that transaction

        @contextlib.contextmanager
        def work() -> Iterator[Session]:
            with forks, app.extensions["db"].unit_of_work() as session:
                yield session

        with app.app_context():
            asked = pipeline.ask_carrier(work, gateway, _settings(app))
        report.resolved_sent, report.unknown = asked.resolved_sent, asked.unknown
        report.requeued, report.resolved_unknown = asked.requeued, asked.resolved_unknown
        report.settled += asked.settled
        report.redrive = report.redrive or bool(asked.requeued)
        # Found messages came with their receipts, into the inbox after sweep() looked.
        report.receipts_due = report.receipts_due or bool(
            asked.resolved_sent or asked.resolved_unknown)
    if report.settled:  # final states reached here, as a receipt's or a refusal's
        with forks, app.app_context(), app.extensions["db"].unit_of_work() as session:
            with_callback = sending.apps_with_callbacks(session, report.settled)
        _callbacks(app, with_callback)
        _tell_slack(app, report.settled)
    if report.redrive:
        _wake(app, DRAIN_JOB)
    if report.receipts_due:
        _wake(app, RECEIPTS_JOB)
    from jobs.tasks import redrive  # bulk tasks feed this pipeline: a lost feeder restarts

    with forks:
        redrive(app)
    if (report.resolved_sent or report.requeued or report.unknown or report.expired
            or report.resolved_unknown):
        log.info("sweeper: %s", {k: v for k, v in asdict(report).items() if k != "settled"})
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
