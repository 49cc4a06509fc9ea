"""pipeline.ask_carrier against concurrent change (a third review of it): two sweepers
never take the same rows, a new claim keeps its lease, a purged row undoes nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.gateways.base import Outbound, SubmitResult
from app.models import Message
from app.services import pipeline
from tests.conftest import Backend
from tests.helpers import claim_handed
from tests.sending.conftest import Shop

SETTINGS = pipeline.PipelineSettings()


class Asked:
    asks_again = True

    def __init__(self, during: Any = None, found: set[int] | None = None) -> None:
        self.asked: list[int] = []
        self.during = during
        self.found = found or set()

    def lookup(self, batch: list[Outbound]) -> list[SubmitResult | None]:
        self.asked += [m.message_id for m in batch]
        if self.during:
            self.during()
        return [SubmitResult(m.message_id, True, f"sn-{m.message_id}")
                if m.message_id in self.found else
                SubmitResult(m.message_id, False, None, "FailedOperation.OutcomeUnknown",
                             unknown=True) for m in batch]


def _expired(shop: Shop, session: Session, n: int) -> list[int]:
    shop.send([f"+1415555{7000 + i:04d}" for i in range(n)], params=["4321"])
    session.commit()
    claimed = claim_handed(session, pipeline.new_attempt(), SETTINGS)
    session.execute(update(Message).values(lease_until=utcnow() - timedelta(seconds=1)))
    session.commit()
    return [c.id for c in claimed]


def _unknown(shop: Shop, session: Session, n: int, age_s: float) -> list[int]:
    shop.send([f"+1415555{8000 + i:04d}" for i in range(n)], params=["4321"])
    session.commit()
    ids = list(session.scalars(select(Message.id).order_by(Message.id)))
    for i in ids:
        session.execute(update(Message).where(Message.id == i).values(
            status="unknown", attempt_id=pipeline.new_attempt(),
            submitted_at=utcnow() - timedelta(seconds=age_s), lease_until=None,
            error_code="FailedOperation.OutcomeUnknown"))
    session.commit()
    return ids


def test_two_sweepers_never_take_the_same_rows(shop: Shop, session: Session,
                                               backend: Backend) -> None:
    """Sweeper B runs a whole pass just before sweeper A's first UPDATE (the one that
    takes rows, transaction 1): A must not take (and ask Tencent about) the rows B
    took. (When rows were picked by a SELECT, which on SQLite ran outside any
    transaction, and taken by an UPDATE by primary key, A took them again.)"""
    ids = _expired(shop, session, 2)
    db = backend.db
    b, a = Asked(), Asked()
    ran = {"b": False}

    @contextmanager
    def work_a() -> Iterator[Session]:
        with db.unit_of_work() as s:
            execute = s.execute

            def hooked(stmt: Any, params: Any = None, *args: Any, **kw: Any) -> Any:
                if not ran["b"] and str(stmt).lstrip().startswith("UPDATE"):  # A's take
                    ran["b"] = True
                    pipeline.ask_carrier(db.unit_of_work, b, SETTINGS)
                return execute(stmt, params, *args, **kw)
            s.execute = hooked  # type: ignore[method-assign]
            yield s

    pipeline.ask_carrier(work_a, a, SETTINGS)
    assert ran["b"]
    twice = [i for i, n in Counter(a.asked + b.asked).items() if n > 1]
    assert not twice, f"{backend.name}: asked by both sweepers: {twice} (of {ids})"


def test_a_new_claim_keeps_its_lease(shop: Shop, session: Session, backend: Backend) -> None:
    """An unknown row 3 h old is taken (transaction 1). While Tencent is asked, the
    straggler of its attempt releases it (not_sent / GatewayUnavailable: states
    SUBMITTING, UNKNOWN) and a drainer claims it under a new attempt (lease 30 s).
    Transaction 3's `later` executemany overwrites that lease with the unknown row's
    back-off (1 h), unconditionally: a worker killed now is recovered an hour late."""
    [mid] = _unknown(shop, session, 1, age_s=3 * 3600)
    old = session.scalar(select(Message.attempt_id).where(Message.id == mid))
    db = backend.db
    new = pipeline.new_attempt()

    def straggler_then_drainer() -> None:
        with db.unit_of_work() as s:
            pipeline.release(s, old, [mid], ("submitting", "unknown"))
        with db.unit_of_work() as s:
            assert claim_handed(s, new, SETTINGS, [mid])

    pipeline.ask_carrier(db.unit_of_work, Asked(straggler_then_drainer), SETTINGS)
    session.expire_all()
    row = session.execute(select(Message.status, Message.attempt_id, Message.lease_until)
                          .where(Message.id == mid)).one()
    assert (row.status, row.attempt_id) == ("submitting", new)
    left = (row.lease_until - utcnow()).total_seconds()
    assert left <= SETTINGS.lease_s + 1, f"the new claim's lease was moved to {left:.0f} s"


def test_a_row_purged_meanwhile_does_not_undo_the_found_ones(
        shop: Shop, session: Session, backend: Backend) -> None:
    """Two unknown rows taken; while Tencent is asked, retention purges one (its
    created_at is past MESSAGE_RETENTION_DAYS). Tencent finds the other. The `later`
    executemany by primary key expects 2 rows, matches 1: StaleDataError, and
    transaction 3 (the found row's record and receipt) is rolled back."""
    keep, gone = _unknown(shop, session, 2, age_s=120)
    db = backend.db

    def purge() -> None:
        with db.unit_of_work() as s:
            s.execute(delete(Message).where(Message.id == gone))

    pipeline.ask_carrier(db.unit_of_work, Asked(purge, found={keep}), SETTINGS)
    session.expire_all()
    assert session.scalar(select(Message.status).where(Message.id == keep)) == "submitted"
