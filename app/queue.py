"""The one port through which the app asks for background work.

Jobs are named by dotted path so `app` never imports `jobs`. Callers enqueue
only after their transaction has committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import redis
from rq import Queue, Retry

# Sends first, then receipts on their own queue (a receipt backlog never delays
# sends), then everything else.
QUEUE_NAMES = ("pipeline", "receipts", "default")
DRAIN_JOB = "jobs.sending.drain"
RECEIPTS_JOB = "jobs.sending.apply_receipts"
# Wake-up jobs: any number of requests asking while one runs or waits share it (the
# job holds its key while it runs and lingers, then releases it and looks once more,
# so rows committed later wake another; see jobs/sending.py `_run`).
COALESCED: dict[str, tuple[str, int]] = {DRAIN_JOB: ("pipeline", 10),
                                         RECEIPTS_JOB: ("receipts", 10)}
# Jobs that talk to the outside world are retried with back-off (seconds).
RETRIES: dict[str, list[int]] = {
    "jobs.notify.deliver": [30, 120, 600],
    "jobs.sending.submit": [5, 30, 120],  # only when the carrier could not be reached
    # The sweeper wakes these again anyway; retries make recovery quicker.
    "jobs.sending.drain": [2, 5, 10],
    "jobs.sending.apply_receipts": [2, 5, 10, 30],
    # Status callbacks: 6 tries over 66 minutes.
    "jobs.callbacks.status": [60, 300, 600, 1200, 1800],
    "jobs.callbacks.reply": [60, 300, 600, 1200, 1800],
}


def enqueue(conn: redis.Redis, job: str, *args: Any, queue: str = "default", **kwargs: Any) -> str:
    if not job.startswith("jobs."):
        raise ValueError(f"job names are dotted paths under jobs/: {job!r}")
    if job in RETRIES:
        kwargs.setdefault("retry", Retry(max=len(RETRIES[job]), interval=RETRIES[job]))
    return Queue(queue, connection=conn).enqueue(job, *args, **kwargs).id


def enqueue_each(conn: redis.Redis, job: str, args_list: list[tuple[Any, ...]],
                 queue: str = "default") -> None:
    """One job per argument tuple, enqueued in one Redis round trip."""
    if not job.startswith("jobs."):
        raise ValueError(f"job names are dotted paths under jobs/: {job!r}")
    if not args_list:
        return
    retry = Retry(max=len(RETRIES[job]), interval=RETRIES[job]) if job in RETRIES else None
    q = Queue(queue, connection=conn)
    q.enqueue_many([Queue.prepare_data(job, args, retry=retry) for args in args_list])


def wake_key(job: str) -> str:
    return f"smsops:wake:{job}"


def wake(conn: redis.Redis, job: str) -> bool:
    """Make sure one `job` (a coalesced wake-up, no arguments) is on its way: one
    SET NX per call, and an enqueue only when no wake-up is pending."""
    queue, ttl = COALESCED[job]
    if not conn.set(wake_key(job), 1, nx=True, ex=ttl):
        return False
    try:
        enqueue(conn, job, queue=queue)
    except BaseException:
        conn.delete(wake_key(job))
        raise
    return True


def queued(conn: redis.Redis, names: tuple[str, ...] = QUEUE_NAMES) -> dict[str, int]:
    """How many jobs wait on each of these queues: one round trip."""
    pipe = conn.pipeline(transaction=False)
    for name in names:
        pipe.llen(f"rq:queue:{name}")
    return dict(zip(names, pipe.execute(), strict=True))


def waiting(conn: redis.Redis, names: tuple[str, ...] = QUEUE_NAMES) -> bool:
    """Whether a job waits on any of these queues. A Redis failure answers False
    (the caller goes on with what it was doing)."""
    try:
        return any(queued(conn, names).values())
    except redis.RedisError:
        return False


def enqueue_deferred(conn: redis.Redis, deferred: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Start the jobs a unit of work asked for, once it has committed."""
    while deferred:
        job, args = deferred.pop(0)
        if job in COALESCED and not args:
            wake(conn, job)
        elif args and isinstance(args[-1], datetime):  # a start time: RQ's scheduler
            Queue("default", connection=conn).enqueue_at(args[-1], job, *args[:-1])
        else:
            enqueue(conn, job, *args)
