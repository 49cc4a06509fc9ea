"""Migration 0029: a task's recipient rows are kept only while pending. Rows already
turned into messages go at the upgrade; those not sent stay, and a downgrade gives
them back their `pending` state."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from app import migrate
from app.db import Base
from app.models import Application, SendTask
from tests.helpers import make_app


@pytest.fixture
def url(empty_db_url: str) -> str:
    return empty_db_url


def test_dispatched_recipients_go_and_pending_ones_stay(url: str) -> None:
    migrate.upgrade(url)
    engine = create_engine(url)
    with Session(engine) as s, s.begin():
        app = s.scalars(select(Application).filter_by(sdk_app_id=make_app(s))).one()
        task = SendTask(account_id=app.account_id, app_id=app.id, name="t",
                        region="mainland", template_id=1, status="stopped")
        s.add(task)
        s.flush()
        task_id = task.id
    command.downgrade(migrate.alembic_config(url), "0028")
    with engine.begin() as conn:
        for row, status in [(1, "dispatched"), (2, "dispatched"), (3, "pending"),
                            (4, "pending")]:
            conn.execute(text(
                "INSERT INTO send_task_recipient (task_id, row_no, phone_number, iso_code, "
                "params, fee, status) VALUES (:t, :r, '+8613800138000', 'CN', '[]', 1, :s)"),
                {"t": task_id, "r": row, "s": status})
    command.upgrade(migrate.alembic_config(url), "head")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT row_no FROM send_task_recipient ORDER BY row_no")
                            ).scalars().all() == [3, 4]
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert [d for d in diff if "send_task_recipient" in repr(d)] == []
    command.downgrade(migrate.alembic_config(url), "0028")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT row_no, status FROM send_task_recipient "
                                 "ORDER BY row_no")).all() == [(3, "pending"), (4, "pending")]
    engine.dispose()
