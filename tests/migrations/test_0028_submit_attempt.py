"""Migration 0028: the hand-over table. Batches in flight during the upgrade count as
handed over (they may have reached the carrier): the sweeper asks about them, as
before, and never resends them blindly."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.orm import Session

from app import migrate
from app.db import Base, utcnow
from app.models import Application, Message
from app.services import pipeline
from tests.helpers import make_app


@pytest.fixture
def url(empty_db_url: str) -> str:
    return empty_db_url


def test_batches_in_flight_at_the_upgrade_count_as_handed_over(url: str) -> None:
    migrate.upgrade(url)
    engine = create_engine(url)
    with Session(engine) as s, s.begin():
        app = s.scalars(select(Application).filter_by(sdk_app_id=make_app(s))).one()
        for n, (status, attempt) in enumerate([("submitting", "a" * 32),
                                               ("submitting", "a" * 32),
                                               ("submitted", "b" * 32)]):
            s.add(Message(account_id=app.account_id, app_id=app.id, serial_no=f"s{n}",
                          request_id="r", region="international", phone_number="+14155550100",
                          iso_code="US", content="x", encoding="GSM", fee=1, status=status,
                          sms_type="verification", created_at=utcnow(), attempt_id=attempt))
    command.downgrade(migrate.alembic_config(url), "0027")
    command.upgrade(migrate.alembic_config(url), "head")
    with engine.connect() as conn:
        assert conn.execute(text("SELECT attempt_id, handed FROM submit_attempt")).all() == [
            ("a" * 32, True)]
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert [d for d in diff if "submit_attempt" in repr(d)] == []
    with Session(engine) as s, s.begin():
        s.execute(update(Message).values(lease_until=None))
        assert pipeline.fenced(s, {"a" * 32}) == set()  # asked about, not resent
        assert s.scalar(select(Message.status).order_by(Message.id).limit(1)) == "submitting"
    command.downgrade(migrate.alembic_config(url), "0027")
    engine.dispose()
