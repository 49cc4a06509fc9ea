"""The one port through which the app asks for background work.

Jobs are named by dotted path so `app` never imports `jobs`. Callers enqueue
only after their transaction has committed.
"""

from __future__ import annotations

from typing import Any

import redis
from rq import Queue

QUEUE_NAMES = ("default",)


def enqueue(conn: redis.Redis, job: str, *args: Any, queue: str = "default", **kwargs: Any) -> str:
    if not job.startswith("jobs."):
        raise ValueError(f"job names are dotted paths under jobs/: {job!r}")
    return Queue(queue, connection=conn).enqueue(job, *args, **kwargs).id
