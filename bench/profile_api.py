"""Where a single-number API request spends its CPU: signed POST /api/v1/sms/send
requests through the real WSGI app (no HTTP server) on PostgreSQL and a Redis server
of our own, under cProfile.

    .venv/bin/python bench/profile_api.py [--requests 2000] [--numbers 1] [--top 25]
    .venv/bin/python bench/profile_api.py --no-profile --tree /tmp/base   # another checkout

Prints CPU ms per request (this process: Flask, the services, SQLAlchemy, psycopg,
redis-py) and the top functions by own and cumulative time. The database's and
Redis's own CPU is not counted (other processes).
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import hmac
import io
import json
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
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--numbers", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true", help="time only")
    parser.add_argument("--tree", default=str(ROOT), help="the checkout to run (a ratio "
                        "against another one, e.g. a git archive of the base commit)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(args.tree).resolve()))
    import psycopg

    tmp = Path(tempfile.mkdtemp(prefix="smsops-prof-api-"))
    name = f"smsops_prof_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    port = _free_port()
    redis_proc = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port",
                                   str(port), "--bind", "127.0.0.1", "--save", "", "--dir",
                                   str(tmp)], stdout=subprocess.DEVNULL)
    try:
        os.environ.update(SMSOPS_INSTANCE_DIR=str(tmp), SMSOPS_SECRET_KEY="prof",
                          SMSOPS_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1:5432/"
                          f"{name}", SMSOPS_REDIS_URL=f"redis://127.0.0.1:{port}/0")
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        from app import create_app, demo, migrate
        from app.services import accounts, app_config
        from app.services.accounts import ensure_account, system_actor
        from app.services.context import Ctx

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
        key = seeded["app_key"]
        client = app.test_client()

        def one(n: int) -> None:
            phones = [f"+1415555{(n * args.numbers + i) % 9000 + 1000:04d}"
                      for i in range(args.numbers)]
            body = json.dumps({"phone_numbers": phones, "template_id": template,
                               "template_params": ["123456", "5"]}).encode()
            ts, nonce = str(int(time.time())), uuid.uuid4().hex
            sig = hmac.new(key.encode(), f"POST\n/api/v1/sms/send\n{ts}\n{nonce}\n".encode()
                           + body, hashlib.sha256).hexdigest()
            resp = client.post("/api/v1/sms/send", data=body, headers={
                "Content-Type": "application/json", "X-SMS-AppId": sid,
                "X-SMS-Timestamp": ts, "X-SMS-Nonce": nonce, "X-SMS-Signature": sig})
            assert resp.status_code == 200, resp.get_data()
            assert all(s["code"] == "Ok" for s in resp.get_json()["send_status"])

        for n in range(50):  # warm up: pools, caches, imports
            one(n)
        prof = cProfile.Profile(time.process_time)  # CPU, not waits
        cpu, wall = time.process_time(), time.perf_counter()
        if not args.no_profile:
            prof.enable()
        for n in range(50, 50 + args.requests):
            one(n)
        prof.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{Path(args.tree).resolve()}: {args.requests} requests x {args.numbers} numbers: "
              f"{cpu * 1000 / args.requests:.2f} ms CPU/request, "
              f"{wall * 1000 / args.requests:.2f} ms wall/request"
              + (" (profiled)" if not args.no_profile else ""))
        if not args.no_profile:
            for order in ("tottime", "cumulative"):
                out = io.StringIO()
                pstats.Stats(prof, stream=out).sort_stats(order).print_stats(args.top)
                print(f"\n### top functions by {order}\n")
                print("\n".join(line for line in out.getvalue().splitlines()[6:]
                                if line.strip()))
        app.extensions["db"].engine.dispose()
    finally:
        redis_proc.kill()
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
