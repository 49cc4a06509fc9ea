"""What the migration tests of one partial index of `message` share."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from app import migrate
from app.db import Base


def index_definition(engine: Engine, name: str) -> str | None:
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            return conn.execute(text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
                                {"n": name}).scalar()
        return conn.execute(text("SELECT sql FROM sqlite_master WHERE name = :n"),
                            {"n": name}).scalar()


def check_comes_and_goes(url: str, name: str, condition: str, before: str) -> None:
    """Upgraded, the index `name` is partial on `condition` and matches the models;
    downgraded to `before`, it is gone; upgraded again, it is back."""
    migrate.upgrade(url)
    engine = create_engine(url)
    found = index_definition(engine, name)
    assert found is not None and condition in found and "WHERE" in found.upper()
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert [d for d in diff if "message" in repr(d)] == []
    command.downgrade(migrate.alembic_config(url), before)
    assert index_definition(engine, name) is None
    migrate.upgrade(url)
    assert index_definition(engine, name) is not None
    engine.dispose()
