"""Migration 0026 and the claim's plan: the drainer's queue is a partial index of the
accepted rows, and a claim runs its pick once, whatever the planner's statistics say.

The trap it closes (PostgreSQL): in steady state almost no row is accepted when
statistics are taken, so the planner expects none, and `id IN (pick ... FOR UPDATE
SKIP LOCKED LIMIT 1000)` became a nested-loop semi join that ran the pick once per
claimed row. The claim here is explained exactly as `pipeline.claim` sends it."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from app import migrate
from app.models import Application
from app.services import pipeline
from app.services.pipeline import PipelineSettings
from tests.helpers import explained, make_app
from tests.migrations.indexes import check_comes_and_goes

NAME = "ix_message_accepted"


def test_the_index_comes_and_goes_with_the_migration(empty_db_url: str) -> None:
    check_comes_and_goes(empty_db_url, NAME, "accepted", "0025")


def _fill(s: Session, app_id: int, delivered: int, accepted: int) -> None:
    cols = ("account_id, app_id, serial_no, request_id, region, phone_number, iso_code, "
            "content, encoding, fee, status, sms_type, created_at")
    for status, n in (("delivered", delivered), ("accepted", accepted)):
        s.execute(text(
            f"INSERT INTO message ({cols}) SELECT a.account_id, a.id, "
            f"'{status}-' || g, 'r', 'international', '+14155550100', 'US', 'x', 'GSM', 1, "
            f"'{status}', 'verification', now() FROM application a, generate_series(1, :n) g "
            "WHERE a.id = :app"), {"n": n, "app": app_id})


def test_a_claim_runs_its_pick_once_when_statistics_expect_no_waiting_row(
        empty_db_url: str) -> None:
    url = empty_db_url
    migrate.upgrade(url)
    engine = create_engine(url)
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no FOR UPDATE: its claim is IN (pick), serialised")
    with Session(engine) as s, s.begin():
        app_id = s.scalars(select(Application.id).filter_by(sdk_app_id=make_app(s))).one()
        _fill(s, app_id, delivered=20_000, accepted=0)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE message"))  # steady state: nothing waiting
    with Session(engine) as s, s.begin():
        _fill(s, app_id, delivered=0, accepted=1_000)  # a burst, not yet analyzed
    plans = explained(engine, "UPDATE message")
    with Session(engine) as s, s.begin():
        claimed = pipeline.claim(s, "a" * 32, PipelineSettings())
    engine.dispose()
    assert len(claimed) == 1_000
    [plan] = plans
    assert "InitPlan" in plan and "Semi Join" not in plan, plan  # run once, not per row
    assert NAME in plan, plan  # the queue's own index picks the rows
