"""Where a send API request spends its CPU: signed POST /api/v1/sms/send requests
through the real WSGI app (called as a server calls it, no HTTP) on PostgreSQL and a
Redis server of our own, under cProfile with a CPU clock.

    .venv/bin/python bench/profile_api.py [--requests 2000] [--numbers 1] [--top 25]
    .venv/bin/python bench/profile_api.py --no-profile --tree /tmp/base   # another checkout

Requests run one after another, so each group commit holds one request: this
measures the CPU of one request's own work on both threads (the request's, and the
group commit's writer where the tree has one), not what concurrency saves. Prints CPU
ms per request (this process: Flask, the services, SQLAlchemy, psycopg, redis-py)
and each thread's top functions. The database's and Redis's own CPU is not counted
(bench/api_send.py counts them).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--numbers", type=int, default=1)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true", help="time only")
    parser.add_argument("--tree", default=str(harness.ROOT), help="the checkout to run (a "
                        "ratio against another one, e.g. a git archive of the base commit)")
    parser.add_argument("--shared-pg", action="store_true")
    args = parser.parse_args()
    tree = Path(args.tree).resolve()
    sys.path.insert(0, str(tree))
    tmp = Path(tempfile.mkdtemp(prefix="smsops-prof-api-"))
    redis = harness.Redis(tmp)
    pg = harness.Postgres(shared=args.shared_pg)
    try:
        env = {"SMSOPS_INSTANCE_DIR": str(tmp), "SMSOPS_SECRET_KEY": "prof",
               "SMSOPS_DATABASE_URL": pg.url, "SMSOPS_REDIS_URL": redis.url}
        seeded = harness.seed({**os.environ, **env, "PYTHONPATH": str(tree)}, tree)
        os.environ.update(env)
        from app import create_app

        app = create_app()
        requests = list(harness.signed_requests(seeded.app_id, seeded.app_key,
                                                seeded.template, args.numbers,
                                                args.requests + 50, 0))

        def one(raw: bytes) -> None:
            head, body = raw.split(b"\r\n\r\n", 1)
            lines = head.decode().split("\r\n")
            environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/sms/send",
                       "RAW_URI": "/api/v1/sms/send", "SERVER_NAME": "127.0.0.1",
                       "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
                       "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
                       "wsgi.errors": sys.stderr, "CONTENT_LENGTH": str(len(body)),
                       "CONTENT_TYPE": "application/json"}
            for line in lines[1:]:
                name, value = line.split(": ", 1)
                environ["HTTP_" + name.upper().replace("-", "_")] = value
            status: list[str] = []
            out = b"".join(app(environ, lambda s, h, *a: status.append(s)))
            assert status[0].startswith("200"), out
            assert out.count(b'"code":"Ok"') == args.numbers, out

        for raw in requests[:50]:  # warm up: pools, caches, imports
            one(raw)
        profiles: dict[str, cProfile.Profile] = {}
        writer = sys.modules.get("app.api.groupcommit")
        if writer is not None and not args.no_profile:  # the writer thread's share too
            original = writer.GroupCommit._write

            def profiled(self: object, batch: list) -> None:
                prof = profiles.setdefault("group commit writer",
                                           cProfile.Profile(time.thread_time))
                prof.enable()
                try:
                    original(self, batch)
                finally:
                    prof.disable()
            writer.GroupCommit._write = profiled  # type: ignore[method-assign]
        main_prof = profiles.setdefault(f"request thread {threading.get_ident()}",
                                        cProfile.Profile(time.thread_time))
        cpu, wall = time.process_time(), time.perf_counter()
        if not args.no_profile:
            main_prof.enable()
        for raw in requests[50:]:
            one(raw)
        main_prof.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(f"{tree}: {args.requests} requests x {args.numbers} numbers: "
              f"{cpu * 1000 / args.requests:.2f} ms CPU/request, "
              f"{wall * 1000 / args.requests:.2f} ms wall/request"
              + (" (profiled)" if not args.no_profile else ""))
        if not args.no_profile:
            for name, prof in profiles.items():
                for order in ("tottime", "cumulative"):
                    out = io.StringIO()
                    stats = pstats.Stats(prof, stream=out)
                    print(f"\n### {name}: {stats.total_tt * 1000 / args.requests:.2f} ms "
                          f"CPU/request; top functions by {order}\n")
                    stats.sort_stats(order).print_stats(args.top)
                    print("\n".join(line for line in out.getvalue().splitlines()[6:]
                                    if line.strip()))
        app.extensions["db"].engine.dispose()
    finally:
        pg.stop()
        redis.stop()


if __name__ == "__main__":
    main()
