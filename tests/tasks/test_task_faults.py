"""A bulk task under SIGKILL: real worker processes (`smsops worker --no-fork`), our
own Redis server, the simulator's ledger as the carrier's record. No recipient goes
out twice and none is lost, wherever the kills land (dispatcher, drain, receipts)."""

from __future__ import annotations

import io
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.gateways.simulator import Ledger
from app.models import Application, Message, SendTask, SendTaskRecipient, Template
from app.models.sending import FINAL
from app.queue import enqueue_deferred
from app.services import app_config, tasks
from tests.helpers import root_ctx
from tests.jobs.test_faults import Pipeline, RedisServer, _database, _wait
from tests.jobs.test_faults import redis_server as redis_server
from tests.stats import expected

RECIPIENTS = 600


class TaskPipeline(Pipeline):
    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(SMSOPS_TASK_BATCH="25", SMSOPS_TASK_HEARTBEAT_S="1")
        return env

    def start_task(self, n: int) -> int:
        data = "".join(f"1380013{i:04d},{1000 + i % 9000}\n" for i in range(n)).encode()
        with self.db.sessions() as s:
            ctx = root_ctx(s)
            template = s.scalar(select(Template.id).where(Template.name == "mainland"))
            app = s.get(Application, self.app_id)
            assert app is not None and template is not None
            # The product's default frequency rules, on: a batch dispatched again after
            # a kill before its commit must not be refused by its own reservations.
            app_config.set_frequency(ctx, app.sdk_app_id, {
                "30s": (True, 1), "hour": (True, 5), "day": (True, 10)})
            task, _summary = tasks.create_task(ctx, tasks.Draft(app.sdk_app_id, template),
                                               io.BytesIO(data), "list.csv")
            tasks.confirm(ctx, task.id, acknowledged=True)
            s.commit()
            enqueue_deferred(self.redis, ctx.deferred)
            return task.id

    def task_counts(self, task_id: int) -> tuple[str, int, dict[str, int]]:
        with self.db.sessions() as s:
            status = s.scalar(select(SendTask.status).where(SendTask.id == task_id)) or ""
            pending = s.scalar(select(func.count()).select_from(SendTaskRecipient).where(
                SendTaskRecipient.task_id == task_id)) or 0
            counts = dict(s.execute(select(Message.status, func.count())  # type: ignore[arg-type]
                                    .where(Message.task_id == task_id)
                                    .group_by(Message.status)).all())
        return status, pending, counts


@pytest.fixture
def pipeline(tmp_path: Path, redis_server: RedisServer) -> Iterator[TaskPipeline]:
    gen = _database(tmp_path)
    p = TaskPipeline(tmp_path, next(gen), redis_server)
    yield p
    p.close()
    gen.close()


def test_sigkill_workers_mid_task_sends_each_recipient_exactly_once(
        pipeline: TaskPipeline) -> None:
    rng = random.Random()
    for _ in range(2):
        pipeline.start_worker()
    _wait(lambda: len(pipeline.redis.smembers("rq:workers")) >= 2, 90, "2 workers up")
    task_id = pipeline.start_task(RECIPIENTS)
    kills = 0
    for _round in range(4):
        # Kill once the task is under way: some converted, some not yet.
        _wait(lambda: sum(pipeline.task_counts(task_id)[2].values()) > 0, 60, "dispatch")
        time.sleep(rng.uniform(0.0, 0.3))
        live = pipeline.live_workers()
        victim = rng.choice(live)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        kills += 1
        pipeline.start_worker()

    def done() -> bool:
        status, pending, counts = pipeline.task_counts(task_id)
        return status == "sent" and pending == 0 and all(k in FINAL for k in counts)

    _wait(done, 90, f"task sent: {pipeline.task_counts(task_id)}")
    _status, _pending, counts = pipeline.task_counts(task_id)
    assert sum(counts.values()) == RECIPIENTS  # none lost: one message per recipient
    with pipeline.db.sessions() as s:
        ids = set(s.scalars(select(Message.id).where(Message.task_id == task_id)))
        went = set(s.scalars(select(Message.id).where(
            Message.task_id == task_id, Message.status.in_(("delivered", "no_receipt")))))
    sent = Ledger(str(pipeline.ledger_path)).counts()
    assert {m: n for m, n in sent.items() if n > 1} == {}  # none twice at the carrier
    assert went <= set(sent) <= ids | set(sent)  # what left is in the carrier's record
    assert len([m for m in sent if m in ids]) == len(went) == RECIPIENTS
    assert kills == 4
    with pipeline.db.sessions() as s:  # the task's figures moved with every message
        assert expected.figures(s) == expected.figures_direct(s)
        assert expected.figures(s)[(task_id, "accepted", "")] == 0


def test_a_stop_ends_the_dispatcher_after_its_batch(pipeline: TaskPipeline) -> None:
    """The dispatcher looked at the stop nowhere: it went on for RUN_BUDGET_S (30 s),
    so a stop ran into the forced deadline (exit status 1) and cut a batch. It hands
    over after the batch in hand, and the next worker finishes the task."""
    # No receipts: nothing urgent queued, so the dispatcher never makes way for it.
    worker = pipeline.start_worker(SMSOPS_SIMULATOR_LATENCY_MS="200", SMSOPS_LEASE_S="10",
                                   SMSOPS_SIMULATOR_NO_RECEIPT_RATE="1",
                                   SMSOPS_TASK_LANES="1", SMSOPS_SHUTDOWN_TIMEOUT="8")
    _wait(lambda: len(pipeline.redis.smembers("rq:workers")) >= 1, 90, "the worker up")
    task_id = pipeline.start_task(1500)  # 60 batches of 25, 0.2 s each: 12 s
    _wait(lambda: sum(pipeline.task_counts(task_id)[2].values()) >= 50, 60, "dispatch")
    stopped = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    log = pipeline.tmp / "worker-0.log"
    assert worker.wait(timeout=15) == 0, log.read_text(errors="replace")[-3000:]
    took = time.monotonic() - stopped
    assert "Still stopping" not in log.read_text(errors="replace")
    assert took < 5, took
    assert pipeline.task_counts(task_id)[1] > 0  # recipients left for the next worker
    pipeline.start_worker()

    def done() -> bool:
        status, pending, counts = pipeline.task_counts(task_id)
        return status == "sent" and pending == 0 and all(k in FINAL for k in counts)

    _wait(done, 90, f"task sent: {pipeline.task_counts(task_id)}")
    assert sum(pipeline.task_counts(task_id)[2].values()) == 1500
    sent = Ledger(str(pipeline.ledger_path)).counts()
    assert {m: n for m, n in sent.items() if n > 1} == {}
