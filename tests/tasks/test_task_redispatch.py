"""A batch dispatched again after its transaction died (a worker SIGKILLed before
the commit, a database error the job retries), and two dispatcher lanes meeting at
the end of a task: nothing is refused by its own earlier attempt, nothing is lost,
and the task is not `sent` while recipients are still waiting."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Message, SendTask, SendTaskRecipient
from app.services import app_config, tasks
from app.services.context import Ctx, Settings
from app.services.limits import Check
from tests.conftest import Backend
from tests.sending.conftest import Shop

ROWS = 5


def _task(shop: Shop, session: Session) -> SendTask:
    data = b"phone,code\n" + b"".join(b"1380013%04d,%d\n" % (i, 1000 + i)
                                      for i in range(ROWS))
    task, _ = tasks.create_task(shop.ctx, tasks.Draft(shop.app.sdk_app_id,
                                                      shop.templates["mainland"]),
                                io.BytesIO(data), "a.csv")
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    session.commit()
    return task


def _limits_on(shop: Shop, session: Session) -> None:
    """The product's defaults: one message of the same text per 30 s, two a day."""
    app_config.set_frequency(shop.ctx, shop.app.sdk_app_id,
                             {"30s": (True, 1), "hour": (False, 5), "day": (True, 2)})
    session.commit()


def _messages(session: Session, task: SendTask) -> list[tuple[str, str | None]]:
    return [(s, e) for s, e in session.execute(
        select(Message.status, Message.error_code).where(Message.task_id == task.id))]


def test_a_batch_dispatched_again_after_a_rollback_keeps_its_reservations(
        shop: Shop, session: Session) -> None:
    _limits_on(shop, session)
    task = _task(shop, session)
    first = tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=10)
    assert first.accepted == ROWS
    session.rollback()  # the worker died, or the database dropped, before the commit

    again = tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=10)
    session.commit()
    got = _messages(session, task)
    assert again.accepted == ROWS, got
    assert sorted(s for s, _e in got) == ["accepted"] * ROWS

    # Counted once: the day limit (2) leaves each number one more message today.
    redis = shop.limiter.conn
    day_keys = sorted(k for k in redis.scan_iter("smsops:freq:day:*"))
    assert len(day_keys) == ROWS
    assert {int(redis.get(k)) for k in day_keys} == {1}


def test_a_reservation_given_back_is_made_again(shop: Shop) -> None:
    """Released in the attempt that made it (refused after the limits, e.g. for
    credit), a reservation is not taken as still held by the next attempt; and once
    the batch committed, its markers are forgotten."""
    held = shop.limiter.holding("smsops:task:held:test")
    window = Check("smsops:freq:30s:test", "w", 1, 1, 30_000, "LimitExceeded.X", "S1")
    counter = Check("smsops:freq:day:test", "c", 5, 1, 60_000, "LimitExceeded.Y", "S1")
    assert held.reserve_many([[window, counter]], 1_000) == [None]
    assert held.reserve_many([[window, counter]], 2_000) == [None]  # held: not again
    assert int(held.conn.get(counter.key)) == 1
    held.release([window, counter])
    assert not held.conn.hexists("smsops:task:held:test", "S1")
    assert held.reserve_many([[window, counter]], 3_000) == [None]
    assert int(held.conn.get(counter.key)) == 1
    held.forget(["S1"])
    assert not held.conn.exists("smsops:task:held:test")
    # Another message of the same number and text is still refused by the window.
    other = Check(window.key, "w", 1, 1, 30_000, "LimitExceeded.X", "S2")
    assert held.reserve_many([[other]], 4_000) == [other]


def test_a_lane_does_not_settle_a_task_another_lane_is_converting(
        shop: Shop, session: Session, backend: Backend) -> None:
    if backend.name != "postgresql":
        pytest.skip("lanes skip each other's rows (SKIP LOCKED): PostgreSQL")
    task = _task(shop, session)
    lane1, lane0 = backend.db.sessions(), backend.db.sessions()
    try:
        held = tasks.dispatch_step(Ctx(lane1, tasks.system_actor(task), Settings()),
                                   shop.limiter, task.id, batch=10)
        assert held.converted == ROWS  # not committed yet
        other = tasks.dispatch_step(Ctx(lane0, tasks.system_actor(task), Settings()),
                                    shop.limiter, task.id, batch=10)
        lane0.commit()
        assert other.status == tasks.SENDING and other.converted == 0
        lane1.rollback()  # lane 1 dies: its recipients are pending again
    finally:
        lane1.close()
        lane0.close()
    session.expire_all()
    assert session.scalar(select(SendTask.status).where(SendTask.id == task.id)) == "sending"
    assert task.id in tasks.due_tasks(session)  # the sweeper drives it on
    assert session.scalar(select(func.count()).select_from(SendTaskRecipient).where(
        SendTaskRecipient.task_id == task.id)) == ROWS
