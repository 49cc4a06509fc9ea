"""A real RQ worker (forking, with the scheduler) runs jobs enqueued through the port."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from app import create_app
from app.queue import enqueue
from jobs import worker
from tests.conftest import Backend


def test_worker_runs_an_enqueued_job(backend: Backend, session: object,
                                     instance_dir: Path) -> None:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(instance_dir), "SECRET_KEY": "x"})
    token = uuid.uuid4().hex
    enqueue(app.extensions["redis"], "jobs.system.ping", token)
    assert worker.run(app, burst=True)
    pid = app.extensions["redis"].get(f"smsops:ping:{token}")
    assert pid is not None and int(pid) != os.getpid()  # ran in a forked work horse


def test_enqueue_only_accepts_job_paths(backend: Backend) -> None:
    import pytest

    with pytest.raises(ValueError):
        enqueue(backend.redis, "os.system", "rm -rf /")
