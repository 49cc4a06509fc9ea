"""The rollups equal a direct count over the message table, through every state
change the pipeline makes, when jobs are run twice, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import create_app
from app.gateways.simulator import SimulatorGateway
from app.models import Message, StatRollup
from app.queue import enqueue_deferred
from app.services import pipeline, rollups
from jobs import worker
from tests.conftest import Backend
from tests.helpers import claim_handed
from tests.sending.conftest import Shop
from tests.stats.expected import agree

# delivered, refused at submission, undelivered, never a receipt (simulator rules)
INTL = ["+14155550101", "+14155550102", "+14155550103", "+14155550104"]


@pytest.fixture
def runner(backend: Backend, session: Session, tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "SIMULATOR_RECEIPT_DELAY_S": 0})
    yield app
    app.extensions["db"].engine.dispose()


def _run(shop: Shop, session: Session, app: Flask) -> None:
    session.commit()
    enqueue_deferred(app.extensions["redis"], shop.ctx.deferred)
    shop.ctx.deferred.clear()
    assert worker.run(app, burst=True)
    session.expire_all()


def _agree(session: Session) -> None:
    session.expire_all()
    agree(session)  # every rollup table, the narrow ones too


def test_every_state_change_moves_its_count(shop: Shop, session: Session,
                                            runner: Flask) -> None:
    shop.send(INTL)
    shop.send(["+14155550101", "12", "+8613800000000"])  # delivered, bad number, mainland
    shop.send(["13800000001", "13800000002"], template="mainland")
    shop.send(INTL[:2], params=["x"])  # the parameter breaks the rules: refused
    _agree(session)  # before anything left: accepted and refused
    _run(shop, session, runner)
    _agree(session)  # submitted, refused by the carrier, receipts applied
    statuses = set(session.scalars(select(Message.status)))
    assert {"delivered", "failed", "submitted", "rejected"} <= statuses
    # Receipts never came: the sweeper ends them (no_receipt), a late one still lands.
    pipeline.sweep(session, SimulatorGateway(), pipeline.PipelineSettings(
        receipt_validity_s=-1))
    _agree(session)
    assert "no_receipt" in set(session.scalars(select(Message.status)))
    session.commit()


def test_unknown_then_corrected_and_released(shop: Shop, session: Session) -> None:
    shop.send(INTL)
    session.commit()
    gone = pipeline.PipelineSettings(lease_s=-1)  # every lease already expired
    attempt = pipeline.new_attempt()
    claimed = claim_handed(session, attempt, gone)
    assert len(claimed) == 4
    pipeline.resolve_expired(session, object())  # a gateway that cannot be asked
    assert set(session.scalars(select(Message.status))) == {"unknown"}
    _agree(session)
    gw = SimulatorGateway({"SIMULATOR_RECEIPT_DELAY_S": 0})
    results = gw.submit(pipeline.outbound(session, claimed[:3], attempt))
    pipeline.record_submissions(session, attempt, results)  # late results correct it
    pipeline.release(session, attempt, [claimed[3].id], (pipeline.SUBMITTING,
                                                          pipeline.UNKNOWN))
    _agree(session)
    pipeline.apply_receipts(session)
    _agree(session)
    session.commit()


def test_a_retried_job_never_counts_twice(shop: Shop, session: Session,
                                          runner: Flask) -> None:
    from jobs import runtime
    from jobs import sending as sending_job

    shop.send(INTL)
    session.commit()
    runtime.use(runner)
    ids = list(session.scalars(select(Message.id)))
    sending_job.submit(ids)
    sending_job.submit(ids)  # as if RQ ran the job again
    session.expire_all()
    gw = SimulatorGateway({"SIMULATOR_RECEIPT_DELAY_S": 0})
    again = gw.submit(pipeline.outbound(session, [pipeline.Claimed(
        m.id, m.phone_number, m.content, m.region, m.template_id, m.template_params,
        m.signature_id) for m in session.scalars(select(Message))], "stale"))
    pipeline.record_submissions(session, "stale", again)  # a straggler: changes nothing
    pipeline.apply_receipts(session)
    pipeline.apply_receipts(session)
    _agree(session)
    total = sum(r.count for r in session.scalars(select(StatRollup)))
    assert total == 4
    session.commit()


def test_rebuild_counts_what_is_there(shop: Shop, session: Session, runner: Flask) -> None:
    shop.send([*INTL, "nope"])
    _run(shop, session, runner)
    session.execute(update(StatRollup).values(count=99))  # damaged
    rollups.rebuild(session)
    _agree(session)
    session.commit()


def test_the_hour_is_the_utc_hour_of_creation() -> None:
    from datetime import UTC, datetime, timedelta, timezone

    late = datetime(2026, 3, 1, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=8)))
    assert rollups.hour_of(late) == datetime(2026, 3, 1, 15, tzinfo=UTC)


def test_the_day_is_the_accounts_local_day(shop: Shop, session: Session) -> None:
    """A send counts its daily rollups in the zone of the account it was checked with
    (settle hands the rollups that zone; they no longer read it)."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from app.models import Account, StatRollupDaily

    # A zone whose date differs from UTC's at the hour the test runs.
    zone = "Pacific/Kiritimati" if datetime.now(UTC).hour >= 12 else "Etc/GMT+12"  # +14, -12
    account = session.get(Account, shop.app.account_id)
    assert account is not None
    account.timezone = zone
    session.flush()
    shop.send(INTL[:2])
    created = session.scalars(select(Message.created_at)).first()
    assert created is not None
    local_day = created.astimezone(ZoneInfo(zone)).date()
    assert local_day != created.astimezone(UTC).date()
    days = set(session.scalars(select(StatRollupDaily.day)))
    assert days == {local_day}
    _agree(session)
    session.commit()


