"""Migration 0010 (alarm contact confirmation) goes up and down on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from app.migrate import alembic_config, upgrade
from tests.conftest import PG_ADMIN, PG_UP

NEW = {"saved_by_id", "mobile_confirmed_at", "confirm_code_hash", "confirm_expires_at",
       "confirm_attempts", "confirm_sent_at", "confirm_window_at", "confirm_sends"}


@pytest.fixture(params=["sqlite", *(["postgresql"] if PG_UP else [])])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    name = f"smsops_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("alarm_contact")}
    finally:
        engine.dispose()


def test_0010_up_and_down(url: str) -> None:
    upgrade(url, "0010")
    assert _columns(url) >= NEW
    command.downgrade(alembic_config(url), "0009")
    assert not NEW & _columns(url)
    upgrade(url, "0010")
    assert _columns(url) >= NEW
