"""0013 moves packages recorded at 23:59:59 UTC to the end of their day locally."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import create_engine, text

from app import migrate
from tests.conftest import PG_UP, _pg_database

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(params=["sqlite", *(["postgresql"] if PG_UP else [])])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    gen = _pg_database()
    yield next(gen)
    gen.close()


def _expires(url: str) -> datetime:
    engine = create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(text("SELECT expires_at FROM credit_package")).scalar_one()
    engine.dispose()
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def test_upgrade_and_downgrade_move_old_expiries(empty_url: str) -> None:
    migrate.upgrade(empty_url, "0012")
    engine = create_engine(empty_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO account (id, name, account_type, timezone, "
                          "intl_daily_quota, reply_callback_enabled, created_at) VALUES "
                          "(1, 'a', 'enterprise', 'Asia/Shanghai', 100, false, :now)"),
                     {"now": datetime(2026, 1, 1, tzinfo=UTC)})
        conn.execute(text("INSERT INTO credit_package (account_id, name, size, remaining, "
                          "purchased_at, expires_at) VALUES (1, 'p', 1, 1, :now, :exp)"),
                     {"now": datetime(2026, 1, 1, tzinfo=UTC),
                      "exp": datetime(2027, 12, 31, 23, 59, 59, tzinfo=UTC)})
    engine.dispose()
    migrate.upgrade(empty_url)
    assert _expires(empty_url) == datetime.combine(datetime(2027, 12, 31).date(), time.max,
                                                   tzinfo=SHANGHAI)
    command.downgrade(migrate.alembic_config(empty_url), "0012")
    assert _expires(empty_url) == datetime(2027, 12, 31, 23, 59, 59, tzinfo=UTC)
