"""Where a bulk task's sending time goes, in one process: a task of --rows mainland
recipients on PostgreSQL and a Redis server of our own, confirmed, then RQ's jobs run
in this process (a burst SimpleWorker: the dispatcher, the drain, receipts) under
cProfile, with the simulator at zero latency and receipts at once.

    .venv/bin/python bench/profile_task.py --rows 20000 [--no-profile]

Prints CPU per message of this process, the wall time each SQL statement kind took
(what the worker waited on PostgreSQL for), and the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from pipeline_e2e import PG_ADMIN, _free_port  # noqa: E402 - a sibling script


def _sql_timer(engine: Any) -> dict[str, list[float]]:
    """Wall time per statement kind (its first words), through SQLAlchemy's events."""
    from sqlalchemy import event

    spent: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    @event.listens_for(engine, "before_cursor_execute")
    def before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["t0"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        kind = " ".join(statement.split())[:90]
        cell = spent[kind]
        cell[0] += 1
        cell[1] += time.perf_counter() - conn.info.pop("t0", time.perf_counter())

    return spent


def _last_job_end(conn: Any, queues: tuple[str, ...]) -> float:
    """When the last job finished (the burst worker's own shutdown is not counted)."""
    from rq import Queue
    from rq.job import Job
    from rq.registry import FinishedJobRegistry

    ends = [job.ended_at.timestamp() for name in queues
            for job in Job.fetch_many(FinishedJobRegistry(queue=Queue(name, connection=conn))
                                      .get_job_ids(), connection=conn)
            if job is not None and job.ended_at is not None]
    return max(ends, default=time.time())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--save", help="also write the cProfile data to this file")
    parser.add_argument("--keep", action="store_true", help="keep the database (EXPLAIN)")
    args = parser.parse_args()
    import psycopg

    tmp = Path(tempfile.mkdtemp(prefix="smsops-proftask-"))
    name = f"smsops_proftask_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    port = _free_port()
    redis_proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port",
                                   str(port), "--save", "", "--dir", str(tmp)],
                                  stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        os.environ.update(SMSOPS_INSTANCE_DIR=str(tmp), SMSOPS_SECRET_KEY="prof",
                          SMSOPS_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/"
                          f"{name}", SMSOPS_REDIS_URL=f"redis://127.0.0.1:{port}/0",
                          SMSOPS_SIMULATOR_RECEIPT_DELAY_S="0", SMSOPS_WORKER_NO_FORK="1")
        from sqlalchemy import select

        from app import create_app, demo, migrate
        from app.models import Template
        from app.queue import enqueue_deferred
        from app.services import accounts, app_config, tasks
        from app.services.accounts import ensure_account, system_actor
        from app.services.context import Ctx, Settings
        from jobs import runtime

        app = create_app()
        migrate.upgrade(app.config["DATABASE_URL"])
        db = app.extensions["db"]
        with db.unit_of_work() as s:
            ctx = Ctx(s, system_actor(ensure_account(s)))
            sid = demo.seed(ctx)["app_id"]
            app_config.set_frequency(ctx, sid, {"30s": (False, 1), "hour": (False, 5),
                                                "day": (False, 10)})
            for region in ("mainland", "international"):
                app_config.set_thresholds(ctx, sid, region, alarm_threshold=None,
                                          daily_limit=None)
            accounts.update_settings(ctx, account_type="enterprise", timezone="Asia/Shanghai",
                                     intl_daily_quota=999_999_999, reply_callback_url="",
                                     reply_callback_enabled=False)
        data = "phone,code,minutes\n" + "".join(
            f"{('138', '139', '150', '186', '177')[i % 5]}{i:08d},{100000 + i % 900000},5\n"
            for i in range(args.rows))
        with db.unit_of_work() as s:
            ctx = Ctx(s, system_actor(ensure_account(s)), Settings.from_config(app.config))
            tid = s.scalar(select(Template.id).where(Template.region == "mainland",
                                                     Template.sms_type == "verification"))
            task, summary = tasks.create_task(ctx, tasks.Draft(sid, tid, name="prof"),
                                              io.BytesIO(data.encode()), "list.csv")
            tasks.confirm(ctx, task.id, acknowledged=True)
        enqueue_deferred(app.extensions["redis"], ctx.deferred)
        spent = _sql_timer(db.engine)
        prof = None if args.no_profile else cProfile.Profile()
        cpu, wall = time.process_time(), time.perf_counter()
        if prof:
            prof.enable()
        from rq import SimpleWorker

        from app.queue import QUEUE_NAMES

        runtime.use(app)  # the jobs, one after another, until no queue has any left
        SimpleWorker(list(QUEUE_NAMES), connection=app.extensions["redis"]).work(
            burst=True, with_scheduler=False, logging_level=os.environ.get("RQ_LOG", "WARNING"))
        if prof:
            prof.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        wall -= time.time() - _last_job_end(app.extensions["redis"], QUEUE_NAMES)
        n = summary.valid
        print(f"{n} recipients: {wall:.2f} s wall to the last job ({n / wall:,.0f} msg/s), "
              f"CPU of this process {cpu * 1000 / n:.3f} ms/message\n")
        print("| SQL statement (start) | calls | wall s | ms/message |\n|---|---|---|---|")
        for kind, (calls, secs) in sorted(spent.items(), key=lambda kv: -kv[1][1])[:20]:
            print(f"| `{kind}` | {calls} | {secs:.2f} | {secs * 1000 / n:.3f} |")
        if prof and args.save:
            prof.dump_stats(args.save)
        if prof:
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.top)
            print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))
    finally:
        redis_proc.kill()
        if args.keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(PG_ADMIN, autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
