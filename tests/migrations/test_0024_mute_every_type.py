"""Migration 0024: one "every type" mute entry per number and signature. Rows that
NULL let through before are merged on upgrade (the oldest stays); afterwards the
database refuses a second one, so the service's race handling applies to it too."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import migrate
from app.db import Base, utcnow
from app.models import Signature
from app.services.accounts import ensure_account

MUTE = ("INSERT INTO mute_entry (account_id, phone_number, signature_id, sms_type, "
        "consent_confirmed_by, created_at) VALUES (:a, :n, :s, :t, 'root', :at)")


@pytest.fixture
def url(empty_db_url: str) -> str:
    return empty_db_url


def test_duplicates_are_merged_then_refused(url: str) -> None:
    migrate.upgrade(url)
    engine = create_engine(url)
    with Session(engine) as s, s.begin():
        account = ensure_account(s)
        sig = Signature(account_id=account.id, region="international", purpose="self",
                        sign_type="company", content="Shop", submitted_by="root")
        s.add(sig)
        s.flush()
        ids = {"a": account.id, "s": sig.id}
    command.downgrade(migrate.alembic_config(url), "0023")
    with engine.begin() as conn:
        for number, kind in [("+14155550100", None), ("+14155550100", None),
                             ("+14155550100", None), ("+14155550101", None),
                             ("+14155550100", "marketing")]:
            conn.execute(text(MUTE), {**ids, "n": number, "t": kind, "at": utcnow()})
        first = conn.execute(text("SELECT min(id) FROM mute_entry")).scalar_one()
    command.upgrade(migrate.alembic_config(url), "head")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, phone_number, sms_type FROM mute_entry "
                                 "ORDER BY id")).all()
        assert [(r.phone_number, r.sms_type) for r in rows] == [
            ("+14155550100", None), ("+14155550101", None), ("+14155550100", "marketing")]
        assert rows[0].id == first  # the oldest stays
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert [d for d in diff if "mute_entry" in repr(d)] == []
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text(MUTE), {**ids, "n": "+14155550101", "t": None, "at": utcnow()})
    command.downgrade(migrate.alembic_config(url), "0023")
    engine.dispose()
