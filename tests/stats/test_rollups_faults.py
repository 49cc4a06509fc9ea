"""Rollups stay exact when workers are SIGKILLed mid-batch (real worker processes,
the test's own Redis, PostgreSQL where one answers, SQLite otherwise)."""

from __future__ import annotations

import contextlib
import random
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import insert

from app.db import utcnow
from app.models import Message
from app.models.sending import ACCEPTED
from app.queue import DRAIN_JOB, wake
from app.services import rollups
from tests.jobs.test_faults import NUMBERS, Pipeline, RedisServer, _database, _wait
from tests.stats.expected import direct, direct_narrow, rolled, rolled_narrow

DEADLINE_S = 90.0


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pipeline(tmp_path: Path, redis_server: RedisServer) -> Iterator[Pipeline]:
    gen = _database(tmp_path)
    p = Pipeline(tmp_path, next(gen), redis_server)
    yield p
    p.close()
    gen.close()


def _accept(p: Pipeline, n: int) -> None:
    """As the API writes them: the rows and their counts in one transaction."""
    now = utcnow()
    rows = [{"account_id": p.account_id, "app_id": p.app_id, "serial_no": uuid.uuid4().hex,
             "request_id": "r", "region": "international",
             "phone_number": random.choice(NUMBERS), "iso_code": "US",
             "content": "[Shop] Your code is 1", "encoding": "GSM", "fee": 1,
             "status": ACCEPTED, "created_at": now, "sms_type": "verification"}
            for _ in range(n)]
    with p.db.unit_of_work() as s:
        s.execute(insert(Message), rows)
        rollups.count_new(s, rows)
    with contextlib.suppress(redis.RedisError):
        wake(p.redis, DRAIN_JOB)


def test_rollups_equal_the_messages_after_sigkills_mid_batch(pipeline: Pipeline) -> None:
    rng = random.Random()
    born: dict[int, float] = {}

    def start() -> None:
        born[pipeline.start_worker().pid] = time.monotonic()

    for _ in range(2):
        start()
    _wait(lambda: len(pipeline.redis.smembers("rq:workers")) >= 2, 90, "2 workers up")
    total = 0
    for _trial in range(5):
        _accept(pipeline, 60)
        total += 60
        _wait(lambda: pipeline.claimed() or not pipeline.counts().get("accepted"), 30,
              "work started")
        time.sleep(rng.uniform(0.0, 0.08))
        ready = [w for w in pipeline.live_workers() if time.monotonic() - born[w.pid] > 2.5]
        victim = rng.choice(ready or pipeline.live_workers())
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        start()
    _accept(pipeline, 300)  # every worker killed at once, inside a batch
    total += 300
    _wait(pipeline.claimed, 30, "a batch claimed")
    for w in pipeline.live_workers():
        w.send_signal(signal.SIGKILL)
        w.wait()
    start()
    # Settled: every message final (receipts applied, no_receipt swept), then compare.
    _wait(pipeline.settled, DEADLINE_S, f"every message final: {pipeline.counts()}")
    with pipeline.db.sessions() as s:
        expected = direct(s)
        assert sum(v for k, v in expected.items() if k[-1] == "count") == total
        got = rolled(s)
        assert rolled(s, daily=True) == direct(s, daily=True)
        assert rolled_narrow(s) == direct_narrow(s)
    assert got == expected
    outcomes = {k[8] for k in got}
    assert {"delivered", "refused", "failed", "no_receipt"} <= outcomes  # the whole mix
