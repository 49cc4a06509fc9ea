"""Long-running processes take their start-up heap out of the cyclic collector's full
passes (app.supervise.freeze_heap): the web app as the server imports it, and a
worker that is not a burst (bench/README.md round 8 measured what it saves)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT_DIR = Path(__file__).resolve().parents[1]

# The worker is stopped the way a supervisor stops it, once its heap is frozen (or after
# a deadline, when the assertion below fails).
WORKER = """
import gc, os, signal, threading, time
from app import create_app
from jobs import worker

app = create_app()
before = gc.get_freeze_count()

def watch():
    deadline = time.monotonic() + 30
    while gc.get_freeze_count() == before and time.monotonic() < deadline:
        time.sleep(0.02)
    print("frozen", before, gc.get_freeze_count(), flush=True)
    os.kill(os.getpid(), signal.SIGTERM)

threading.Thread(target=watch, daemon=True).start()
worker.run(app, no_fork=True)
"""


def _run(code: str, instance: Path, redis_url: str) -> list[int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSOPS_")}
    env.update(SMSOPS_INSTANCE_DIR=str(instance), SMSOPS_REDIS_URL=redis_url,
               SMSOPS_SHUTDOWN_TIMEOUT="3", PYTHONPATH=str(ROOT_DIR))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT_DIR,
                         capture_output=True, text=True, timeout=90)
    line = next((x for x in out.stdout.splitlines() if x.startswith("frozen ")), None)
    assert line is not None, out.stderr[-2000:]
    return [int(x) for x in line.split()[1:]]


def test_the_wsgi_app_is_frozen_once_built(instance_dir: Path, embedded_redis_url: str) -> None:
    before, after = _run("import gc; before = gc.get_freeze_count(); import wsgi; "
                         "print('frozen', before, gc.get_freeze_count())",
                         instance_dir, embedded_redis_url)
    assert before == 0
    assert after > 50_000  # the app, its mappers and every module it imported


def test_a_worker_freezes_its_heap_before_its_jobs(instance_dir: Path,
                                                   embedded_redis_url: str) -> None:
    before, after = _run(WORKER, instance_dir, embedded_redis_url)
    assert before == 0
    assert after > 50_000
