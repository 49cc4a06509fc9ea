"""Migration 0030: the tasks there are get their figures counted once, from their
messages, as the rollups would have kept them."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, delete, select
from sqlalchemy.orm import Session

from app import migrate
from app.db import Base, utcnow
from app.models import Application, Message, SendTask, SendTaskFigure
from tests.helpers import make_app
from tests.stats import expected


@pytest.fixture
def url(empty_db_url: str) -> str:
    return empty_db_url


def test_figures_of_the_tasks_there_are(url: str) -> None:
    migrate.upgrade(url)
    engine = create_engine(url)
    with Session(engine) as s, s.begin():
        app = s.scalars(select(Application).filter_by(sdk_app_id=make_app(s))).one()
        tasks = [SendTask(account_id=app.account_id, app_id=app.id, name=f"t{n}",
                          region="mainland", template_id=1, status="sent") for n in range(2)]
        s.add_all(tasks)
        s.flush()
        one, two = (t.id for t in tasks)
        rows = [(one, "delivered", True, "DELIVRD"), (one, "delivered", True, ""),
                (one, "failed", True, "UNDELIV"), (one, "failed", False, "X"),
                (two, "submitting", False, None), (two, "accepted", False, None),
                (two, "unknown", False, None), (None, "delivered", True, "DELIVRD")]
        for n, (task_id, status, receipt, carrier) in enumerate(rows):
            s.add(Message(account_id=app.account_id, app_id=app.id, serial_no=f"s{n}",
                          request_id="r", region="mainland", phone_number="+8613800138000",
                          iso_code="CN", content="x", encoding="UCS2", fee=1, status=status,
                          sms_type="notification", created_at=utcnow(), task_id=task_id,
                          receipt_at=utcnow() if receipt else None, carrier_code=carrier))
        s.flush()
        s.execute(delete(SendTaskFigure))  # as before the revision: only the messages
    command.downgrade(migrate.alembic_config(url), "0029")
    command.upgrade(migrate.alembic_config(url), "head")
    with Session(engine) as s:
        assert expected.figures(s) == expected.figures_direct(s)
        assert expected.figures(s)[(two, "accepted", "")] == 2
        assert expected.figures(s)[(one, "failed", "UNDELIV")] == 1
        diff = compare_metadata(MigrationContext.configure(s.connection()), Base.metadata)
        assert [d for d in diff if "send_task_figure" in repr(d)] == []
    command.downgrade(migrate.alembic_config(url), "0029")
    engine.dispose()
