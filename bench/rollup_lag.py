"""Rollups under a sustained receipt load, through the real apply path, on PostgreSQL.

Makes a database of its own with N messages already with the carrier (`submitted`,
counted into the rollups), then for --seconds a feeder puts --rate receipts a second
into the durable inbox (pipeline.add_receipts, 1,000 per 100 ms) while --appliers
processes run pipeline.apply_receipts in a loop, as the receipts job does (each batch
one transaction: the messages' new state and the rollups together). Every 0.5 s a
sampler reads, in one snapshot (REPEATABLE READ):

- lag: how long the oldest receipt waiting in the inbox has waited, i.e. how far
  the rollups (and the message table, which moves with them) trail the receipts
  that have arrived;
- drift: delivered + failed counted in the message table minus the same in the
  hourly rollups, and the same for every other rollup table the tree has (must be 0:
  written in the same transaction).

Prints applied messages/s, the appliers' CPU seconds per 1,000 receipts (Python
only: the figure load bends least), lag p50/p95/max and the largest drift seen.

    .venv/bin/python bench/rollup_lag.py --messages 400000 --rate 10000 --seconds 30
    PYTHONPATH=/tmp/stats-base .venv/bin/python bench/rollup_lag.py ...   # another tree

Uses only calls every tree since migration 0019 has (migrate.upgrade,
pipeline.add_receipts / apply_receipts, rollups.rebuild), so two trees compare.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import time
import uuid
from typing import Any

import psycopg

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ISO = ["US", "GB", "DE", "FR", "SG", "JP", "KR", "IN", "ID", "BR"]


def setup(url: str, n: int) -> None:
    from sqlalchemy import text

    from app import migrate
    from app.db import Database
    from app.services import apps, rollups
    from app.services.accounts import ensure_account, system_actor
    from app.services.context import Ctx

    migrate.upgrade(url)
    db = Database(url)
    with db.unit_of_work() as s:
        account = ensure_account(s)
        ctx = Ctx(s, system_actor(account))
        app_ids = [apps.create_app(ctx, name=f"App {k}")[0].id for k in range(5)]
        account_id = account.id
    iso = "ARRAY[" + ", ".join(f"'{i}'" for i in ISO) + "]"
    ids = "ARRAY[" + ", ".join(str(i) for i in app_ids) + "]"
    with db.engine.begin() as conn:
        # Submitted over the last two hours: a batch of receipts touches a few
        # dozen rollup keys (5 apps x 10 countries x 2 types x 1-2 hours).
        conn.execute(text(f"""
            INSERT INTO message (account_id, app_id, serial_no, request_id, region,
                phone_number, iso_code, sms_type, content, encoding, fee, status,
                gateway_message_id, created_at, submitted_at)
            SELECT :acc, ({ids})[1 + g % 5], md5(g::text), 'bench', 'international',
                   '+1' || (2000000000 + g)::text, ({iso})[1 + (g / 7) % 10],
                   CASE WHEN g % 3 = 0 THEN 'marketing' ELSE 'verification' END,
                   CASE WHEN g % 3 = 0 THEN 'Sale today' ELSE 'Your code is 1' END,
                   'GSM', 1 + g % 2, 'submitted', 'gw' || g,
                   now() - make_interval(secs => 7200.0 * (:n - g) / :n), now()
            FROM generate_series(1, :n) AS g"""), {"acc": account_id, "n": n})
        t = time.perf_counter()
        rollups.rebuild(conn, chunk=20000)
        print(f"{n:,} submitted messages counted in {time.perf_counter() - t:.1f} s")
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    db.engine.dispose()


def feeder(url: str, rate: int, seconds: float, first_id: int, last_id: int, out: Any,
           go: Any) -> None:
    from app.db import Database
    from app.gateways.base import Receipt
    from app.services import pipeline

    db = Database(url)
    per_tick, tick = rate // 10, 0.1
    out.put(("ready", 0, 0))
    go.wait()
    start = time.monotonic()
    fed, mid = 0, first_id
    while time.monotonic() - start < seconds and mid + per_tick <= last_id + 1:
        due = start + tick * (fed // per_tick)
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        batch: list[tuple[Receipt, int | None, float]] = [
            (Receipt(gateway_id=f"gw{m}", delivered=m % 13 != 0,
                     carrier_code="DELIVRD" if m % 13 else "UNDELIV", message_id=m), m, 0.0)
            for m in range(mid, mid + per_tick)]
        with db.unit_of_work() as s:
            pipeline.add_receipts(s, batch)
        mid += per_tick
        fed += per_tick
    out.put(("fed", fed, time.monotonic() - start))
    db.engine.dispose()


def applier(url: str, stop: Any, out: Any, go: Any) -> None:
    from app.db import Database
    from app.services import pipeline

    db = Database(url)
    applied, cpu = 0, 0.0
    out.put(("ready", 0, 0))
    go.wait()
    while not stop.is_set():
        c = time.process_time()
        with db.unit_of_work() as s:
            changed, taken = pipeline.apply_receipts(s)
        cpu += time.process_time() - c
        applied += len(changed)
        if taken < pipeline.BATCH:
            time.sleep(0.01)  # the real job waits for a wake-up instead
    out.put(("applied", applied, cpu))
    db.engine.dispose()


def sample(url: str) -> tuple[float, dict[str, int]]:
    """(lag in seconds, drift per rollup table) in one snapshot."""
    conninfo = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        lag = conn.execute("SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) "
                           "FROM receipt_inbox").fetchone()
        settled = conn.execute("SELECT count(*) FROM message WHERE status IN "
                               "('delivered', 'failed')").fetchone()
        failed = conn.execute("SELECT count(*) FROM message WHERE status = 'failed'"
                              ).fetchone()
        drift = {}
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'stat_%'")]
        for table in tables:
            cols = {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                (table,))}
            if "outcome" in cols and "billed" not in cols:  # failure codes only
                q, want = (f"SELECT coalesce(sum(count), 0) FROM {table} "
                           "WHERE outcome = 'failed'"), failed
            elif "outcome" in cols:
                q, want = (f"SELECT coalesce(sum(count), 0) FROM {table} "
                           "WHERE outcome IN ('delivered', 'failed')"), settled
            elif "delivered" in cols and "failed" in cols:
                q, want = f"SELECT coalesce(sum(delivered + failed), 0) FROM {table}", settled
            else:
                continue
            row = conn.execute(q).fetchone()
            drift[table] = int(want[0]) - int(row[0])  # type: ignore[index]
        conn.rollback()
    return float(lag[0]), drift  # type: ignore[index]


def main() -> None:
    from cryptography.fernet import Fernet

    os.environ.setdefault("SMSOPS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--messages", type=int, default=400_000)
    p.add_argument("--rate", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--appliers", type=int, default=2)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    assert args.messages >= args.rate * args.seconds, "not enough messages to receive"
    name = f"smsops_bench_lag_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://") + \
        f"/{name}"
    try:
        setup(url, args.messages)
        conninfo = url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(conninfo) as conn:
            first, last = (int(v) for v in conn.execute(  # type: ignore[union-attr]
                "SELECT min(id), max(id) FROM message").fetchone())
        ctx = mp.get_context("spawn")
        out, go, stop = ctx.Queue(), ctx.Event(), ctx.Event()
        procs = [ctx.Process(target=applier, args=(url, stop, out, go))
                 for _ in range(args.appliers)]
        procs.append(ctx.Process(target=feeder, args=(url, args.rate, args.seconds, first, last,
                                                       out, go)))
        for proc in procs:
            proc.start()
        for _ in procs:
            out.get()  # every process imported and connected
        go.set()
        t0 = time.monotonic()
        lags: list[float] = []
        worst = 0
        drained_at = None
        while time.monotonic() - t0 < args.seconds + 60:  # room to drain a backlog
            time.sleep(0.5)
            lag, drift = sample(url)
            worst = max([worst, *(abs(v) for v in drift.values())])
            if time.monotonic() - t0 <= args.seconds:
                lags.append(lag)
            elif lag == 0:
                drained_at = time.monotonic() - t0
                break
        stop.set()
        results = [out.get() for _ in procs]
        for proc in procs:
            proc.join()
        fed = sum(r[1] for r in results if r[0] == "fed")
        fed_s = next(r[2] for r in results if r[0] == "fed")
        applied = sum(r[1] for r in results if r[0] == "applied")
        cpu = sum(r[2] for r in results if r[0] == "applied")
        lags.sort()
        print(f"fed {fed:,} receipts in {fed_s:.1f} s ({fed / fed_s:,.0f}/s); applied "
              f"{applied:,}; applier CPU {1000 * cpu / max(applied, 1) * 1000:.1f} ms per "
              f"1,000; backlog gone {drained_at or float('nan'):.1f} s after start "
              f"(feeding stopped at {args.seconds:.0f} s)")
        print(f"lag p50 {statistics.median(lags):.2f} s, p95 "
              f"{lags[min(len(lags) - 1, round(0.95 * (len(lags) - 1)))]:.2f} s, max "
              f"{lags[-1]:.2f} s; largest drift between messages and rollups: {worst}")
    finally:
        if not args.keep:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
