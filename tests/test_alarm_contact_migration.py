"""Migration 0010 (alarm contact confirmation) goes up and down on both backends."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect

from app.migrate import alembic_config, upgrade

NEW = {"saved_by_id", "mobile_confirmed_at", "confirm_code_hash", "confirm_expires_at",
       "confirm_attempts", "confirm_sent_at", "confirm_window_at", "confirm_sends"}


@pytest.fixture
def url(empty_db_url: str) -> str:
    return empty_db_url


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
