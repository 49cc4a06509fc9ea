"""The non-forking worker option: jobs run in the worker's own process, so its
engine, pooled connections and compiled statements live as long as it does."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from app import create_app
from app.queue import enqueue
from jobs import worker
from tests.conftest import Backend


def test_no_fork_runs_jobs_in_the_worker_process(backend: Backend, session: object,
                                                 instance_dir: Path) -> None:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(instance_dir), "SECRET_KEY": "x"})
    tokens = [uuid.uuid4().hex for _ in range(2)]
    for token in tokens:
        enqueue(app.extensions["redis"], "jobs.system.ping", token)
    assert worker.run(app, burst=True, no_fork=True)
    pids = {int(app.extensions["redis"].get(f"smsops:ping:{t}")) for t in tokens}
    assert pids == {os.getpid()}  # no work horse per job


def test_a_worker_stops_at_once(backend: Backend, session: object,
                                instance_dir: Path) -> None:
    """RQ unsubscribes before stopping its pubsub thread, and redis-py waits for that
    thread without a limit while it sleeps up to 60 s for a subscription: stops took a
    minute about one time in three (every burst in the tests, every shutdown)."""
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(instance_dir), "SECRET_KEY": "x"})
    slowest = 0.0
    for _ in range(8):
        enqueue(app.extensions["redis"], "jobs.system.ping", uuid.uuid4().hex)
        started = time.monotonic()
        assert worker.run(app, burst=True, no_fork=True)
        slowest = max(slowest, time.monotonic() - started)
    assert slowest < 10
