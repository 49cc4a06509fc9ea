"""A bulk send task end to end: validation speed and memory, then confirm → every
message submitted → every receipt recorded, on PostgreSQL + a Redis server of our
own, the simulator at zero latency and N `smsops worker` processes.

    .venv/bin/python bench/bulk_task.py --rows 1000000 --workers 2
    .venv/bin/python bench/bulk_task.py --rows 50000 --workers 2 --profile

Stages (each in its own process, so peak memory is that stage's own):
1. validate: `taskfile.validate` over a generated CSV (mainland mobiles, one
   verification code each): rows/s and peak RSS.
2. create: `tasks.create_task` (validation + recipient inserts) into PostgreSQL.
3. confirm → all submitted, → all receipts applied, with the workers running.
Prints a Markdown table row; --profile prints where validation spends its time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from pipeline_e2e import LIFT, PG_ADMIN, _free_port, stop  # noqa: E402 - a sibling script

VALIDATE = """
import cProfile, io, json, pstats, resource, sys, time
from app.sms import taskfile
from app.demo import DEMO_SIGNATURE, DEMO_TEMPLATES  # the template the task uses
t = taskfile.Template(DEMO_TEMPLATES["mainland"][0][2], "verification", "mainland",
                      DEMO_SIGNATURE)
path, profile = sys.argv[1], sys.argv[2] == "1"
prof = cProfile.Profile() if profile else None
start = time.perf_counter()
if prof: prof.enable()
with open(path, "rb") as f:
    rows = valid = 0
    for item in taskfile.validate(f, "list.csv", t):
        rows += 1
        valid += isinstance(item, taskfile.Row)
if prof:
    prof.disable()
    pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(12)
