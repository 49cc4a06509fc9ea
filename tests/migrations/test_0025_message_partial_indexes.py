"""Migration 0025: the carrier-id and bulk-task indexes of the message table become
partial (`... IS NOT NULL`) on both backends, match the models, and downgrade to the
full indexes of 0024. The statements the code sends with those columns (receipts by
carrier id, a task's progress and settling) can still use them: the planner must
prove the index's predicate from theirs, so each is explained as it was sent."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app import migrate
from app.db import Base
from app.gateways.base import Receipt
from app.models import Application, SendTask
from app.models.tasks import SENDING
from app.services import pipeline, tasks
from app.services.accounts import ensure_account, system_actor
from app.services.context import Ctx
from tests.helpers import make_app

PARTIAL = {"ix_message_gateway_id": "gateway_message_id IS NOT NULL",
           "ix_message_task_status": "task_id IS NOT NULL"}


@pytest.fixture
def url(empty_db_url: str) -> str:
    return empty_db_url


def _definitions(engine: Engine) -> dict[str, str]:
    """Each of the two indexes' SQL as the database keeps it."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            rows = conn.execute(text("SELECT indexname, indexdef FROM pg_indexes "
                                     "WHERE tablename = 'message'")).all()
        else:
            rows = conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = "
                                     "'index' AND tbl_name = 'message'")).all()
    return {name: sql for name, sql in rows if name.startswith(tuple(PARTIAL))}


def test_partial_on_upgrade_full_on_downgrade(url: str) -> None:
    migrate.upgrade(url)
    engine = create_engine(url)
    defs = _definitions(engine)
    assert set(defs) == set(PARTIAL)  # the temporary names are gone
    for name, where in PARTIAL.items():
        assert where in defs[name].replace("(", "").replace(")", "")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert [d for d in diff if "message" in repr(d)] == []
        if conn.dialect.name == "postgresql":
            assert conn.execute(text("SELECT bool_and(indisvalid) FROM pg_index WHERE "
                                     "indrelid = 'message'::regclass")).scalar_one()
    command.downgrade(migrate.alembic_config(url), "0024")
    defs = _definitions(engine)
    assert set(defs) == set(PARTIAL)
    assert not any("WHERE" in sql.upper() for sql in defs.values())
    migrate.upgrade(url)
    assert all(PARTIAL[n] in s.replace("(", "").replace(")", "")
               for n, s in _definitions(engine).items())
    engine.dispose()


def _explain(conn: Any, dialect: str, statement: str, params: Any) -> str:
    """The plan of a statement as sent (the same parameters), on the raw DBAPI
    connection so the capturing hook does not see it."""
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        if dialect == "postgresql":
            # Cheapest path on an empty table is a sequential scan: forbid it, so a
            # plan without the index means the index could not be used.
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + statement, params)
            return "\n".join(r[0] for r in cursor.fetchall())
        cursor.execute("EXPLAIN QUERY PLAN " + statement, params)
        return "\n".join(str(r[-1]) for r in cursor.fetchall())
    finally:
        cursor.close()


def test_the_code_s_look_ups_use_the_partial_indexes(url: str) -> None:
    migrate.upgrade(url)
    engine = create_engine(url)
    plans: dict[str, list[str]] = {name: [] for name in PARTIAL}

    @event.listens_for(engine, "after_cursor_execute")
    def explain(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
                many: bool) -> None:
        where = statement.partition("WHERE")[2]
        if not statement.lstrip().upper().startswith("SELECT") or many:
            return
        for name, column in (("ix_message_gateway_id", "message.gateway_message_id"),
                             ("ix_message_task_status", "message.task_id")):
            if column in where:
                plans[name].append(_explain(conn, engine.dialect.name, statement, params))

    with Session(engine) as s, s.begin():
        ctx = Ctx(s, system_actor(ensure_account(s)))
        # A receipt naming only the carrier's id (SMPP): looked up by gateway_message_id.
        pipeline.add_receipts(s, [(Receipt(True, "DELIVRD", gateway_id="c-1"), None, 0.0)])
        pipeline.apply_receipts(s)
        app = s.scalars(select(Application).filter_by(sdk_app_id=make_app(s))).one()
        task = SendTask(account_id=app.account_id, app_id=app.id, name="t", region="mainland",
                        template_id=0, status=SENDING)
        s.add(task)
        s.flush()
        tasks.progress_of(ctx, [task])  # reads the task's figures (0030), no message
        tasks._settle(ctx, task)  # task_id = ... AND status IN (...)
    engine.dispose()
    assert len(plans["ix_message_gateway_id"]) == 1
    assert len(plans["ix_message_task_status"]) == 1
    for name, found in plans.items():
        for plan in found:
            assert name in plan, plan
