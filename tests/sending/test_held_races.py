"""The batch updates' state check on PostgreSQL is made on the rows rollups.snapshot
locked (pipeline._held), not in the UPDATE. These races hold the rows in a second
transaction, change them and commit while ours waits in snapshot's blocking SELECT
... FOR UPDATE (READ COMMITTED: it then reads the rows as committed): a straggler
from an expired attempt records nothing over a new claim or a purge, corrects
`unknown`, and a receipt never overwrites a final state. (From an outside review.)"""
from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.gateways.base import Receipt, SubmitResult
from app.models import Message
from app.services import pipeline, retention
from app.services.pipeline import PipelineSettings
from tests.conftest import Backend
from tests.helpers import claim_handed
from tests.sending.conftest import Shop
from tests.stats.expected import agree

A, B = "a" * 32, "b" * 32
S = PipelineSettings(lease_s=30)


def _accepted(shop: Shop, session: Session, n: int = 2) -> list[int]:
    shop.send(["+14155550101", "+14155550103"][:n])
    session.commit()
    shop.ctx.deferred.clear()
    return list(session.scalars(select(Message.id).where(Message.status == "accepted")
                                .order_by(Message.id)))


def _behind(backend: Backend, holder: Session, work: Any) -> dict[str, Any]:
    """Run `work` in a transaction of its own on a thread until it waits on the row
    locks `holder` keeps; then commit `holder` and let it finish. Its result ("value")
    or exception ("error")."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            with backend.db.unit_of_work() as s:
                out["value"] = work(s)
        except BaseException as exc:  # reported by the test's assertions
            out["error"] = exc
    t = threading.Thread(target=run)
    t.start()
    deadline = time.monotonic() + 10
    with backend.db.engine.connect() as conn:
        while not conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")).scalar():
            assert time.monotonic() < deadline and t.is_alive(), out
            conn.rollback()
            time.sleep(0.02)
    holder.commit()
    holder.close()
    t.join(10)
    return out


def _rows(session: Session) -> dict[int, tuple[Any, ...]]:
    session.expire_all()
    return {r.id: (r.status, r.attempt_id, r.gateway_message_id)
            for r in session.execute(select(Message.id, Message.status, Message.attempt_id,
                                            Message.gateway_message_id))}


class _Never:
    name = "never"

    def lookup(self, batch: list[Any]) -> list[None]:
        return [None] * len(batch)


def _pg(backend: Backend) -> None:
    if backend.name != "postgresql":
        pytest.skip("row locks: PostgreSQL")


def _expire(backend: Backend) -> None:
    with backend.db.unit_of_work() as s:
        s.execute(update(Message).where(Message.status == "submitting")
                  .values(lease_until=utcnow() - timedelta(seconds=1)))


def _claimed_by_a(shop: Shop, session: Session, backend: Backend) -> list[int]:
    """Two accepted messages, claimed by attempt A (committed); PostgreSQL only."""
    _pg(backend)
    ids = _accepted(shop, session)
    with backend.db.unit_of_work() as s:
        assert len(claim_handed(s, A, S)) == 2
    return ids


def _late(backend: Backend, holder: Session, ids: list[int],
          receipts: bool = False) -> dict[str, Any]:
    """Attempt A's results for `ids` (with their receipts), recorded while `holder`
    keeps the rows locked, then commits (`_behind`)."""
    return _behind(backend, holder, lambda s: pipeline.record_submissions(s, A, [
        SubmitResult(i, True, f"late-{i}", receipt=Receipt(
            True, "DELIVRD", gateway_id=f"late-{i}") if receipts else None) for i in ids]))


def test_straggler_waits_behind_a_release_and_a_new_claim(shop: Shop, session: Session,
                                                          backend: Backend) -> None:
    ids = _claimed_by_a(shop, session, backend)
    _expire(backend)
    sweeper = backend.db.sessions()
    rep = pipeline.resolve_expired(sweeper, _Never())
    assert rep.requeued == 2
    assert len(claim_handed(sweeper, B, S)) == 2  # same tx: now held by B
    out = _late(backend, sweeper, ids)
    assert out == {"value": 0}
    assert all(v == ("submitting", B, None) for v in _rows(session).values())
    agree(session)


def test_straggler_waits_behind_unknown_then_corrects_it(shop: Shop, session: Session,
                                                         backend: Backend) -> None:
    ids = _claimed_by_a(shop, session, backend)
    _expire(backend)
    sweeper = backend.db.sessions()
    assert pipeline.resolve_expired(sweeper, object()).unknown == 2
    out = _late(backend, sweeper, ids)
    assert out == {"value": 2}
    assert {v[0] for v in _rows(session).values()} == {"submitted"}
    agree(session)


def test_straggler_waits_behind_retention(shop: Shop, session: Session,
                                          backend: Backend) -> None:
    ids = _claimed_by_a(shop, session, backend)
    purger = backend.db.sessions()
    assert retention.purge_batch(purger, utcnow() + timedelta(days=1)) == 2
    out = _late(backend, purger, ids, receipts=True)
    assert out == {"value": 0}, out
    assert _rows(session) == {}


def test_receipt_applier_waits_behind_a_straggler_marking_failed(
        shop: Shop, session: Session, backend: Backend) -> None:
    """A receipt for a submitted message waits while another transaction moves the
    row out of the appliable states; it must not overwrite that."""
    _pg(backend)
    ids = _accepted(shop, session, 1)
    with backend.db.unit_of_work() as s:
        claim_handed(s, A, S)
        pipeline.record_submissions(s, A, [SubmitResult(ids[0], True, "g1")])
        pipeline.add_receipts(s, [(Receipt(True, "DELIVRD", gateway_id="g1"), None, 0)])
    other = backend.db.sessions()
    # another applier takes a FAILED receipt first (its own inbox row)
    other.execute(text("UPDATE message SET status='failed', error_code='X', "
                       "receipt_at=now() WHERE id=:i"), {"i": ids[0]})
    out = _behind(backend, other, lambda s: pipeline.apply_receipts(s))
    assert out["value"][0] == [], out
    assert _rows(session)[ids[0]][0] == "failed"
