"""Group commit for the send API: many requests, one transaction.

Why: a single-number request used to pay for a transaction of its own (a pool
checkout and ping, BEGIN, the mute/unsubscribe query, the INSERT, the rollup
upserts, COMMIT and its WAL flush), which held a process to a few hundred requests
a second. Now each request checks on its own thread what needs no database
(`sending.prepare`: numbers, parameters, text, the limits reserved in Redis) and
hands the result to this process's writer thread. The writer takes everything that
is waiting, settles it in one transaction (`sending.settle`: one mute/unsubscribe
query, credit, alarms, one INSERT, one rollup upsert), commits once and wakes the
drainer once. While it commits, the next requests queue up, so the batches grow
with the load and no request waits for a timer.

A request still answers only after its own rows committed, with the results those
rows hold. Faults:
- The batch's transaction fails: each request of it is tried again alone, so one
  request that cannot be written never fails the others.
- A request fails alone: nothing of it was written; its reservations are given
  back and it answers 503 (retrying is safe). One with an Idempotency-Key is settled
  once more first: another process may have stored that key's answer meanwhile (the
  unique key refused this one), and it is then answered from that.
- COMMIT itself fails (the connection dropped while committing): whether it
  happened is unknown, so the writer looks for the batch's rows before deciding;
  a request is never told "not sent" about rows that committed. If the database
  cannot be asked within a few seconds either, the requests answer 503 with their
  serial numbers, to be looked up later, and keep their reservations (the rows
  may exist).
- The process dies: requests waiting on it lose their connection and were not
  answered; rows that committed are drained as usual (the sweeper).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass, field

import redis as redis_lib
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from app.db import Database
from app.models import Message
from app.queue import enqueue_deferred
from app.services import sending
from app.services.context import Ctx, Settings
from app.services.limits import Limiter

log = logging.getLogger("smsops.api")

MAX_MESSAGES = 2000  # rows per transaction: a 200-number request fills a tenth
WRITTEN, FAILED, UNKNOWN = "written", "failed", "unknown"


@dataclass
class _Waiting:
    prepared: sending.Prepared
    done: threading.Event = field(default_factory=threading.Event)
    outcome: str = FAILED


class GroupCommit:
    """One writer thread per process (started on first use, so after a fork)."""

    def __init__(self, db: Database, conn: redis_lib.Redis, settings: Settings,
                 limiter: Limiter, gateway: object | None = None) -> None:
        self.db, self.conn, self.settings, self.limiter = db, conn, settings, limiter
        self.gateway = gateway
        self._queue: queue.SimpleQueue[_Waiting] = queue.SimpleQueue()
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._pending = 0  # requests in the transaction being written (for tests)

    def write(self, prepared: sending.Prepared) -> str:
        """Settle and commit `prepared` with whatever else is waiting; returns WRITTEN
        (its rows committed, `prepared.results` filled), FAILED (nothing written,
        reservations given back) or UNKNOWN (the commit's fate could not be learned)."""
        self._ensure_writer()
        waiting = _Waiting(prepared)
        self._queue.put(waiting)
        waiting.done.wait()
        return waiting.outcome

    def _ensure_writer(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid != os.getpid():
                threading.Thread(target=self._run, name="smsops-group-commit",
                                 daemon=True).start()
                self._pid = os.getpid()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            size = len(batch[0].prepared.messages)
            while size < MAX_MESSAGES:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                batch.append(more)
                size += len(more.prepared.messages)
            self._pending = len(batch)
            try:
                self._write(batch)
            except BaseException:  # never leave a request waiting
                log.exception("group commit: unexpected failure")
                for w in batch:
                    if not w.done.is_set():
                        self._fail(w)
            self._pending = 0

    def _write(self, batch: list[_Waiting], again: bool = False) -> None:
        outcome, deferred = self._transaction(batch)
        if outcome == FAILED and len(batch) > 1:
            for w in batch:  # find the one that cannot be written; the others can
                self._write([w])
            return
        if outcome == FAILED and not again and batch[0].prepared.idempotency is not None:
            # Another process may have written this key's answer meanwhile (its unique
            # key refused this INSERT): settled again, the request is answered from it.
            self._write(batch, again=True)
            return
        if outcome == WRITTEN and deferred:  # before answering: the drainer is on its way
            try:
                enqueue_deferred(self.conn, deferred)
            except RedisError as exc:  # committed: the sweeper re-drives these rows
                log.warning("group commit: wake-up not enqueued (%s)", exc)
        if outcome == WRITTEN:  # answered from an Idempotency-Key's stored reply
            for w in batch:
                if w.prepared.replayed is not None:
                    self._give_back(w)
        for w in batch:
            w.outcome = outcome
            if outcome == FAILED:
                self._fail(w)
            else:
                w.done.set()

    def _fail(self, w: _Waiting) -> None:
        w.outcome = FAILED
        self._give_back(w)
        w.done.set()

    def _give_back(self, w: _Waiting) -> None:
        try:
            w.prepared.give_back(self.limiter)
        except RedisError as exc:
            log.warning("group commit: reservations not given back (%s)", exc)

    def _transaction(self, batch: list[_Waiting]) -> tuple[str, list[tuple[str, tuple]]]:
        session = self.db.sessions()
        ctx = Ctx(session, batch[0].prepared.actor, self.settings,
                  gateway=self.gateway)  # type: ignore[arg-type]
        try:
            try:
                sending.settle(ctx, self.limiter, [w.prepared for w in batch])
                session.flush()
            except (SQLAlchemyError, RedisError) as exc:
                log.warning("group commit of %d request(s) failed: %s", len(batch), exc)
                session.rollback()
                for w in batch:
                    w.prepared.results.clear()
                    w.prepared.replayed = None
                return FAILED, []
            try:
                session.commit()
            except DBAPIError as exc:
                log.warning("group commit: COMMIT failed (%s); checking what was written", exc)
                return self._committed(batch), ctx.deferred
            return WRITTEN, ctx.deferred
        finally:
            session.close()

    def _committed(self, batch: list[_Waiting], budget_s: float = 10.0) -> str:
        """After a failed COMMIT: WRITTEN if the batch's rows are there, FAILED if not,
        UNKNOWN if the database cannot be asked within `budget_s`."""
        written = [w.prepared for w in batch if w.prepared.replayed is None]
        if not written:  # every request answered from a stored reply: nothing to find
            return WRITTEN
        serial = written[0].messages[0].serial_no
        deadline = time.monotonic() + budget_s
        while True:
            try:
                with self.db.sessions() as s:
                    found = s.scalar(select(Message.id).where(Message.serial_no == serial))
                if found is None:
                    for w in batch:
                        w.prepared.results.clear()
                        w.prepared.replayed = None
                return WRITTEN if found is not None else FAILED
            except SQLAlchemyError:
                if time.monotonic() > deadline:
                    return UNKNOWN
                time.sleep(0.1)

