"""Migration 0023: the message table's indexes for the SMS log match the models on
both backends, the PostgreSQL ones are the intended kind (text_pattern_ops with
included columns), and downgrade brings back the indexes 0022 had."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from app import migrate
from app.db import Base

NEW = {"ix_message_app_status", "ix_message_status_id", "ix_message_phone"}
OLD = {"ix_message_app_created", "ix_message_phone_created", "ix_message_phone_prefix",
       "ix_message_status"}


@pytest.fixture
def url(empty_db_url: str) -> str:
    return empty_db_url


def _message_indexes(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {i["name"] for i in inspect(engine).get_indexes("message")}
    finally:
        engine.dispose()


def test_schema_matches_the_models_and_downgrades(url: str) -> None:
    migrate.upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert [d for d in diff if "message" in repr(d) or "stat_" in repr(d)] == []
        if conn.dialect.name == "postgresql":
            phone = conn.execute(text("SELECT indexdef FROM pg_indexes WHERE "
                                      "indexname = 'ix_message_phone'")).scalar_one()
            assert "text_pattern_ops" in phone
            assert "INCLUDE (account_id, app_id, id)" in phone
            valid = conn.execute(text(
                "SELECT bool_and(indisvalid) FROM pg_index WHERE indrelid = "
                "'message'::regclass")).scalar_one()
            assert valid  # built CONCURRENTLY, and finished
    engine.dispose()
    assert _message_indexes(url) >= NEW and not OLD & _message_indexes(url)
    command.downgrade(migrate.alembic_config(url), "0022")
    assert _message_indexes(url) >= OLD and not NEW & _message_indexes(url)
    migrate.upgrade(url)
    assert _message_indexes(url) >= NEW and not OLD & _message_indexes(url)
