"""The drainer's linger (jobs/sending.py `_run`): one-number requests that arrive
while a drain job runs travel with it in batches, without a job each, and nothing
committed around its end is left without a job.

The linger's wait is the only thing replaced here: `time.sleep` in jobs/sending.py
becomes a function that does what the test needs "meanwhile" (a request commits a
message, a job is queued), so the test controls the order without waiting.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from rq import Queue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import supervise
from app.models import Message
from app.queue import DRAIN_JOB, wake
from jobs import sending as sending_job
from tests.conftest import Backend
from tests.sending.conftest import Shop


@pytest.fixture(autouse=True)
def _linger_50_ms(runner: Flask) -> None:
    runner.config["DRAIN_LINGER_MS"] = 50  # the waits below are 0.05 s


def _send(shop: Shop, session: Session, number: str) -> None:
    """What the API does for one number: commit an accepted message, then wake."""
    shop.send([number])
    session.commit()
    shop.ctx.deferred.clear()


def _meanwhile(monkeypatch: pytest.MonkeyPatch, *acts: Callable[[], None]) -> list[float]:
    """Each linger runs the next act instead of sleeping; returns the waits asked."""
    waits: list[float] = []
    pending = list(acts)

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if pending:
            pending.pop(0)()

    monkeypatch.setattr(sending_job.time, "sleep", sleep)
    return waits


def _submitted(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Message).where(
        Message.status != "accepted")) or 0


def test_requests_made_while_the_drainer_lingers_go_with_it_and_wake_nothing(
    shop: Shop, session: Session, runner: Flask, backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    woke: list[bool] = []

    def request(number: str) -> Callable[[], None]:
        def act() -> None:
            _send(shop, session, number)
            woke.append(wake(backend.redis, DRAIN_JOB))  # as the API does after its commit
        return act

    _send(shop, session, "+14155550101")
    assert wake(backend.redis, DRAIN_JOB)  # the job this drain stands for
    Queue("pipeline", connection=backend.redis).empty()
    waits = _meanwhile(monkeypatch, request("+14155550102"), request("+14155550103"))
    assert sending_job.drain() == 3  # one job took all three
    assert woke == [False, False]  # the running drainer held the wake-up: no job each
    assert Queue("pipeline", connection=backend.redis).count == 0
    assert waits == [0.05, 0.05, 0.05]  # lingered after each partial batch, then found none
    assert _submitted(session) == 3
    # Released at its end: the next request wakes a new job.
    assert wake(backend.redis, DRAIN_JOB)


def test_a_message_committed_as_the_drainer_lets_go_is_taken_by_its_last_look(
    shop: Shop, session: Session, runner: Flask, backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The request commits, then finds the wake-up still held (no job); the drainer
    then releases it: its one more look must find that message."""
    _send(shop, session, "+14155550101")
    released = sending_job._clear_wake

    def release_late(app: Flask, job: str) -> None:
        _send(shop, session, "+14155550102")
        assert not wake(backend.redis, DRAIN_JOB)  # still held: this request wakes nothing
        released(app, job)

    monkeypatch.setattr(sending_job, "_clear_wake", release_late)
    _meanwhile(monkeypatch)
    assert sending_job.drain() == 2
    assert _submitted(session) == 2


def test_the_drainer_makes_way_when_other_work_waits(
    shop: Shop, session: Session, runner: Flask, backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _send(shop, session, "+14155550101")
    Queue("default", connection=backend.redis).enqueue("jobs.notify.deliver", 1)
    waits = _meanwhile(monkeypatch)
    assert sending_job.drain() == 1
    assert waits == []  # no linger while another job waits for this worker


def test_the_drainer_applies_the_receipts_its_batches_woke(
    shop: Shop, session: Session, runner: Flask, backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One worker: the receipts job its batch woke waits behind the drainer, which
    applies those receipts itself while it lingers."""
    _send(shop, session, "+14155550101")  # the simulator delivers it at once
    waits = _meanwhile(monkeypatch)
    assert sending_job.drain() == 1
    assert Queue("receipts", connection=backend.redis).count == 1  # woken, not yet run
    assert waits == [0.05]
    session.expire_all()
    assert session.scalar(select(Message.status)) == "delivered"


def test_a_stopping_worker_does_not_linger(
    shop: Shop, session: Session, runner: Flask, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _send(shop, session, "+14155550101")
    monkeypatch.setattr(supervise, "stopping", supervise.threading.Event())
    monkeypatch.setattr(sending_job, "stopping", supervise.stopping)
    supervise.stopping.set()
    waits = _meanwhile(monkeypatch)
    assert sending_job.drain() == 1
    assert waits == []


def test_a_full_batch_asks_one_helper_and_a_helper_never_lingers(
    shop: Shop, session: Session, runner: Flask, backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner.config["DRAIN_BATCH"] = 2
    for n in range(5):
        _send(shop, session, f"+1415555010{n}")
    waits = _meanwhile(monkeypatch)
    assert sending_job.drain() == 5  # 2 + 2 + 1
    pipeline_q = Queue("pipeline", connection=backend.redis)
    assert [j.args for j in pipeline_q.jobs] == [(True,)]  # one helper asked, not two
    assert waits == []  # the queued helper is work waiting: no linger
    pipeline_q.empty()
    _send(shop, session, "+14155550109")
    assert sending_job.drain(helper=True) == 1
    assert waits == []  # a helper takes its partial batch and ends
