"""The purge of old records, run every hour by RQ's scheduler (one chain: each run
schedules the next; a Redis key keeps a second chain from starting; each worker's
sweeper begins it again when Redis lost it)."""

from __future__ import annotations

import logging
from datetime import timedelta

from rq import Queue

from app.db import utcnow
from app.services import retention
from jobs import runtime

log = logging.getLogger("smsops.retention")
JOB = "jobs.retention.purge"
EVERY = timedelta(hours=1)
CHAIN_KEY = "smsops:retention:next"


def purge(max_batches: int = 500) -> int:
    """Batches until nothing old is left (or `max_batches`: the next run goes on)."""
    app = runtime.app()
    days = int(app.config.get("MESSAGE_RETENTION_DAYS", 60))
    cutoff = utcnow() - timedelta(days=days)
    total = 0
    try:
        # Old messages and replies; the send API's answers kept for retries.
        for step, at in ((retention.purge_batch, cutoff),
                         (retention.purge_send_replies, utcnow())):
            for _n in range(max_batches):
                with runtime.unit_of_work() as session:
                    gone = step(session, at)
                total += gone
                if gone == 0:
                    break
        if total:
            log.info("purged %d old records (messages older than %d days)", total, days)
    finally:
        _schedule_next(force=True)
    return total


def _schedule_next(force: bool = False) -> None:
    conn = runtime.app().extensions["redis"]
    # NX: one chain only; the key outlives the interval, so a lost chain restarts.
    if conn.set(CHAIN_KEY, "1", nx=not force, ex=int(EVERY.total_seconds() * 2)):
        Queue("default", connection=conn).enqueue_in(EVERY, JOB)


def ensure_scheduled() -> None:
    """Called when a worker starts: begins the hourly chain unless one is running."""
    try:
        _schedule_next()
    except Exception as exc:  # Redis down: the sweeper tries again (keep_scheduled)
        log.warning("could not schedule the purge: %s", exc)


def keep_scheduled() -> None:
    """Called by each worker's sweeper every few seconds (one SET NX): begins the chain
    again when Redis lost it (restarted empty, or down when the worker started), which
    before waited for a worker to start. Raises what Redis raises."""
    _schedule_next()