print(json.dumps({"rows": rows, "valid": valid, "seconds": time.perf_counter() - start,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CREATE = """
import json, resource, sys, time
from app import create_app
from app.models import Application, Template
from app.services import tasks
from app.services.accounts import ensure_account, system_actor
from app.services.context import Ctx, Settings
from sqlalchemy import select
path, sid = sys.argv[1], sys.argv[2]
app = create_app()
with app.extensions["db"].unit_of_work() as s:
    ctx = Ctx(s, system_actor(ensure_account(s)), Settings.from_config(app.config))
    tid = s.scalar(select(Template.id).where(Template.region == "mainland",
                                             Template.sms_type == "verification"))
    start = time.perf_counter()
    with open(path, "rb") as f:
        task, summary = tasks.create_task(ctx, tasks.Draft(sid, tid, name="bench"), f, "list.csv")
    created = time.perf_counter() - start
print(json.dumps({"task": task.id, "valid": summary.valid, "seconds": created,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

CONFIRM = """
import sys
from app import create_app
from app.queue import enqueue_deferred
from app.services import tasks
from app.services.accounts import ensure_account, system_actor
from app.services.context import Ctx, Settings
app = create_app()
with app.extensions["db"].unit_of_work() as s:
    ctx = Ctx(s, system_actor(ensure_account(s)), Settings.from_config(app.config))
    tasks.confirm(ctx, int(sys.argv[1]), acknowledged=True)
enqueue_deferred(app.extensions["redis"], ctx.deferred)
"""


def write_csv(path: Path, rows: int) -> None:
    prefixes = ("138", "139", "150", "186", "177")
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("phone,code,minutes\n")
        for i in range(rows):
            f.write(f"{prefixes[i % 5]}{i:08d},{100000 + i % 900000},5\n")


def _count(db_url: str, task_id: int) -> tuple[int, int, int]:
    import psycopg

    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as c:
        row = c.execute(
            "SELECT count(*) FILTER (WHERE status IN ('accepted', 'submitting')), "
            "count(*) FILTER (WHERE status = 'submitted'), count(*) FROM message "
            "WHERE task_id = %s", (task_id,)).fetchone()
        pending = c.execute("SELECT count(*) FROM send_task_recipient WHERE task_id = %s "
                            "AND status = 'pending'", (task_id,)).fetchone()
    assert row is not None and pending is not None
    return int(row[0]) + int(pending[0]), int(row[1]), int(row[2])


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def _backends(db_url: str) -> list[int]:
    """The PostgreSQL server processes serving this database (the workers' pools)."""
    import psycopg

    with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as c:
        return [int(r[0]) for r in c.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()")]


def _report_profiles(paths: list[Path], messages: int, top: int = 25) -> None:
    """The workers' CPU per message (all of their process time, import and idle
    polling included) and where it goes, merged over the workers."""
    import io
    import pstats

    if not paths:
        return
    stats = pstats.Stats(str(paths[0]), stream=io.StringIO())
    for p in paths[1:]:
        stats.add(str(p))
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\nworkers' profiled time: {total:.1f} s, {total * 1000 / max(messages, 1):.3f} "
          f"ms per message\n")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats(order).print_stats(top)
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--cap", type=float, default=1800, help="give up after (s)")
    parser.add_argument("--profile-workers", action="store_true",
                        help="run the workers under cProfile; print their CPU per message "
                             "and top functions")
    parser.add_argument("--tree", default=str(ROOT),
                        help="the checkout to run (another, such as main's, for a ratio)")
    parser.add_argument("--skip-validate", action="store_true",
                        help="skip stage 1 (validation alone)")
    args = parser.parse_args()
    tree = Path(args.tree).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="smsops-bulk-"))
    csv_path = tmp / "list.csv"
    write_csv(csv_path, args.rows)
    py = sys.executable
    if args.skip_validate:
        v = {"rows": args.rows, "seconds": float("nan"), "peak_mb": float("nan")}
    else:
        out = subprocess.run([py, "-c", VALIDATE, str(csv_path), "1" if args.profile else "0"],
                             cwd=tree, check=True, capture_output=True, text=True)
        if args.profile:
            print(out.stderr, file=sys.stderr)
        v = json.loads(out.stdout)
    import psycopg

    name = f"smsops_bulk_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    db_url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    redis_port = _free_port()
    redis_proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port",
                                   str(redis_port), "--bind", "127.0.0.1", "--save", "",
                                   "--appendonly", "no", "--dir", str(tmp)],
                                  stdout=subprocess.DEVNULL)
    env = {**os.environ, "SMSOPS_INSTANCE_DIR": str(tmp), "SMSOPS_DATABASE_URL": db_url,
           "SMSOPS_SECRET_KEY": "bench", "SMSOPS_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
           "SMSOPS_GATEWAY": "simulator", "SMSOPS_SIMULATOR_LATENCY_MS": "0",
           "SMSOPS_SIMULATOR_RECEIPT_DELAY_S": "0", "SMSOPS_WORKER_NO_FORK": "1",
           "PYTHONPATH": str(tree)}
    workers: list[subprocess.Popen[bytes]] = []
    made: dict[str, int] = {"valid": 0}
    try:
        smsops = [py, "-m", "app.cli"]
        time.sleep(0.3)
        seeded = json.loads(subprocess.run([*smsops, "demo", "--json"], env=env, check=True,
                                           capture_output=True, text=True, cwd=tree).stdout)
        subprocess.run([py, "-c", LIFT, seeded["app_id"]], env=env, check=True, cwd=tree)
        made = json.loads(subprocess.run([py, "-c", CREATE, str(csv_path), seeded["app_id"]],
                                         env=env, check=True, capture_output=True, text=True,
                                         cwd=tree).stdout)
        log = (tmp / "workers.log").open("wb")
        profiles = [tmp / f"worker{i}.prof" for i in range(args.workers)]
        for i in range(args.workers):
            cmd = ([py, "-m", "cProfile", "-o", str(profiles[i]), "-m", "app.cli", "worker"]
                   if args.profile_workers else [*smsops, "worker"])
            workers.append(subprocess.Popen(cmd, env=env, cwd=tree, stdout=log, stderr=log))
        time.sleep(3)  # the workers import the app
        start = time.time()
        confirmed = subprocess.run([py, "-c", CONFIRM, str(made["task"])], env=env, cwd=tree,
                                   capture_output=True, text=True)
        if confirmed.returncode:
            sys.exit(f"confirm failed ({made}):\n{confirmed.stderr[-2000:]}")
        submitted_at = None
        while time.time() - start < args.cap:
            left, waiting, _total = _count(db_url, made["task"])
            if left == 0 and submitted_at is None:
                submitted_at = time.time()
            if left == 0 and waiting == 0:
                break
            time.sleep(0.2)
        done_at = time.time()
        cpu = _cpu_seconds([w.pid for w in workers]), _cpu_seconds(_backends(db_url))
        n = made["valid"]
        sub_s = (submitted_at or done_at) - start
        print(f"tree: {'this branch' if tree == ROOT else tree}; load {os.getloadavg()[0]:.1f}")
        print("| rows | validate rows/s | validate peak MB | create (validate + insert) s "
              "| confirm → all submitted msg/s | confirm → all receipts msg/s | workers |")
        print(f"| {v['rows']:,} | {v['rows'] / v['seconds']:,.0f} | {v['peak_mb']:.0f} | "
              f"{made['seconds']:.1f} | {n / sub_s:,.0f} | {n / (done_at - start):,.0f} | "
              f"{args.workers} |", flush=True)
        print(f"CPU per message: workers {cpu[0] * 1000 / n:.3f} ms, their PostgreSQL "
              f"backends {cpu[1] * 1000 / n:.3f} ms (whole lifetime, start-up included)")
    finally:
        stop(workers)
        if args.profile_workers and workers:
            _report_profiles([p for p in profiles if p.exists()], made["valid"])
        redis_proc.kill()
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
