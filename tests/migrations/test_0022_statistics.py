"""Migration 0022: the narrow rollup tables match the models and start from the
rollups already there (not from the message table, which may have been purged)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import redis
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, delete, insert

from app import migrate
from app.db import Base, Database, utcnow
from app.models import Message
from app.services import rollups
from tests.sending.conftest import make_shop
from tests.stats.expected import direct_narrow, rolled_narrow


def test_schema_matches_the_models(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert [d for d in diff if "stat_" in repr(d)] == []
    command.downgrade(migrate.alembic_config(url), "0021")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert any("stat_totals_daily" in repr(d) for d in diff)  # gone again
    engine.dispose()


def test_upgrade_fills_the_narrow_tables_from_the_rollups(tmp_path: Path,
                                                         embedded_redis_url: str) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url)
    db = Database(url)
    now = utcnow()
    with db.sessions() as s:
        shop = make_shop(s, redis.Redis.from_url(embedded_redis_url))
        rows = [{"account_id": shop.app.account_id, "app_id": shop.app.id,
                 "serial_no": f"s{n}", "request_id": "r", "region": "international",
                 "phone_number": "+14155550101", "iso_code": ("US", "GB")[n % 2],
                 "content": ("Your code is 1", "Sale")[n % 2], "fee": 1 + n % 2,
                 "status": status, "error_code": err, "carrier_code": carrier,
                 "created_at": now - timedelta(hours=n * 7),
                 "receipt_at": now if status in ("delivered", "failed") else None}
                for n, (status, err, carrier) in enumerate([
                    ("delivered", None, "DELIVRD"),
                    ("rejected", "FailedOperation.MarketingQuietHours", None),
                    ("failed", "FailedOperation.Undelivered", "UNDELIV"),
                    ("accepted", None, None), ("submitted", None, None),
                    ("no_receipt", "FailedOperation.NoReceipt", None)] * 3)]
        s.execute(insert(Message), rows)
        rollups.count_new(s, rows)
        s.commit()
        expected = direct_narrow(s)
    db.engine.dispose()
    command.downgrade(migrate.alembic_config(url), "0021")
    db = Database(url)
    with db.sessions() as s:
        s.execute(delete(Message))  # purged: the rollups alone hold the history
        s.commit()
    db.engine.dispose()
    migrate.upgrade(url)
    db = Database(url)
    with db.sessions() as s:
        assert sum(v for k, v in expected["totals_daily"].items() if k[-1] != "billed") == 18
        assert rolled_narrow(s) == expected
    db.engine.dispose()
