"""Records older than the retention are purged in batches; the rollups stay."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app import create_app
from app.db import utcnow
from app.models import Message, Reply, StatRollup
from app.services import replies, retention
from jobs import retention as retention_job
from jobs import runtime
from tests.conftest import Backend
from tests.sending.conftest import Shop


@pytest.fixture
def flask_app(backend: Backend, session: Session, tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "MESSAGE_RETENTION_DAYS": 60})
    runtime.use(app)
    yield app
    app.extensions["db"].engine.dispose()


def test_old_records_go_in_batches_and_rollups_stay(shop: Shop, session: Session,
                                                    flask_app: Flask) -> None:
    shop.send([f"+1415555{n:04d}" for n in range(7)])
    replies.receive(shop.ctx, "+14155550000", "hello")
    replies.receive(shop.ctx, "+14155550001", "recent")
    session.flush()
    old = utcnow() - timedelta(days=61)
    first_five = select(Message.id).order_by(Message.id).limit(5).scalar_subquery()
    session.execute(update(Message).where(Message.id.in_(first_five)).values(created_at=old))
    session.execute(update(Reply).where(Reply.text == "hello").values(received_at=old))
    session.commit()
    counted = session.scalar(select(func.sum(StatRollup.count)))
    assert retention.purge_batch(session, utcnow() - timedelta(days=60), batch=2) == 3
    session.commit()
    assert session.scalar(select(func.count()).select_from(Message)) == 5
    assert retention_job.purge() == 3  # the rest, batch after batch
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Message)) == 2
    assert [r.text for r in session.scalars(select(Reply))] == ["recent"]
    assert session.scalar(select(func.sum(StatRollup.count))) == counted == 7
    # The next run is scheduled, and a worker start does not start a second chain.
    conn = flask_app.extensions["redis"]
    assert conn.get(retention_job.CHAIN_KEY) is not None
    from rq import Queue

    assert Queue("default", connection=conn).scheduled_job_registry.count == 1
    retention_job.ensure_scheduled()
    assert Queue("default", connection=conn).scheduled_job_registry.count == 1
