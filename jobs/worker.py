"""Runs an RQ worker (with RQ's scheduler) for this app, and the pipeline's sweeper.

- Non-forking option (`--no-fork` / SMSOPS_WORKER_NO_FORK=1): RQ's SimpleWorker runs
  jobs in this process, so the engine, its pooled connections and SQLAlchemy's
  compiled statements live as long as the process. The default forks a work horse
  per job (isolation at a price: mappers, statements and connections per job).
- Survives outages: RQ's `work()` returns when Redis fails while a job runs; we
  start a new worker object after a short back-off instead of exiting.
- RQ's scheduler lock of a dead worker expires after about a minute; a short
  maintenance interval lets a live worker take it over soon after.
- Stays in RQ's worker registry (`rq:workers`, its hash; what `rq info`, RQ's
  maintenance and a worker count read): RQ registers a worker once, at its birth, so
  after Redis restarted empty the worker went on working unlisted. Every heartbeat
  writes the registration again (idempotent, in the heartbeat's own round trip).
  The worker objects the restart loop makes share one name: one worker to RQ.
- The sweeper is a thread in every worker, not an RQ job, so it keeps running
  when Redis loses every job (see app/services/pipeline.py). Sweeps are safe to
  run concurrently, so no lock is needed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis as redis_lib
import rq.worker.base
from flask import Flask
from rq import SimpleWorker, Worker, worker_registration
from rq.exceptions import StopRequested
from rq.scheduler import RQScheduler
from rq.worker.base import BaseWorker
from sqlalchemy.exc import OperationalError

from app.queue import QUEUE_NAMES
from app.supervise import (
    ForkGate,
    exit_after,
    freeze_heap,
    stop_in_fork,
    stop_within,
    stopping,
)
from jobs import runtime

log = logging.getLogger("smsops.worker")


class _PromptUnsubscribe:
    """RQ (3.0) unsubscribes, then stops its pubsub thread and waits for it; redis-py
    (8.x) waits without a time limit, while the thread, no longer subscribed, sleeps up
    to 60 s waiting for a subscription. Every worker stop (burst or shutdown) could
    hang for a minute. This stops the thread first and wakes it.

    RQ's teardown writes the worker's death before it unsubscribes: with Redis down
    (an outage that ended `work()`) that raised, and the thread lived on, logging
    "could not connect" every 2 s, then subscribed again once Redis was back: one more
    subscription (RQ's commands handled twice) and connection per outage. The thread
    now ends however the teardown ends."""

    pubsub: Any
    pubsub_thread: Any
    pubsub_channel_name: str
    name: str
    log: logging.Logger
    is_horse: bool

    def unsubscribe(self) -> None:
        thread = self.pubsub_thread
        if not thread:
            return
        self.pubsub_thread = None  # once
        self.log.info("Worker %s: unsubscribing from channel %s", self.name,
                      self.pubsub_channel_name)
        thread.stop(timeout=0)  # clears its running flag; no wait here
        with contextlib.suppress(redis_lib.RedisError):  # down: close() ends it too
            self.pubsub.unsubscribe()
        self.pubsub.subscribed_event.set()  # ends a wait for a subscription at once
        thread.join(timeout=1)
        self.pubsub.close()

    def teardown(self) -> None:
        try:
            super().teardown()  # type: ignore[misc]
        finally:
            if not self.is_horse:
                self.unsubscribe()


class _StopWithoutRedis:
    """RQ's warm stop of a busy worker writes its date into Redis from the signal
    handler: with Redis down, that raised wherever the handler ran (inside the job
    with --no-fork; out of the forking worker, whose work-horse then died with it; out
    of the restart loop's back-off). The stop itself is a flag in memory: keep it."""

    log: logging.Logger
    name: str

    def set_shutdown_requested_date(self) -> None:
        try:
            super().set_shutdown_requested_date()  # type: ignore[misc]
        except redis_lib.RedisError as exc:
            self.log.warning("Worker %s: stop not recorded in Redis (%s)", self.name, exc)


class _StayRegistered:
    """RQ writes a worker's registration (its hash, `rq:workers`, `rq:workers:<queue>`)
    at its birth only; its heartbeats just extend the hash's expiry. After Redis
    restarted empty, the heartbeat left a hash of one field and no membership: `rq
    info`, `Worker.all()` and RQ's maintenance saw no worker. Each heartbeat writes the
    whole registration again, in the same pipeline (a standalone heartbeat becomes one
    round trip instead of three), so the worker is listed again, under its one name,
    as soon as Redis answers."""

    connection: redis_lib.Redis
    key: str
    executions_key: str
    name: str
    log: logging.Logger
    _state: str

    if TYPE_CHECKING:  # BaseWorker's, declared for mypy (a body here would replace it)
        def serialize(self) -> dict[str, Any]: ...

    def register_birth(self) -> None:
        # The name is this process's own (see run): a live hash under it is the worker
        # object before an outage, whose death could not be written. RQ would refuse
        # the name ("an active worker named ... already"); finish that death instead.
        self.connection.delete(self.key, self.executions_key)
        super().register_birth()  # type: ignore[misc]

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None:  # a caller's pipeline (a job's start, a horse's monitor)
            super().heartbeat(timeout, pipeline=pipeline)  # type: ignore[misc]
            self._register(pipeline)
            return
        with self.connection.pipeline() as own:
            super().heartbeat(timeout, pipeline=own)  # type: ignore[misc]
            self._register(own)
            fresh = own.execute()[0]  # HSET created the heartbeat field: the hash was gone
        if fresh:
            self.log.warning("Worker %s: its registration was gone from Redis (restarted "
                             "empty?); registered again", self.name)

    def _register(self, pipeline: Any) -> None:
        pipeline.hset(self.key, mapping={**self.serialize(), "state": self._state})
        worker_registration.register(self, pipeline)  # type: ignore[arg-type]


_LOST = (redis_lib.ConnectionError, redis_lib.TimeoutError)


class _OutageInOneLine(logging.Filter):
    """RQ's worker logs a lost Redis as an unhandled error with its traceback ("found
    an unhandled exception, quitting..."), about 50 lines an outage, while the restart
    loop below says the same in one line. The line stays, with the reason instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, _LOST):
            record.msg, record.args = f"{record.getMessage()} ({_brief(exc)})", ()
            record.exc_info = record.exc_text = None
        return True


class _Scheduler(RQScheduler):
    """RQ's scheduler process, ended by a lost Redis, printed its traceback twice (its
    own error line, then multiprocessing's), about 100 lines. One line now; the worker
    starts a scheduler again once Redis answers (its maintenance, or a new worker object
    of the restart loop)."""

    def work(self) -> None:
        try:
            super().work()
        except _LOST as exc:
            self.log.warning("Scheduler [PID %s] ended: no Redis (%s)", os.getpid(),
                             _brief(exc))
            logging.shutdown()
            os._exit(1)  # not a raise: that is what multiprocessing prints


# RQ's worker names its scheduler's class in its module, with no option to change it.
rq.worker.base.RQScheduler = _Scheduler  # type: ignore[misc]
logging.getLogger("rq.worker").addFilter(_OutageInOneLine())


class _SimpleWorker(_StayRegistered, _StopWithoutRedis, _PromptUnsubscribe, SimpleWorker):
    pass


class _ForkingWorker(_StayRegistered, _StopWithoutRedis, _PromptUnsubscribe, Worker):
    pass


def _brief(exc: BaseException) -> str:
    """An error's kind and first line: a driver's own message, without SQLAlchemy's
    statement and parameters (rows' contents) or its multi-line background note."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class Outage:
    """What the operator reads of one dependency's outage: when it began, a reminder
    each minute it lasts, and when it ended (before: a warning every sweep, 12 a minute,
    and nothing when it was over)."""

    REMIND_S = 60.0

    def __init__(self, what: str, retry_s: float) -> None:
        self.what, self.retry_s = what, retry_s
        self.since: float | None = None
        self.began = ""
        self.told = 0.0

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = self.told = now
            self.began = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            log.warning("%s unreachable (%s); retrying every %g s", self.what, _brief(exc),
                        self.retry_s)
        elif now - self.told >= self.REMIND_S:
            self.told = now
            log.warning("%s still unreachable after %.0f s (since %s): %s", self.what,
                        now - self.since, self.began, _brief(exc))

    def ok(self) -> None:
        if self.since is not None:
            log.warning("%s reachable again after %.1f s (unreachable since %s)", self.what,
                        time.monotonic() - self.since, self.began)
            self.since = None


class Sweeper(threading.Thread):
    """SQLite keeps a process's file locks in the process's own memory, and a fork
    copies it: a work horse forked while this thread was inside a transaction held a
    lock that no one in it would release, and its first write waited out SQLite's busy
    timeout (30 s) while the pipeline stalled. On SQLite a fork waits for the sweep's
    transaction in hand (milliseconds; never for its calls to the carrier, which are
    outside them). PostgreSQL's locks are the server's: nothing to wait for."""

    def __init__(self, app: Flask, every_s: float) -> None:
        super().__init__(name="smsops-sweeper", daemon=True)
        self.app, self.every_s = app, every_s
        self.stopped = threading.Event()
        self.redis_outage = Outage("Redis", every_s)
        self.database_outage = Outage("database", every_s)
        self.forks: contextlib.AbstractContextManager[Any] = (
            ForkGate() if app.extensions["db"].engine.dialect.name == "sqlite"
            else contextlib.nullcontext())

    def run(self) -> None:
        from app.services.limits import nonces_began
        from jobs.alarms import ensure_scheduled
        from jobs.retention import keep_scheduled
        from jobs.sending import sweep_once

        while True:
            try:  # a Redis that restarted empty: its nonce record begins now (API)
                nonces_began(self.app.extensions["redis"])
                self.redis_outage.ok()
            except redis_lib.RedisError as exc:
                self.redis_outage.failed(exc)
            except Exception as exc:
                log.warning("nonce record not started: %s", _brief(exc))
            if self.stopped.wait(self.every_s):
                return
            try:
                sweep_once(self.app, self.forks)
                ensure_scheduled(self.app)  # the hourly monitors, on RQ's scheduler
                keep_scheduled()  # the hourly purge (jobs/retention.py)
            except redis_lib.RedisError as exc:  # next time
                self.redis_outage.failed(exc)
            except OperationalError as exc:  # the database is down (or restarting)
                self.database_outage.failed(exc)
            except Exception as exc:
                log.warning("sweep failed: %s", _brief(exc))
            else:
                self.database_outage.ok()
                self.redis_outage.ok()


class _LoopStop:
    """The restart loop's SIGTERM/SIGINT handler, until RQ sets its own (in `work()`,
    once Redis answered). Without one SIGTERM killed the process outright.

    Outside `work()` the loop ends wherever it is (StopRequested). Inside (RQ's start-up,
    before its handlers) it only sets the flag: raised there, StopRequested skipped
    RQ's teardown (a birth and no death: a worker listed by `rq info` for minutes) or
    was dropped by an at-fork hook as RQ forked its scheduler; RQ's loop starts stopped
    instead (app/supervise.py stop_within).

    A process forked before it sets its own handlers inherits this one: RQ's scheduler
    at its start, which RQ's teardown ends with SIGTERM (after an outage ended `work()`,
    say). There the signal ends that process at once, as it would without a handler. It
    must not set `stopping`: that flag is shared with every fork, and the worker, seeing
    it, took the scheduler's stop for its own and exited instead of starting again."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s, self.pid, self.in_work = timeout_s, os.getpid(), False

    def __call__(self, signum: int, frame: Any) -> None:
        if stop_in_fork(self.pid, signum):
            return
        if not stopping.is_set():
            stopping.set()
            exit_after(self.timeout_s)
        if not self.in_work:
            raise StopRequested


def _deregister(current: BaseWorker | None) -> None:
    """A stop that lands while RQ is still starting its worker (just registered) can end
    it without its death written: `rq info` then lists a worker that is gone (found by a
    CI run: SIGTERM a moment after registering again). Written here if RQ did not."""
    if current is None or current.birth_date is None:
        return
    with contextlib.suppress(redis_lib.RedisError):
        if not current.connection.hexists(current.key, "death"):
            current.register_death()
        scheduler = getattr(current, "scheduler", None)
        if scheduler is not None:
            scheduler.release_locks()


def run(app: Flask, *, burst: bool = False, no_fork: bool | None = None) -> bool:
    runtime.use(app)
    if not logging.getLogger().handlers:  # our own lines (sweeper, outages) next to RQ's
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if no_fork is None:
        no_fork = str(app.config.get("WORKER_NO_FORK", "")).lower() in ("1", "true", "yes")
    cls: type[BaseWorker] = _SimpleWorker if no_fork else _ForkingWorker
    maintenance = int(app.config.get("WORKER_MAINTENANCE_S", 15))

    # RQ's own pool: RQ raises its pool's socket timeout to its blocking wait (~7 min).
    # On the app's client, the connections made before kept 5 s (after a Redis restart
    # the idle worker's wait timed out every 5 s and backed off up to 60 s, jobs
    # waiting), and the sweeper's and jobs' commands got the long timeout.
    shared = app.extensions["redis"].connection_pool
    rq_conn = redis_lib.Redis(connection_pool=redis_lib.ConnectionPool(
        connection_class=shared.connection_class, **shared.connection_kwargs))

    # One name for the life of the process: after an outage ended `work()` (whose death
    # record failed with Redis down), the next worker object is the same worker to `rq
    # info`, not a second one beside the first's leftover hash, listed "busy" for minutes.
    name = uuid.uuid4().hex

    def worker() -> BaseWorker:
        made: BaseWorker = cls(list(QUEUE_NAMES), name=name, connection=rq_conn,
                               maintenance_interval=maintenance)
        stop_within(made, float(app.config.get("SHUTDOWN_TIMEOUT", 10)))  # app/supervise.py
        return made

    if burst:
        return worker().work(with_scheduler=True, burst=True, logging_level="INFO")
    from jobs.retention import ensure_scheduled

    stop = _LoopStop(float(app.config.get("SHUTDOWN_TIMEOUT", 10)))
    ensure_scheduled()  # the hourly purge of old records (jobs/retention.py)
    freeze_heap()  # this process lives on: before the jobs (and the work horses' forks)
    sweeper = Sweeper(app, float(app.config.get("SWEEP_INTERVAL_S", 5)))
    sweeper.start()
    delay = 0.5
    lost: float | None = None  # since when the loop's worker objects cannot reach Redis
    told = 0.0
    current: BaseWorker | None = None
    try:
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        while True:
            current = None
            try:
                current = worker()
                stop.in_work = True
                try:
                    current.work(with_scheduler=True, logging_level="INFO")
                finally:
                    stop.in_work = False
                # An idle worker's stop ends work() by StopRequested, which RQ catches:
                # only our flag tells that from an outage (it would start a new worker).
                if current._stop_requested or stopping.is_set():
                    return True
                log.warning("worker stopped (Redis or database outage?); starting again")
            except (redis_lib.RedisError, OSError) as exc:
                if stopping.is_set():  # a stop's teardown that found Redis down
                    return True
                now = time.monotonic()
                if current is not None and current.birth_date is not None:
                    lost = None  # it had started: a new outage, from a short back-off
                    delay = 0.5
                # Once when it begins, then each minute (not every back-off: 12 a minute).
                if lost is None:
                    lost = told = now
                    log.warning("worker lost Redis (%s); retrying in %.1f s", exc, delay)
                elif now - told >= Outage.REMIND_S:
                    told = now
                    log.warning("worker still without Redis after %.0f s (%s); retrying",
                                now - lost, exc)
            if stopping.wait(delay) or (current is not None and current._stop_requested):
                return True  # (a stop ends the back-off at once)
            delay = min(delay * 2, 5.0)
    except (StopRequested, KeyboardInterrupt):
        return True
    finally:
        _deregister(current)
        sweeper.stopped.set()
