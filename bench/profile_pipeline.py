"""Where the time goes: the request path and the worker path, in one process,
under cProfile, on PostgreSQL and a Redis server of our own.

    .venv/bin/python bench/profile_pipeline.py [--requests 50] [--numbers 200]

Sends --requests requests of --numbers numbers through `sending.send` (what the
API calls after authentication), then drains them (`jobs.sending.drain`) and
applies the receipts (`jobs.sending.apply_receipts`) with the simulator at zero
latency. Prints CPU-time per message for each stage and the top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--numbers", type=int, default=200)
    parser.add_argument("--top", type=int, default=18)
    args = parser.parse_args()
    import psycopg

    tmp = Path(tempfile.mkdtemp(prefix="smsops-prof-"))
    name = f"smsops_prof_{uuid.uuid4().hex[:8]}"
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
                          SMSOPS_SIMULATOR_RECEIPT_DELAY_S="0")
        from app import create_app, demo, migrate
        from app.services import accounts, app_config, sending
        from app.services.accounts import ensure_account, system_actor
        from app.services.context import Ctx
        from app.services.limits import Limiter
        from jobs import runtime
        from jobs import sending as sending_job

        app = create_app()
        migrate.upgrade(app.config["DATABASE_URL"])
        db = app.extensions["db"]
        with db.unit_of_work() as s:
            ctx = Ctx(s, system_actor(ensure_account(s)))
            seeded = demo.seed(ctx)
            sid = seeded["app_id"]
            app_config.set_frequency(ctx, sid, {"30s": (False, 1), "hour": (False, 5),
                                                "day": (False, 10)})
            app_config.import_countries(ctx, sid, b"US\nGB\nSG\n")
            for region in ("mainland", "international"):
                app_config.set_thresholds(ctx, sid, region, alarm_threshold=None,
                                          daily_limit=None)
            accounts.update_settings(ctx, account_type="enterprise", timezone="Asia/Shanghai",
                                     intl_daily_quota=999_999_999, reply_callback_url="",
                                     reply_callback_enabled=False)
        template = next(t["id"] for t in seeded["templates"]
                        if t["region"] == "international" and t["sms_type"] == "verification")
        runtime.use(app)
        limiter = Limiter(app.extensions["redis"])
        from app.services.access import Actor, Statement

        with db.sessions() as s:
            from app.models import Application

            account_id = s.query(Application.account_id).filter_by(sdk_app_id=sid).scalar()
        actor = Actor(account_id=account_id, label="prof", statements=(
            Statement("allow", ("sms:SendSms",), (f"sms:app/{sid}",)),))
        total = args.requests * args.numbers
        stages = {}
        profiles = {}

        def send_all() -> None:
            for r in range(args.requests):
                phones = [f"+1415555{(r * args.numbers + i) % 9000 + 1000:04d}"
                          for i in range(args.numbers)]
                with db.unit_of_work() as s:
                    c = Ctx(s, actor)
                    sending.send(c, limiter, sid, sending.SendRequest(phones, template,
                                                                      ["123456", "5"]))

        for stage, work in (("send (API path)", send_all),
                            ("drain (claim, submit, record)", sending_job.drain),
                            ("apply receipts", sending_job.apply_receipts)):
            prof = cProfile.Profile()
            start = time.process_time()
            wall = time.perf_counter()
            prof.enable()
            with app.app_context():
                work()
            prof.disable()
            stages[stage] = (time.process_time() - start, time.perf_counter() - wall)
            profiles[stage] = prof
        print(f"{total} messages ({args.requests} requests x {args.numbers} numbers)\n")
        print("| stage | CPU ms/message (this process) | wall s | messages/s (wall) |")
        print("|---|---|---|---|")
        for stage, (cpu, wall) in stages.items():
            print(f"| {stage} | {cpu * 1000 / total:.3f} | {wall:.2f} | {total / wall:.0f} |")
        for stage, prof in profiles.items():
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(args.top)
            print(f"\n### {stage}: top functions by own time\n")
            print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))
    finally:
        redis_proc.kill()
        from sqlalchemy import create_engine  # noqa: F401 - engines closed with the process

        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
