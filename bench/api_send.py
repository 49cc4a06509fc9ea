"""Requests per second accepted by POST /api/v1/sms/send, and what each costs.

A PostgreSQL cluster and a Redis server of the benchmark's own (so each one's CPU
can be counted), the demo application with its limits lifted, gunicorn serving the
API, and client processes sending pre-signed requests over keep-alive connections
(bench/harness.py). Every number still passes every check of SPEC.md §3 and is a
committed message row before its answer. No worker runs: this is the API alone
(bench/pipeline_e2e.py measures to the receipt).

    .venv/bin/python bench/api_send.py --seconds 10 --numbers 1
    .venv/bin/python bench/api_send.py --seconds 10 --numbers 1 --tree /tmp/base
    .venv/bin/python bench/api_send.py --seconds 10 --numbers 200 --connections 4

Prints one Markdown table row: requests/s, numbers accepted/s, latency p50/p99,
and CPU ms per request of gunicorn, PostgreSQL, Redis and the clients. "capacity"
is the request rate 2 cores would carry at that CPU cost (gunicorn + PostgreSQL +
Redis, clients excluded): a figure machine load bends far less than requests/s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--numbers", type=int, default=1, help="numbers per request")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=16, help="per worker; 1 = sync")
    parser.add_argument("--server", choices=("gunicorn", "granian"), default="gunicorn")
    parser.add_argument("--tree", default=str(harness.ROOT), help="the checkout to run")
    parser.add_argument("--shared-pg", action="store_true",
                        help="a database on 127.0.0.1:5432 instead of a cluster of our own")
    args = parser.parse_args()
    tree = Path(args.tree).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="smsops-bench-api-"))
    redis = harness.Redis(tmp)
    pg = harness.Postgres(shared=args.shared_pg)
    server = None
    try:
        env = {**os.environ, "SMSOPS_INSTANCE_DIR": str(tmp), "SMSOPS_SECRET_KEY": "bench",
               "SMSOPS_DATABASE_URL": pg.url, "SMSOPS_REDIS_URL": redis.url,
               "PYTHONPATH": str(tree)}
        seeded = harness.seed(env, tree)
        server = harness.Gunicorn(env, tree, workers=args.workers, threads=args.threads,
                                 server=args.server)
        warm = harness.load(server.port, seeded, connections=args.processes,
                            processes=args.processes, numbers=args.numbers, seconds=1)
        assert warm.errors == 0, "warm-up requests failed"
        parts = {"gunicorn": [server.proc.pid], "postgres": [pg.pid] if pg.pid else [],
                 "redis": [redis.proc.pid]}
        before = {k: harness.cpu_seconds(v) for k, v in parts.items()}
        res = harness.load(server.port, seeded, connections=args.connections,
                           processes=args.processes, numbers=args.numbers,
                           seconds=args.seconds)
        used = {k: harness.cpu_seconds(v) - before[k] for k, v in parts.items()}
    finally:
        if server is not None:
            server.stop()
        pg.stop()
        redis.stop()
    per = {k: v * 1000 / max(res.requests, 1) for k, v in used.items()}
    per["clients"] = res.client_cpu_s * 1000 / max(res.requests, 1)
    served = per["gunicorn"] + per["postgres"] + per["redis"]
    lat = sorted(res.latencies_ms)
    kind = f"gthread x{args.threads}" if args.threads > 1 else "sync"
    if args.server != "gunicorn":
        kind = f"{args.server} x{args.threads}"
    print(f"| {tree.name} | {args.workers} {kind} | {args.connections} conns | "
          f"{args.numbers}/req | {res.requests / res.seconds:,.0f} | "
          f"{res.accepted / res.seconds:,.0f} | {statistics.median(lat):.1f} | "
          f"{lat[int(0.99 * (len(lat) - 1))]:.1f} | {per['gunicorn']:.2f} | "
          f"{per['postgres']:.2f} | {per['redis']:.2f} | {per['clients']:.2f} | "
          f"{2000 / served:,.0f} | {res.errors} |")


if __name__ == "__main__":
    main()
