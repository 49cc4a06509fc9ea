"""The one port through which the app asks for background work.

Jobs are named by dotted path so `app` never imports `jobs`. Callers enqueue
only after their transaction has committed.
"""

from __future__ import annotations

from typing import Any

import redis
from rq import Queue, Retry

QUEUE_NAMES = ("default",)
# Jobs that talk to the outside world are retried with back-off (seconds).
RETRIES: dict[str, list[int]] = {
    "jobs.notify.deliver": [30, 120, 600],
    "jobs.sending.submit": [5, 30, 120],  # only when the carrier could not be reached
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


def enqueue_deferred(conn: redis.Redis, deferred: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Start the jobs a unit of work asked for, once it has committed."""
    while deferred:
        job, args = deferred.pop(0)
        enqueue(conn, job, *args)
