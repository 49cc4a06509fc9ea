"""Migration 0018 matches the models, upgrades and downgrades cleanly."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from app import migrate
from app.db import Base


def test_schema_matches_models_and_downgrades(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    ours = [d for d in diff if "send_task" in repr(d) or "task_id" in repr(d)
            or "unit_prices" in repr(d)]
    assert ours == []
    command.downgrade(migrate.alembic_config(url), "0017")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert any("send_task" in repr(d) for d in diff)  # gone again
    engine.dispose()