def test_a_new_time_zone_moves_past_days_with_it(shop: Shop, session: Session,
                                                 runner: Flask) -> None:
    """Found from outside: after the account's time zone changed, the daily rollups kept
    the days of the old zone, so "today", the last 7 days, the failure and receipt pages
    and the dashboard disagreed with the hourly figures and with the messages. 25 hours
    apart, the two zones never share a date."""
    from app.services import accounts

    def zone(name: str) -> None:
        accounts.update_settings(shop.ctx, account_type="enterprise", timezone=name,
                                 intl_daily_quota=100, reply_callback_url="",
                                 reply_callback_enabled=False)

    zone("Pacific/Kiritimati")  # UTC+14
    shop.send(INTL)
    shop.send(["13800000001"], template="mainland")
    _run(shop, session, runner)
    _agree(session)
    zone("Pacific/Pago_Pago")  # UTC-11
    session.commit()
    _agree(session)
    shop.send(INTL[:1])  # and new traffic lands on the new zone's day, with the old
    _run(shop, session, runner)
    _agree(session)


def test_a_batch_counted_by_the_old_zone_is_mended_a_minute_later(
        shop: Shop, session: Session, runner: Flask) -> None:
    """Found by a review: a batch that read the zone before the change committed counts
    by the old zone's date. The change comes back a minute later (a scheduled job) and
    counts the daily rollups again from the hourly ones."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from sqlalchemy import insert

    from app.db import utcnow
    from app.services import accounts
    from jobs import runtime
    from jobs import stats as stats_jobs

    def zone(name: str) -> None:
        accounts.update_settings(shop.ctx, account_type="enterprise", timezone=name,
                                 intl_daily_quota=100, reply_callback_url="",
                                 reply_callback_enabled=False)

    zone("Pacific/Kiritimati")
    shop.send(INTL[:1])
    shop.ctx.deferred.clear()
    zone("Pacific/Pago_Pago")
    job, args = shop.ctx.deferred[-1]
    assert job == "jobs.stats.rezone" and args[:2] == (shop.app.account_id, "Pacific/Pago_Pago")
    assert isinstance(args[2], datetime) and args[2] > utcnow()
    # A writer that read the old zone: its message lands on the old zone's date.
    first = session.scalars(select(Message)).first()
    row = {c.key: getattr(first, c.key) for c in Message.__table__.columns if c.key != "id"}
    row["serial_no"] = "late-1"
    session.execute(insert(Message), [row])
    rollups.count_new(session, [row], zones={shop.app.account_id: ZoneInfo("Pacific/Kiritimati")})
    session.commit()
    with pytest.raises(AssertionError):
        _agree(session)
    runtime.use(runner)
    stats_jobs.rezone(*args[:2])
    _agree(session)
