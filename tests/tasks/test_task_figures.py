"""A task's figures (send_task_figure) against its messages when retention purged some
of them, and their locks beside the statistics rollups'. Found by an outside review
of the change that added them."""

from __future__ import annotations

import threading
import time
from collections import namedtuple
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app import migrate
from app.db import utcnow
from app.models import Application, Message, SendTask, SendTaskRecipient
from app.services import retention, rollups, tasks
from tests.conftest import Backend
from tests.helpers import make_app, root_ctx
from tests.sending.conftest import Shop
from tests.tasks.test_task_service import create, csv_of

RETENTION = timedelta(days=60)  # the default MESSAGE_RETENTION_DAYS


def test_records_total_agrees_with_the_rows_after_retention(shop: Shop,
                                                            session: Session) -> None:
    """The figures keep purged messages, as the statistics do; the records page lists
    messages still stored: its total must be theirs ("10 record(s)" over an empty
    table before the fix)."""
    task = create(shop, csv_of(10))
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    assert tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=10).converted == 10
    long_ago = utcnow() - RETENTION - timedelta(days=1)
    session.execute(update(SendTask).values(created_at=long_ago))
    session.execute(update(Message).values(created_at=long_ago))
    assert retention.purge_batch(session, utcnow() - RETENTION) == 10
    _t, rows, total = tasks.records(shop.ctx, task.id, status="", limit=50)
    assert (len(rows), total) == (0, 0)
    _t, rows, total = tasks.records(shop.ctx, task.id, status="delivered", limit=50)
    assert (len(rows), total) == (0, 0)


def test_recipients_left_of_a_sending_task_whose_messages_were_purged(
        empty_db_url: str) -> None:
    """Migration 0030 counted the messages there were: for a task still sending whose
    first messages were already purged, valid rows less figures overstated what was
    left (26 for 20)."""
    migrate.upgrade(empty_db_url)
    engine = create_engine(empty_db_url)
    long_ago = utcnow() - RETENTION - timedelta(days=1)
    with Session(engine) as s, s.begin():
        app = s.scalars(select(Application).filter_by(sdk_app_id=make_app(s))).one()
        task = SendTask(account_id=app.account_id, app_id=app.id, name="t",
                        region="mainland", template_id=1, status="sending", valid_rows=30,
                        total_rows=30, created_at=long_ago, started_at=long_ago)
        s.add(task)
        s.flush()
        task_id = task.id
        s.add_all(SendTaskRecipient(task_id=task_id, row_no=row, phone_number="+8613800138000",
                                    iso_code="CN", params=[], fee=1) for row in range(11, 31))
        s.add_all(Message(account_id=app.account_id, app_id=app.id, serial_no=f"s{n}",
                          request_id="r", region="mainland", phone_number="+8613800138000",
                          iso_code="CN", content="x", encoding="UCS2", fee=1,
                          status="delivered", sms_type="notification", task_id=task_id,
                          created_at=long_ago + timedelta(days=1 if n < 6 else 2),
                          receipt_at=long_ago, carrier_code="DELIVRD") for n in range(10))
    with Session(engine) as s, s.begin():  # retention took the first 6
        s.execute(text("DELETE FROM message WHERE created_at < :cut"),
                  {"cut": long_ago + timedelta(days=1, hours=12)})
    command.downgrade(migrate.alembic_config(empty_db_url), "0029")
    command.upgrade(migrate.alembic_config(empty_db_url), "head")
    with Session(engine) as s:
        t = s.get(SendTask, task_id)
        assert t is not None
        assert tasks.progress_of(root_ctx(s), [t])[task_id].remaining == 20
    engine.dispose()


def _moved(shop: Shop, task_id: int, old: str, new: str) -> rollups.Tally:
    """One message of `task_id` moved old → new; every task's messages here share the
    same rollup rows (same hour, application, template)."""
    m = dict(created_at=utcnow(), account_id=shop.app.account_id, app_id=shop.app.id,
             region="mainland", iso_code="CN", signature_id=shop.signatures["mainland"],
             template_id=shop.templates["mainland"], sms_type="notification", fee=1,
             content="x", receipt_at=None, error_code=None, carrier_code=None,
             task_id=task_id, attempt_id=None, id=1)
    old_row = namedtuple("old_row", [*m, "status"])  # type: ignore[misc]
    new_row = namedtuple("new_row", ["id", "status", "receipt_at", "error_code",
                                     "carrier_code"])
    return rollups.moved_tally({1: old_row(**m, status=old)},
                               [new_row(1, new, None, None, None)])


def test_two_flushes_in_one_transaction_never_deadlock_with_a_lane(
        shop: Shop, session: Session, backend: Backend) -> None:
    """The sweeper resolves expired attempts of two tasks in one transaction, a flush
    each; a lane of the second task flushes once meanwhile. With the figures upserted
    before the rollups, the sweeper held the rollup rows and wanted task 2's figures
    while the lane held those and waited on the rollup rows: a deadlock."""
    if backend.name != "postgresql":
        pytest.skip("row locks: SQLite has one writer")
    one, two = (create(shop, csv_of(3)) for _ in range(2))
    session.commit()
    sweep = [_moved(shop, one.id, "submitting", "unknown"),
             _moved(shop, two.id, "submitting", "unknown")]
    lane = _moved(shop, two.id, "accepted", "submitted")
    errors: list[BaseException] = []
    a, b = backend.db.sessions(), backend.db.sessions()
    b_pid = b.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one()

    def lane_flush() -> None:
        try:
            rollups.flush(b, lane)
            b.commit()
        except OperationalError as exc:
            errors.append(exc)
            b.rollback()

    try:
        rollups.flush(a, sweep[0])
        thread = threading.Thread(target=lane_flush)
        thread.start()
        deadline = time.monotonic() + 10
        with backend.db.engine.connect() as watch:  # until the lane waits on a lock
            while not watch.exec_driver_sql(
                    f"SELECT wait_event_type = 'Lock' FROM pg_stat_activity "
                    f"WHERE pid = {int(b_pid)}").scalar():
                assert time.monotonic() < deadline, "the lane never waited"
                time.sleep(0.01)
        try:
            rollups.flush(a, sweep[1])
            a.commit()
        except OperationalError as exc:
            errors.append(exc)
            a.rollback()
        thread.join(10)
    finally:
        a.close()
        b.close()
    assert errors == []
