"""Migration 0027: the unknown rows the sweeper asks Tencent Cloud about are found by
a partial index, not by walking every unknown row ever (those past the receipt
validity stay unknown for good)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from app import migrate
from app.gateways.base import Outbound, SubmitResult
from app.models import Application
from app.services import pipeline
from tests.helpers import explained, make_app
from tests.migrations.indexes import check_comes_and_goes

NAME = "ix_message_unknown"


def test_the_index_comes_and_goes_with_the_migration(empty_db_url: str) -> None:
    check_comes_and_goes(empty_db_url, NAME, "unknown", "0026")


class _Unanswered:
    """A carrier that has no report yet for anything it is asked about."""

    asks_again = True

    def __init__(self) -> None:
        self.asked: list[int] = []

    def lookup(self, batch: list[Outbound]) -> list[SubmitResult | None]:
        self.asked += [m.message_id for m in batch]
        return [SubmitResult(m.message_id, False, None, "FailedOperation.OutcomeUnknown",
                             unknown=True) for m in batch]


def test_the_sweeper_finds_recent_unknown_rows_by_the_index(empty_db_url: str) -> None:
    url = empty_db_url
    migrate.upgrade(url)
    engine = create_engine(url)
    if engine.dialect.name != "postgresql":
        pytest.skip("the planner's choice is PostgreSQL's")
    cols = ("account_id, app_id, serial_no, request_id, region, phone_number, iso_code, "
            "content, encoding, fee, status, sms_type, created_at, submitted_at, attempt_id")
    with Session(engine) as s, s.begin():
        app_id = s.scalars(select(Application.id).filter_by(sdk_app_id=make_app(s))).one()
        for prefix, n, age in (("old", 200_000, "10 days"), ("new", 10, "60 seconds")):
            s.execute(text(
                f"INSERT INTO message ({cols}) SELECT a.account_id, a.id, '{prefix}-' || g, "
                "'r', 'international', '+14155550100', 'US', 'x', 'GSM', 1, 'unknown', "
                f"'verification', now() - interval '{age}', now() - interval '{age}', "
                f"'{prefix}' || g FROM application a, generate_series(1, :n) g "
                "WHERE a.id = :app"), {"n": n, "app": app_id})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE message"))
    plans = explained(engine, "UPDATE message")

    @contextmanager
    def work() -> Iterator[Any]:
        with Session(engine) as s, s.begin():
            yield s
    carrier = _Unanswered()
    pipeline.ask_carrier(work, carrier, pipeline.PipelineSettings())
    engine.dispose()
    assert len(carrier.asked) == 10  # the recent ones, and only those
    [plan] = [p for p in plans if "unknown" in p and "submitted_at" in p]  # the take
    assert NAME in plan, plan
