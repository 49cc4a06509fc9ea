"""A bulk send task end to end: validation speed and memory, then confirm → every
message submitted → every receipt recorded, on PostgreSQL + a Redis server of our
own, the simulator at zero latency and N `smsops worker` processes.

    .venv/bin/python bench/bulk_task.py --rows 1000000 --workers 2
    .venv/bin/python bench/bulk_task.py --rows 50000 --workers 2 --profile
    .venv/bin/python bench/bulk_task.py --rows 1000000 --validate-only --xlsx \
        --base /tmp/validate-base --repeat 3      # validation, this tree vs another

Stages (each in its own process, so peak memory is that stage's own):
1. validate: `taskfile.validate` over a generated CSV (mainland mobiles, one
   verification code each; `--xlsx`: the same rows as a workbook): rows/s, CPU
   seconds and peak RSS of a process that imports only the file rules. `--base TREE`
   runs the same on another checkout (PYTHONPATH=TREE), alternating, `--repeat` times.
2. create: `tasks.create_task` (validation + recipient inserts) into PostgreSQL
   (`--create-only --base TREE`: on both trees, alternating, into the same database).
3. confirm → all submitted, → all receipts applied, with the workers running.
Prints Markdown table rows; --profile prints where validation spends its time.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from pipeline_e2e import LIFT, PG_ADMIN, _free_port, stop  # noqa: E402 - a sibling script

VALIDATE = """
import cProfile, json, pstats, resource, sys, time
# Peak RSS of this process since it started: VmHWM, not ru_maxrss, which a child
# inherits from its parent's size at fork (the parent here imports the whole app).
def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024
from app.sms import taskfile  # the file rules alone: the process's RSS is theirs
path, profile, spec = sys.argv[1], sys.argv[2] == "1", json.loads(sys.argv[3])
t = taskfile.Template(spec["content"], "verification", "mainland", spec["signature"])
prof = cProfile.Profile() if profile else None
start, cpu = time.perf_counter(), time.process_time()
if prof: prof.enable()
rows = valid = billed = 0
with open(path, "rb") as f:
    if hasattr(taskfile, "scan"):  # batches, as the services read them
        for batch in taskfile.scan(f, path, t):
            rows, valid, billed = rows + batch.rows, valid + batch.valid, billed + batch.billed
    else:  # a tree from before batches
        for item in taskfile.validate(f, path, t):
            rows += 1
            if isinstance(item, taskfile.Row):
                valid, billed = valid + 1, billed + item.fee
if prof:
    prof.disable()
    pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(14)
