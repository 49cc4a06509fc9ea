"""Requests per second accepted by POST /api/v1/sms/send under gunicorn.

Seeds the demo application in a fresh database (PostgreSQL and the Redis server
when they answer on 127.0.0.1, else SQLite and an embedded Redis), turns its
limits off, starts gunicorn (sync workers, one per core), and sends signed
requests from client processes over keep-alive connections for a fixed time.

    .venv/bin/python bench/api_send.py [--seconds 15] [--numbers 1] [--clients 4]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _pg_url() -> str | None:
    try:
        import psycopg

        name = f"smsops_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres",
                             autocommit=True, connect_timeout=2) as c:
            c.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    except Exception:
        return None


def _redis_url() -> str | None:
    try:
        import redis

        redis.Redis(host="127.0.0.1", socket_connect_timeout=1).ping()
        return "redis://127.0.0.1:6379/14"
    except Exception:
        return None


def client(port: int, app_id: str, key: str, template: int, per_request: int,
           until: float, base: int, out: multiprocessing.Queue) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, accepted, n = [], 0, 0
    while time.time() < until:
        phones = [f"+1415555{(base + n * per_request + i) % 10000:04d}"
                  for i in range(per_request)]
        n += 1
        body = json.dumps({"phone_numbers": phones, "template_id": template,
                           "template_params": ["123456", "5"]}).encode()
        ts, nonce = str(int(time.time())), uuid.uuid4().hex
        sig = hmac.new(key.encode(), f"POST\n/api/v1/sms/send\n{ts}\n{nonce}\n".encode() + body,
                       hashlib.sha256).hexdigest()
        start = time.perf_counter()
        conn.request("POST", "/api/v1/sms/send", body=body, headers={
            "Content-Type": "application/json", "X-SMS-AppId": app_id,
            "X-SMS-Timestamp": ts, "X-SMS-Nonce": nonce, "X-SMS-Signature": sig})
        resp = conn.getresponse()
        data = json.loads(resp.read())
        latencies.append((time.perf_counter() - start) * 1000)
        if resp.status == 200:
            accepted += sum(1 for s in data["send_status"] if s["code"] == "Ok")
    out.put((latencies, accepted))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--numbers", type=int, default=1, help="numbers per request")
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="smsops-bench-"))
    db_url = _pg_url() or f"sqlite:///{tmp / 'bench.db'}"
    env = {**os.environ, "SMSOPS_INSTANCE_DIR": str(tmp), "SMSOPS_DATABASE_URL": db_url,
           "SMSOPS_SECRET_KEY": "bench"}
    if _redis_url():
        env["SMSOPS_REDIS_URL"] = _redis_url() or ""
    smsops = [sys.executable, "-m", "app.cli"]
    seeded = json.loads(subprocess.run([*smsops, "demo", "--json"], env=env, check=True,
                                       capture_output=True, text=True, cwd=ROOT).stdout)
    from app import create_app
    from app.services import app_config
    from app.services.accounts import ensure_account, system_actor
    from app.services.context import Ctx

    os.environ.update(env)
    app = create_app()
    with app.extensions["db"].unit_of_work() as s:
        ctx = Ctx(s, system_actor(ensure_account(s)))
        sid = seeded["app_id"]
        app_config.set_frequency(ctx, sid, {"30s": (False, 1), "hour": (False, 5),
                                            "day": (False, 10)})
        app_config.import_countries(ctx, sid, b"US\nGB\nSG\n")  # no per-country limits
        for region in ("mainland", "international"):
            app_config.set_thresholds(ctx, sid, region, alarm_threshold=None, daily_limit=None)
        from app.services import accounts

        accounts.update_settings(ctx, account_type="enterprise", timezone="Asia/Shanghai",
                                 intl_daily_quota=999_999_999, reply_callback_url="",
                                 reply_callback_enabled=False)
    template = next(t["id"] for t in seeded["templates"]
                    if t["region"] == "international" and t["sms_type"] == "verification")
    env["SMSOPS_REDIS_URL"] = app.config["REDIS_URL_RESOLVED"]
    port = 18000 + os.getpid() % 1000
    workers = os.cpu_count() or 2
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "-w", str(workers),
                               "-b", f"127.0.0.1:{port}", "--log-level", "warning", "wsgi:app"],
                              env=env, cwd=ROOT)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/healthz")
            break
        except OSError:
            time.sleep(0.2)
    out: multiprocessing.Queue = multiprocessing.Queue()
    until = time.time() + args.seconds
    procs = [multiprocessing.Process(target=client, args=(
        port, seeded["app_id"], seeded["app_key"], template, args.numbers, until, i * 2500, out))
        for i in range(args.clients)]
    start = time.time()
    for p in procs:
        p.start()
    results = [out.get() for _ in procs]
    elapsed = time.time() - start
    for p in procs:
        p.join()
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=30)
    from app.redisconn import shutdown_embedded

    shutdown_embedded()  # when no Redis server answered, the embedded one stops too
    latencies = [x for lat, _ in results for x in lat]
    accepted = sum(a for _, a in results)
    backend = "PostgreSQL" if db_url.startswith("postgresql") else "SQLite"
    print(f"| {backend}, {workers} gunicorn workers, {args.clients} clients, "
          f"{args.numbers} number(s)/request | {len(latencies) / elapsed:.0f} | "
          f"{accepted / elapsed:.0f} | {statistics.median(latencies):.1f} | "
          f"{sorted(latencies)[int(0.99 * (len(latencies) - 1))]:.1f} |")


if __name__ == "__main__":
    main()
