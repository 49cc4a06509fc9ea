"""What the rollups cost the receipt applier, per batch of 1,000 receipts, on PostgreSQL.

A database of its own with --messages submitted messages (bench/rollup_lag.py's
setup), --receipts receipts in the inbox, then pipeline.apply_receipts batch after
batch in one process, timing each batch's CPU (process_time: what load bends least)
and wall time, and the CPU and wall of the rollup calls inside it (rollups.snapshot,
rollups.moved, of which rollups.flush). With --off the rollup calls are replaced by
no-ops: the applier's cost without rollups (figures no longer exact; a yardstick only).

    .venv/bin/python bench/rollup_cost.py
    PYTHONPATH=/tmp/base .venv/bin/python bench/rollup_cost.py      # another tree
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(1, str(Path(__file__).resolve().parent))
import rollup_lag


def main() -> None:
    from cryptography.fernet import Fernet

    os.environ.setdefault("SMSOPS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--messages", type=int, default=30_000)
    p.add_argument("--receipts", type=int, default=25_000)
    p.add_argument("--off", action="store_true", help="rollup calls replaced by no-ops")
    args = p.parse_args()
    name = f"smsops_bench_cost_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(rollup_lag.PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        rollup_lag.setup(url, args.messages)
        run(url, args.receipts, args.off)
    finally:
        with psycopg.connect(rollup_lag.PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(url: str, receipts: int, off: bool) -> None:
    from sqlalchemy import text

    import app
    from app.db import Database
    from app.gateways.base import Receipt
    from app.services import pipeline, rollups

    spent: dict[str, list[float]] = {"snapshot": [0.0, 0.0], "moved": [0.0, 0.0],
                                     "flush": [0.0, 0.0]}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def inner(*a: Any, **kw: Any) -> Any:
            c, w = time.process_time(), time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name][0] += time.process_time() - c
                spent[name][1] += time.perf_counter() - w
        return inner

    if off:
        rollups.snapshot = lambda *_a, **_kw: {}  # type: ignore[assignment]
        rollups.moved = lambda *_a, **_kw: None  # type: ignore[assignment]
    else:
        for name in spent:
            setattr(rollups, name, timed(name, getattr(rollups, name)))
    db = Database(url)
    with db.unit_of_work() as s:
        first = int(s.execute(text("SELECT min(id) FROM message")).scalar_one())
        pipeline.add_receipts(s, [(Receipt(delivered=m % 13 != 0, carrier_code="UNDELIV",
                                           message_id=m), m, 0.0)
                                  for m in range(first, first + receipts)])
    cpus, walls = [], []
    while True:
        c, w = time.process_time(), time.perf_counter()
        with db.unit_of_work() as s:
            _changed, taken = pipeline.apply_receipts(s)
        if not taken:
            break
        cpus.append(time.process_time() - c)
        walls.append(time.perf_counter() - w)
    n = len(cpus)
    print(f"tree {Path(app.__file__).parent.parent}, rollups {'off' if off else 'on'}: "
          f"{n} batches of 1,000; per batch median CPU {1000 * statistics.median(cpus):.1f} ms, "
          f"wall {1000 * statistics.median(walls):.1f} ms; "
          + ("" if off else "rollup calls (mean) " + ", ".join(
              f"{k} {1000 * v[0] / n:.1f} CPU / {1000 * v[1] / n:.1f} wall ms"
              for k, v in spent.items()) + " (moved includes flush)"))
    db.engine.dispose()


if __name__ == "__main__":
    main()
