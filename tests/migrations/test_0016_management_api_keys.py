"""Migration 0016 up and down on SQLite (PostgreSQL runs every migration in
tests/conftest.py): the API key and idempotency tables."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from app import migrate


def test_upgrade_and_downgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url, "0016")
    engine = sa.create_engine(url)
    tables = set(sa.inspect(engine).get_table_names())
    assert {"api_key", "api_idempotency"} <= tables
    uniques = sa.inspect(engine).get_unique_constraints("api_idempotency")
    assert [u["column_names"] for u in uniques] == [["user_id", "key"]]
    command.downgrade(migrate.alembic_config(url), "0015")
    tables = set(sa.inspect(engine).get_table_names())
    assert not {"api_key", "api_idempotency"} & tables
    engine.dispose()
