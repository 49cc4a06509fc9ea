"""A real RQ worker (forking, with the scheduler) runs jobs enqueued through the port."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

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
    with pytest.raises(ValueError):
        enqueue(backend.redis, "os.system", "rm -rf /")


@pytest.mark.parametrize("handler", ["restart loop", "RQ's, bounded"])
def test_a_stop_in_a_child_that_kept_the_workers_handler_ends_only_that_child(
        monkeypatch: pytest.MonkeyPatch, backend: Backend, handler: str) -> None:
    """RQ's scheduler process starts with the handler of the process that forked it: the
    restart loop's (at `work()`'s start) or RQ's own, bounded by stop_within (when RQ's
    maintenance starts it again). RQ's teardown stops it with SIGTERM. Either handler set
    `stopping`, a flag shared with every fork: the worker took it for its own stop and
    exited instead of starting again, with a StopRequested traceback from the child."""
    from app import supervise

    shared = supervise._Stopping()
    monkeypatch.setattr(worker, "stopping", shared)
    monkeypatch.setattr(supervise, "stopping", shared)
    if handler == "restart loop":
        stop: object = worker._LoopStop(60)
    else:
        rq_worker = worker._ForkingWorker(["smsops-test-none"], connection=backend.redis)
        supervise.stop_within(rq_worker, 60)
        stop = rq_worker.request_stop
    previous = signal.signal(signal.SIGTERM, stop)  # type: ignore[arg-type]
    try:
        pid = os.fork()
        if pid == 0:  # the child: only os._exit leaves it
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
            finally:
                os._exit(3)
        _, status = os.waitpid(pid, 0)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGTERM, status
    assert not shared.is_set()  # the worker's own loop goes on
