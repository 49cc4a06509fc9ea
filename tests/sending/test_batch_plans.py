"""A batch's results and receipts are written in time linear in the batch, whatever
the planner's statistics say (PostgreSQL).

The trap (measured in bench/pipeline_e2e.py with pg_stat_statements, #9): when
statistics were taken while almost no row was `submitting` (or `submitted`), the
planner expected one message row to match the batch's conditions, and joined it to
the batch's JSON as a nested loop with the JSON scan inside: the JSON was parsed once
per matching row and every pair compared, a million comparisons for a batch of 1,000
(215-357 ms per batch, half of PostgreSQL's time end to end). The batch is explained
here exactly as the pipeline sends it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app import migrate
from app.gateways.base import Receipt, SubmitResult
from app.models import Application, Message
from app.services import pipeline
from app.services.pipeline import PipelineSettings
from tests.helpers import explained, make_app

N = 1_000


def _fill(s: Session, app_id: int, status: str, n: int) -> None:
    """n messages in `status`; those past the pipeline as it leaves them (an attempt
    per batch of 1,000, a carrier id each)."""
    done = status != "accepted"
    cols = ("account_id, app_id, serial_no, request_id, region, phone_number, iso_code, "
            "content, encoding, fee, status, sms_type, created_at, attempt_id, "
            "gateway_message_id")
    s.execute(text(
        f"INSERT INTO message ({cols}) SELECT a.account_id, a.id, "
        f"left('{status}-' || g || '-' || md5(random()::text), 40), 'r', 'international', "
        f"'+14155550100', 'US', 'x', 'GSM', 1, '{status}', 'verification', now(), "
        f"{'md5((g / 1000)::text)' if done else 'NULL'}, "
        f"{'md5(random()::text)' if done else 'NULL'} "
        "FROM application a, generate_series(1, :n) g WHERE a.id = :app"),
        {"n": n, "app": app_id})


@pytest.fixture
def engine(empty_db_url: str) -> Any:
    migrate.upgrade(empty_db_url)
    engine = create_engine(empty_db_url)
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's planner drives these updates by the primary key")
    yield engine
    engine.dispose()


def _steady_state(engine: Engine) -> int:
    """20,000 delivered messages and a few in flight, analyzed. Then a burst of N
    accepted ones, which the planner does not know of."""
    with Session(engine) as s, s.begin():
        app_id = s.scalars(select(Application.id).filter_by(sdk_app_id=make_app(s))).one()
        _fill(s, app_id, "delivered", 20_000)
        _fill(s, app_id, "submitting", 50)  # the tails of batches in flight
        _fill(s, app_id, "submitted", 50)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE message"))
    with Session(engine) as s, s.begin():
        _fill(s, app_id, "accepted", N)
    return app_id


def _linear(plan: str) -> None:
    # The quadratic plan compares every pair: a "Join Filter" on the ids above a JSON
    # scan run once per message row. A plan that scans every in-flight row by the
    # status index and hashes them is linear in the backlog, not in the batch.
    assert "Join Filter" not in plan, plan
    assert "Index Cond: (id = j.id)" in plan, plan  # each batch row finds its message


def test_a_batch_of_results_is_recorded_without_comparing_every_pair(engine: Engine) -> None:
    _steady_state(engine)
    with Session(engine) as s, s.begin():
        claimed = pipeline.claim(s, "a" * 32, PipelineSettings(batch=N))
    assert len(claimed) == N
    plans = explained(engine, "UPDATE message AS m")
    results = [SubmitResult(c.id, True, gateway_id=f"g-{c.id}") for c in claimed]
    with Session(engine) as s, s.begin():
        assert pipeline.record_submissions(s, "a" * 32, results) == N
    [plan] = plans
    _linear(plan)
    with Session(engine) as s:
        assert s.scalar(select(Message.id).where(Message.status == "submitting",
                                                 Message.attempt_id == "a" * 32)) is None


def test_a_batch_of_receipts_is_applied_without_comparing_every_pair(engine: Engine) -> None:
    _steady_state(engine)
    with Session(engine) as s, s.begin():
        claimed = pipeline.claim(s, "b" * 32, PipelineSettings(batch=N))
        pipeline.record_submissions(
            s, "b" * 32, [SubmitResult(c.id, True, gateway_id=f"g-{c.id}") for c in claimed])
    with Session(engine) as s, s.begin():
        pipeline.add_receipts(s, [(Receipt(True, "DELIVRD", gateway_id=f"g-{c.id}"), c.id, 0)
                                  for c in claimed])
    plans = explained(engine, "UPDATE message AS m")
    with Session(engine) as s, s.begin():
        changed, taken = pipeline.apply_receipts(s, limit=N)
    assert (len(changed), taken) == (N, N)
    [plan] = plans
    _linear(plan)
