"""Migration 0011 on SQLite (PostgreSQL runs every migration in tests/conftest.py):
the template column, and stored 30-second refusals recoded both ways."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command

from app import migrate

OLD, NEW = ("LimitExceeded.PhoneNumberSameContentDailyLimit",
            "LimitExceeded.PhoneNumberThirtySecondLimit")


def test_upgrade_and_downgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url, "0010")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO message (id, account_id, app_id, serial_no, request_id, region, "
            "phone_number, iso_code, sms_type, content, encoding, fee, status, error_code, "
            "created_at) VALUES (1, 1, 1, 's1', 'r1', 'international', '+14155550100', 'US', "
            "'verification', 'x', 'GSM', 0, 'rejected', :old, '2026-11-24 00:00:00'), "
            "(2, 1, 1, 's2', 'r1', 'international', '+14155550101', 'US', 'verification', "
            "'x', 'GSM', 0, 'rejected', 'LimitExceeded.PhoneNumberDailyLimit', "
            "'2026-11-24 00:00:00')"), {"old": OLD})
    codes = "SELECT error_code FROM message ORDER BY id"
    migrate.upgrade(url, "0011")
    with engine.begin() as conn:
        assert conn.execute(sa.text(codes)).scalars().all() == [
            NEW, "LimitExceeded.PhoneNumberDailyLimit"]
        columns = [c["name"] for c in sa.inspect(conn).get_columns("template")]
        assert "allow_url_params" in columns
    command.downgrade(migrate.alembic_config(url), "0010")
    with engine.begin() as conn:
        assert conn.execute(sa.text(codes)).scalars().all()[0] == OLD
        columns = [c["name"] for c in sa.inspect(conn).get_columns("template")]
        assert "allow_url_params" not in columns
    engine.dispose()
