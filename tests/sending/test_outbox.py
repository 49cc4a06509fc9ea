"""The outbox rules of app/services/pipeline.py, one fault at a time, in process.

Real SQLite/PostgreSQL and Redis; the simulator (with its on-disk ledger, the
carrier's own record of what it took) is the only stand-in.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.gateways.base import Outbound, SubmitResult
from app.gateways.simulator import SimulatorGateway
from app.models import Message, ReceiptInbox
from app.services import pipeline
from app.services.pipeline import PipelineSettings
from jobs import sending as sending_job
from tests.sending.conftest import Shop

SETTINGS = PipelineSettings(lease_s=30)


def _accepted(shop: Shop, session: Session, numbers: list[str]) -> list[int]:
    shop.send(numbers)
    session.commit()
    shop.ctx.deferred.clear()
    return list(session.scalars(select(Message.id).where(Message.status == "accepted")
                                .order_by(Message.id)))


def _states(session: Session) -> dict[int, str]:
    session.expire_all()
    return dict(session.execute(select(Message.id, Message.status)).all())  # type: ignore[arg-type]


def _expire_leases(session: Session) -> None:
    session.execute(update(Message).where(Message.status == "submitting")
                    .values(lease_until=utcnow() - timedelta(seconds=1)))
    session.commit()


def test_a_claim_returns_only_the_rows_it_moved(shop: Shop, session: Session,
                                                runner: Flask) -> None:
    ids = _accepted(shop, session, ["+14155550101", "+14155550103"])
    with runner.extensions["db"].unit_of_work() as s:
        first = pipeline.claim(s, "a" * 32, SETTINGS, ids)
    with runner.extensions["db"].unit_of_work() as s:
        again = pipeline.claim(s, "b" * 32, SETTINGS, ids)  # a retried job, same ids
        anything = pipeline.claim(s, "c" * 32, SETTINGS)  # a drainer, any rows
    assert [c.id for c in first] == ids and again == [] and anything == []
    rows = session.execute(select(Message.attempt_id, Message.lease_until)).all()
    assert {r.attempt_id for r in rows} == {"a" * 32} and all(r.lease_until for r in rows)


def test_results_are_recorded_only_under_the_claiming_attempt(shop: Shop, session: Session,
                                                               runner: Flask) -> None:
    [mid] = _accepted(shop, session, ["+14155550104"])
    with runner.extensions["db"].unit_of_work() as s:
        pipeline.claim(s, "a" * 32, SETTINGS)
    with runner.extensions["db"].unit_of_work() as s:
        stale = pipeline.record_submissions(s, "z" * 32, [SubmitResult(mid, True, "gw-1")])
        mine = pipeline.record_submissions(s, "a" * 32, [SubmitResult(mid, True, "gw-2")])
    assert (stale, mine) == (0, 1)
    assert session.scalar(select(Message.gateway_message_id)) == "gw-2"


def test_a_worker_killed_after_the_carrier_took_the_batch_is_resolved_not_resent(
    shop: Shop, session: Session, runner: Flask
) -> None:
    ids = _accepted(shop, session, ["+14155550101", "+14155550103", "+14155550102"])
    gateway: SimulatorGateway = runner.extensions["gateway"]
    with runner.extensions["db"].unit_of_work() as s:
        batch = pipeline.outbound(s, pipeline.claim(s, "a" * 32, SETTINGS), "a" * 32)
    with runner.extensions["db"].unit_of_work() as s:
        assert pipeline.hand_over(s, "a" * 32, batch[0].message_id)
    gateway.submit(batch)  # ... and the worker dies before recording anything
    _expire_leases(session)
    report = sending_job.sweep_once(runner)
    assert report.resolved_sent == 3 and report.requeued == 0
    sending_job.apply_receipts()
    states = _states(session)
    assert [states[i] for i in ids] == ["delivered", "failed", "failed"]
    assert gateway.ledger.counts() == dict.fromkeys(ids, 1)  # nothing sent twice


def test_an_attempt_the_carrier_never_saw_is_fenced_and_sent_once(
    shop: Shop, session: Session, runner: Flask
) -> None:
    [mid] = _accepted(shop, session, ["+14155550101"])
    gateway: SimulatorGateway = runner.extensions["gateway"]
    with runner.extensions["db"].unit_of_work() as s:
        straggler = pipeline.outbound(s, pipeline.claim(s, "a" * 32, SETTINGS), "a" * 32)
    with runner.extensions["db"].unit_of_work() as s:
        assert pipeline.hand_over(s, "a" * 32, mid)
    _expire_leases(session)  # the first worker hangs past its lease, about to call
    assert sending_job.sweep_once(runner).requeued == 1
    assert _states(session)[mid] == "accepted"
    assert sending_job.drain() == 1  # a live worker sends it
    [late] = gateway.submit(straggler)  # the hung worker wakes up: refused by the fence
    assert not late.accepted and late.carrier_code == "FENCED"
    assert gateway.ledger.counts() == {mid: 1}
    sending_job.apply_receipts()
    assert _states(session)[mid] == "delivered"


class _Blind:
    """A gateway that cannot be asked what became of an attempt (like SMPP)."""

    name = "blind"

    def submit(self, batch: list[Outbound]) -> list[SubmitResult]:
        raise AssertionError("nothing may be resent")


def _callbacks_queued(runner: Flask) -> list[int]:
    from rq import Queue

    jobs = Queue("default", connection=runner.extensions["redis"]).jobs
    return sorted(j.args[0] for j in jobs if j.func_name == "jobs.callbacks.status")


def test_an_expired_lease_nobody_can_resolve_ends_unknown(shop: Shop, session: Session,
                                                          runner: Flask) -> None:
    shop.app.status_callback_url = "http://127.0.0.1:9/receipts"
    [mid] = _accepted(shop, session, ["+14155550101"])
    with runner.extensions["db"].unit_of_work() as s:
        pipeline.claim(s, "a" * 32, SETTINGS)
    with runner.extensions["db"].unit_of_work() as s:
        assert pipeline.hand_over(s, "a" * 32, mid)  # ... and the link dropped mid-write
    _expire_leases(session)
    runner.extensions["gateway"] = _Blind()
    assert sending_job.sweep_once(runner).unknown == 1
    m = session.get(Message, mid)
    session.refresh(m)
    assert (m.status, m.error_code) == ("unknown", "FailedOperation.OutcomeUnknown")
    assert _callbacks_queued(runner) == [mid]  # found from outside: none was posted
    # A late, real result from the same attempt still corrects it.
    with runner.extensions["db"].unit_of_work() as s:
        assert pipeline.record_submissions(s, "a" * 32, [SubmitResult(mid, True, "g")]) == 1


def test_a_worker_killed_between_its_claim_and_its_call_is_sent_again(
    shop: Shop, session: Session, runner: Flask
) -> None:
    """Even by a gateway that cannot be asked (SMPP): nothing reached it, and the
    missing hand-over says so."""
    [mid] = _accepted(shop, session, ["+14155550101"])
    with runner.extensions["db"].unit_of_work() as s:
        straggler = pipeline.outbound(s, pipeline.claim(s, "a" * 32, SETTINGS), "a" * 32)
    _expire_leases(session)  # ... the worker died before handing the batch over
    gateway = runner.extensions["gateway"]
    runner.extensions["gateway"] = _Blind()
    assert sending_job.sweep_once(runner).requeued == 1
    assert _states(session)[mid] == "accepted"
    runner.extensions["gateway"] = gateway
    assert sending_job.drain() == 1
    # Had it only hung, it wakes up fenced: it may not hand the batch over any more.
    sending_job.submit_claimed(runner, SETTINGS, "a" * 32, straggler)
    assert gateway.ledger.counts() == {mid: 1}
    sending_job.apply_receipts()
    assert _states(session)[mid] == "delivered"


def test_a_fence_and_a_hand_over_exclude_each_other(shop: Shop, session: Session,
                                                     runner: Flask) -> None:
    ids = _accepted(shop, session, ["+14155550101", "+14155550103"])
    with runner.extensions["db"].unit_of_work() as s:
        first = pipeline.claim(s, "a" * 32, SETTINGS, ids[:1])
        second = pipeline.claim(s, "b" * 32, SETTINGS, ids[1:])
    with runner.extensions["db"].unit_of_work() as s:
        assert pipeline.hand_over(s, "a" * 32, first[0].id)
        assert pipeline.fenced(s, {"a" * 32, "b" * 32}) == {"b" * 32}
        assert not pipeline.hand_over(s, "b" * 32, second[0].id)
        assert pipeline.hand_over(s, "a" * 32, first[0].id) is False  # once
    # Rows no message is held under any more go; the others stay.
    with runner.extensions["db"].unit_of_work() as s:
        pipeline.release(s, "b" * 32, [second[0].id])
        later = utcnow() + timedelta(seconds=pipeline.ATTEMPT_KEEP_S + 1)
        assert pipeline.prune_attempts(s, later) == 1
        assert pipeline.fenced(s, {"a" * 32}) == set()  # still handed, still kept


def test_no_receipt_within_the_validity_period_ends_no_receipt(
    shop: Shop, session: Session, runner: Flask
) -> None:
    shop.app.status_callback_url = "http://127.0.0.1:9/receipts"
    ids = _accepted(shop, session, ["+14155550104", "+14155550101"])  # silent, delivered
    sending_job.drain()
    sending_job.apply_receipts()
    assert _callbacks_queued(runner) == [ids[1]]
    session.execute(update(Message).values(submitted_at=utcnow() - timedelta(hours=73)))
    session.commit()
    assert sending_job.sweep_once(runner).expired == 1
    assert _callbacks_queued(runner) == sorted(ids)  # found from outside: none was posted
    states = _states(session)
    assert [states[i] for i in ids] == ["no_receipt", "delivered"]
    assert session.scalar(select(Message.error_code).where(Message.id == ids[0])) == (
        "FailedOperation.NoReceipt")


def test_a_receipt_that_overtakes_its_submission_waits_for_it(
    shop: Shop, session: Session, runner: Flask
) -> None:
    from app.gateways.base import Receipt

    [mid] = _accepted(shop, session, ["+14155550104"])
    with runner.extensions["db"].unit_of_work() as s:
        pipeline.claim(s, "a" * 32, SETTINGS)
    sending_job.store_receipts(runner, [Receipt(True, "DELIVRD", gateway_id="gw-9")])
    assert sending_job.apply_receipts() == 0
    assert session.scalar(select(ReceiptInbox.id)) is not None  # kept, not lost
    with runner.extensions["db"].unit_of_work() as s:
        pipeline.record_submissions(s, "a" * 32, [SubmitResult(mid, True, "gw-9")])
    session.execute(update(ReceiptInbox).values(due_at=utcnow()))
    session.commit()
    assert sending_job.apply_receipts() == 1
    assert _states(session)[mid] == "delivered"
    session.expire_all()
    assert session.scalar(select(ReceiptInbox.id)) is None


def test_receipts_apply_in_batches_and_a_repeat_changes_nothing(
    shop: Shop, session: Session, runner: Flask
) -> None:
    numbers = [f"+1415555{n:04d}" for n in range(1000, 1150)]
    ids = _accepted(shop, session, numbers)
    runner.config["DRAIN_LINGER_MS"] = 0  # else it applies them itself (test_linger.py)
    sending_job.drain()
    assert session.scalar(select(ReceiptInbox.id).limit(1)) is not None
    assert sending_job.apply_receipts() == len(ids)
    from app.gateways.base import Receipt

    again: list[tuple[Any, int | None, float]] = [
        (Receipt(False, "UNDELIV", message_id=i), i, 0.0) for i in ids]
    with runner.extensions["db"].unit_of_work() as s:
        pipeline.add_receipts(s, again)
    assert sending_job.apply_receipts() == 0  # final states stay final
    states = _states(session)
    assert {states[i] for i in ids} == {"delivered"}


def test_the_carriers_receipt_time_is_kept(shop: Shop, session: Session,
                                           runner: Flask) -> None:
    from datetime import UTC, datetime

    from app.gateways.base import Receipt

    [mid] = _accepted(shop, session, ["+14155550104"])  # silent: we bring the receipt
    sending_job.drain()
    at = datetime(2026, 11, 24, 21, 30, 5, 123456, tzinfo=UTC)
    gid = session.scalar(select(Message.gateway_message_id))
    sending_job.store_receipts(runner, [Receipt(True, "DELIVRD", gateway_id=gid, at=at)])
    assert sending_job.apply_receipts() == 1
    session.expire_all()
    m = session.get(Message, mid)
    assert (m.status, m.receipt_at) == ("delivered", at)
