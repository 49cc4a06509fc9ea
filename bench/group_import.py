"""Importing a customer group from a file (SPEC.md §4): read + validate (twice: the
import is all or nothing, so the file is checked whole before anything is written),
then bulk inserts with duplicates merged, into SQLite or PostgreSQL.

    .venv/bin/python bench/group_import.py --rows 1000000
    .venv/bin/python bench/group_import.py --rows 200000 --database postgresql://postgres@127.0.0.1:5432/postgres

Prints rows, seconds for the validation pass alone, seconds for the whole import,
rows/s and the process's peak RSS; the same time class as bulk-task validation
(bench/bulk_task.py) is the goal.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--database", default="", help="a PostgreSQL admin URL (default: SQLite)")
    args = parser.parse_args()

    from sqlalchemy import create_engine, text

    from app import migrate
    from app.db import Database
    from app.services import audience
    from app.sms import memberfile
    from tests.helpers import root_ctx

    tmp = Path(tempfile.mkdtemp())
    csv_path = tmp / "customers.csv"
    with csv_path.open("w") as f:
        f.write("phone,name\n")
        for n in range(args.rows):
            f.write(f"138{n:08d},Customer {n}\n" if n % 50 else f"+1415555{n % 10000:04d},C\n")
    dropped = None
    if args.database:
        name = f"smsops_bench_{uuid.uuid4().hex[:8]}"
        admin = create_engine(args.database.replace("postgresql://", "postgresql+psycopg://"),
                              isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        url = args.database.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] \
            + f"/{name}"
        dropped = (admin, name)
    else:
        url = f"sqlite:///{tmp / 'bench.db'}"
    migrate.upgrade(url)
    db = Database(url)
    try:
        with csv_path.open("rb") as f:
            start = time.perf_counter()
            rows = sum(1 for m in memberfile.members(f, "customers.csv")
                       if isinstance(m, memberfile.Member))
            validate_s = time.perf_counter() - start
        with db.sessions() as s, csv_path.open("rb") as f:
            ctx = root_ctx(s)
            start = time.perf_counter()
            result = audience.import_file(ctx, f, "customers.csv", new_name="Bench",
                                          sms_type="marketing")
            s.commit()
            total_s = time.perf_counter() - start
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"| {db.backend} | {rows:,} | {validate_s:.1f} | {total_s:.1f} | "
              f"{rows / total_s:,.0f} | {result.added:,} | {peak_mb:.0f} |")
    finally:
        db.engine.dispose()
        if dropped:
            admin, name = dropped
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
