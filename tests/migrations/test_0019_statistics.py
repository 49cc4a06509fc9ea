"""Migration 0019: the rollup tables start from the messages already recorded."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import redis
from alembic import command
from sqlalchemy import insert

from app import migrate
from app.db import Database, utcnow
from app.models import Message
from tests.sending.conftest import make_shop
from tests.stats.expected import direct, rolled


def test_upgrade_counts_the_messages_already_there(tmp_path: Path,
                                                   embedded_redis_url: str) -> None:
    # Seeded through today's models (the head schema: the ORM cannot write an older
    # one), then taken back to before 0019, which drops the rollups, and upgraded again.
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url)
    db = Database(url)
    now = utcnow()
    with db.sessions() as s:
        shop = make_shop(s, redis.Redis.from_url(embedded_redis_url))
        s.execute(insert(Message), [
            {"account_id": shop.app.account_id, "app_id": shop.app.id, "serial_no": f"s{n}",
             "request_id": "r", "region": "international", "phone_number": "+14155550101",
             "iso_code": "US", "content": "Your code is 1", "fee": 1 + n % 2,
             "status": status, "error_code": err, "created_at": now - timedelta(hours=n * 7),
             "receipt_at": now if status == "delivered" else None}
            for n, (status, err) in enumerate([
                ("delivered", None), ("rejected", "FailedOperation.MarketingQuietHours"),
                ("failed", "FailedOperation.GatewayRejected"), ("accepted", None),
                ("no_receipt", "FailedOperation.NoReceipt")] * 3)])
        s.commit()
    db.engine.dispose()
    command.downgrade(migrate.alembic_config(url), "0018")
    migrate.upgrade(url)
    db = Database(url)
    with db.sessions() as s:
        expected = direct(s)
        assert sum(v for k, v in expected.items() if k[-1] == "count") == 15
        assert rolled(s) == expected
        assert rolled(s, daily=True) == direct(s, daily=True)
    db.engine.dispose()