print(json.dumps({"rows": rows, "valid": valid, "billed": billed,
                  "seconds": time.perf_counter() - start, "cpu": time.process_time() - cpu,
                  "peak_mb": peak_mb(),
                  # a reader's child process (XLSX: python-calamine), if one ran: its own
                  # peak (ru_maxrss, an upper bound) and CPU
                  "child_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                  "child_cpu": sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])}))
"""

CREATE = """
import json, sys, time
# Peak RSS of this process since it started: VmHWM, not ru_maxrss, which a child
# inherits from its parent's size at fork (the parent here imports the whole app).
def peak_mb():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmHWM")) / 1024
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
    start, cpu = time.perf_counter(), time.process_time()
    with open(path, "rb") as f:
        task, summary = tasks.create_task(ctx, tasks.Draft(sid, tid, name="bench"), f, "list.csv")
    created, created_cpu = time.perf_counter() - start, time.process_time() - cpu
preflight = float("nan")
if hasattr(tasks, "preflight"):  # what the confirm page computes on every view
    from app.services.limits import Limiter
    with app.extensions["db"].unit_of_work() as s:
        ctx = Ctx(s, system_actor(ensure_account(s)), Settings.from_config(app.config))
        start = time.perf_counter()
        tasks.preflight(ctx, Limiter(app.extensions["redis"]), task.id)
        preflight = time.perf_counter() - start
print(json.dumps({"task": task.id, "valid": summary.valid, "seconds": created,
                  "cpu": created_cpu, "preflight": preflight,
                  "peak_mb": peak_mb()}))
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


def write_xlsx(csv_path: Path, path: Path, numbers: bool = True) -> None:
    """The same rows as a workbook, numbers stored as numbers (as Excel keeps them; with
    `numbers` False as text, shared strings, as a phone column formatted as text), with
    the <dimension> Excel writes first in a sheet (openpyxl's write-only mode leaves it
    out, and without it openpyxl's reader parses the whole sheet once more to find it)."""
    import csv
    import zipfile

    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    rows = 0
    with csv_path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        for row in reader:
            sheet.append([int(c) if numbers and c.isdigit() else c for c in row])
            rows += 1
    plain = path.with_suffix(".plain.xlsx")
    book.save(plain)
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in src.infolist():
            with src.open(info) as part, out.open(info.filename, "w") as into:
                head = part.read(1 << 16)
                if info.filename == "xl/worksheets/sheet1.xml":
                    head = head.replace(b"</sheetPr>", f'</sheetPr><dimension ref="A1:C{rows}"/>'
                                        .encode(), 1)
                into.write(head)
                while chunk := part.read(1 << 20):
                    into.write(chunk)
    plain.unlink()


def validate(path: Path, tree: Path, profile: bool = False) -> dict[str, float]:
    """Stage 1 in a process of its own, with `tree` first on the import path."""
    from app.demo import DEMO_SIGNATURE, DEMO_TEMPLATES

    spec = {"content": DEMO_TEMPLATES["mainland"][0][2], "signature": DEMO_SIGNATURE}
    out = subprocess.run([sys.executable, "-c", VALIDATE, str(path), "1" if profile else "0",
                          json.dumps(spec)], cwd=tree, check=True, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(tree)})
    if profile:
        print(out.stderr, file=sys.stderr)
    return dict(json.loads(out.stdout))


def validation_table(paths: list[Path], trees: list[Path], repeat: int) -> dict[str, float]:
    """Alternated runs of each file on each tree; prints every run and the medians.
    Returns this tree's first CSV result."""
    import statistics

    print(f"load average {os.getloadavg()[0]:.1f} at start")
    print("| tree | file | rows | valid | billed items | s | rows/s | CPU s | peak MB "
          "| child CPU s | child peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(repeat):
        for path in paths:
            for tree in trees:
                v = validate(path, tree)
                runs.setdefault((tree.name, path.name), []).append(v)
                print(f"| {tree.name} | {path.name} | {v['rows']:,.0f} | {v['valid']:,.0f} "
                      f"| {v['billed']:,.0f} | {v['seconds']:.2f} | "
                      f"{v['rows'] / v['seconds']:,.0f} | {v['cpu']:.2f} | {v['peak_mb']:.0f} "
                      f"| {v.get('child_cpu', 0):.2f} | {v.get('child_mb', 0):.0f} |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at end; medians:")
    for (name, file), vs in runs.items():
        med = {k: statistics.median(v.get(k, 0) for v in vs)
               for k in ("seconds", "cpu", "peak_mb", "child_cpu", "child_mb")}
        print(f"| {name} | {file} | {vs[0]['rows']:,.0f} | median of {len(vs)} | | "
              f"{med['seconds']:.2f} | {vs[0]['rows'] / med['seconds']:,.0f} | "
              f"{med['cpu']:.2f} | {med['peak_mb']:.0f} | {med['child_cpu']:.2f} "
              f"| {med['child_mb']:.0f} |")
    return runs[(trees[-1].name, paths[0].name)][0]


class _Probe:
    """(recipients not yet sent, messages waiting for a receipt), on one connection.
    The probe must not load what it measures (a count over all the task's messages,
    on a new connection every poll, was 111 of 305 samples of busy backends at 300,000
    recipients, bench/README.md round 8; a count of a tree's pending recipients by its
    (task, status) index walked the entries of every row already dispatched, 17 ms a
    poll at 200,000, 13% of PostgreSQL's statement time, round 14). Batches take the
    lowest rows first, so it looks for one at or past the lowest it saw last, and
    counts them all only when that finds none."""

    def __init__(self, c: Any, task_id: int) -> None:
        self.c, self.task_id, self.low = c, task_id, 0
        # Trees before migration 0029 keep dispatched recipients, marked.
        marked = c.execute("SELECT 1 FROM information_schema.columns WHERE table_name = "
                           "'send_task_recipient' AND column_name = 'status'").fetchone()
        self.pending = "task_id = %s" + (" AND status = 'pending'" if marked else "")

    def _one(self, sql: str, *args: Any) -> Any:
        row = self.c.execute(sql, (self.task_id, *args)).fetchone()
        return row[0] if row else None

    def counts(self) -> tuple[int, int]:
        low = self._one(f"SELECT row_no FROM send_task_recipient WHERE {self.pending} "
                        "AND row_no >= %s ORDER BY row_no LIMIT 1", self.low)
        if low is not None:
            self.low, pending = low, 1
        else:  # exact, once the bound finds none (a rolled-back batch puts rows back)
            pending = int(self._one(f"SELECT count(*) FROM send_task_recipient "
                                    f"WHERE {self.pending}"))
        return (pending + int(self._one("SELECT count(*) FROM message WHERE task_id = %s "
                                        "AND status IN ('accepted', 'submitting')")),
                int(self._one("SELECT count(*) FROM message WHERE task_id = %s "
                              "AND status = 'submitted'")))


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
    parser.add_argument("--validate-only", action="store_true", help="stage 1 only")
    parser.add_argument("--create-only", action="store_true",
                        help="stages 1 and 2 only (with --base: stage 2 on both trees too)")
    parser.add_argument("--xlsx", action="store_true", help="validate an XLSX too")
    parser.add_argument("--base", type=Path, help="another checkout to validate with")
    parser.add_argument("--repeat", type=int, default=1, help="validation runs per tree")
    parser.add_argument("--pg", default=PG_ADMIN,
                        help="the PostgreSQL server's admin URL (a database is made on it)")
    args = parser.parse_args()
    tree = Path(args.tree).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="smsops-bulk-"))
    csv_path = tmp / "list.csv"
    write_csv(csv_path, args.rows)
    py = sys.executable
    if args.profile:
        validate(csv_path, tree, profile=True)
    paths = [csv_path]
    if args.xlsx:  # the cells as numbers, then as text
        write_xlsx(csv_path, tmp / "list.xlsx")
        write_xlsx(csv_path, tmp / "text.xlsx", numbers=False)
        paths += [tmp / "list.xlsx", tmp / "text.xlsx"]
    trees = [args.base.resolve(), tree] if args.base else [tree]
    if args.skip_validate:
        v = {"rows": args.rows, "seconds": float("nan"), "peak_mb": float("nan")}
    else:
        v = validation_table(paths, trees, args.repeat)
    if args.validate_only:
        shutil.rmtree(tmp, ignore_errors=True)
        return
    import psycopg

    name = f"smsops_bulk_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    db_url = args.pg.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + \
        f"/{name}"
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
        print("| create_task, PostgreSQL | tree | recipients | s | rows/s | CPU s | peak MB "
              "| confirm page's preflight s | load average |")
        for _ in range(args.repeat if args.create_only else 1):
            for t in trees if args.create_only else [tree]:  # this tree's task last
                made = json.loads(subprocess.run(
                    [py, "-c", CREATE, str(csv_path), seeded["app_id"]], check=True,
                    env={**env, "PYTHONPATH": str(t)}, capture_output=True, text=True,
                    cwd=t).stdout)
                print(f"| | {t.name} | {made['valid']:,} | {made['seconds']:.1f} | "
                      f"{made['valid'] / made['seconds']:,.0f} | {made['cpu']:.1f} | "
                      f"{made['peak_mb']:.0f} | {made.get('preflight', float('nan')):.2f} | "
                      f"{os.getloadavg()[0]:.1f} |", flush=True)
        if args.create_only:
            return
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
        with psycopg.connect(db_url.replace("+psycopg", ""), autocommit=True) as c:
            probe = _Probe(c, made["task"])
            while time.time() - start < args.cap:
                left, waiting = probe.counts()
                if left == 0 and submitted_at is None:
                    submitted_at = time.time()
                if left == 0 and waiting == 0:
                    break
                time.sleep(0.1)
            done_at = time.time()
            # What the run did, counted after the clock stopped: a run whose messages
            # failed fast (a check refusing them, a carrier error) is no speed figure.
            outcomes = dict(c.execute("SELECT status, count(*) FROM message WHERE "
                                      "task_id = %s GROUP BY status",
                                      (made["task"],)).fetchall())
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
        print("messages by status: " + ", ".join(f"{k} {v:,}" for k, v in
                                                  sorted(outcomes.items())))
        if outcomes != {"delivered": n}:
            sys.exit(f"not every recipient was delivered once: {outcomes} of {n:,}")
    finally:
        stop(workers)
        if args.profile_workers and workers:
            _report_profiles([p for p in profiles if p.exists()], made["valid"])
        redis_proc.kill()
        with psycopg.connect(args.pg, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
