"""Migration 0017: SQLite content tables become AUTOINCREMENT, keeping every row and
every reference to them (the rebuild must not cascade), so a deleted item's id is
never handed to a new one. PostgreSQL sequences never reuse ids."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from alembic import command
from sqlalchemy import func, select, text

from app import migrate
from app.db import Database
from app.models import MuteEntry, Signature, Template
from app.services import content, reviews
from app.services.errors import Conflict, NotFound
from tests.helpers import ctx_for, make_user, root_ctx
from tests.sending.conftest import make_shop


def _counts(url: str) -> dict[str, int]:
    db = Database(url)
    with db.sessions() as s:
        found = {t: s.scalar(text(f"SELECT count(*) FROM {t}")) or 0 for t in
                 ("qualification", "signature", "template", "mute_entry")}
        assert s.execute(text("PRAGMA foreign_key_check")).fetchall() == []
    db.engine.dispose()
    return found


def test_rebuild_keeps_rows_and_references_and_ids_are_never_reused(
        tmp_path: Path, embedded_redis_url: str) -> None:
    # Seeded through today's models (the head schema), then taken back before 0017:
    # the ORM cannot write an older schema once later migrations add columns.
    url = f"sqlite:///{tmp_path / 'm.db'}"
    migrate.upgrade(url)
    db = Database(url)
    with db.sessions() as s:
        shop = make_shop(s, redis.Redis.from_url(embedded_redis_url))
        sig = shop.signatures["mainland"]
        s.add(MuteEntry(account_id=shop.app.account_id, phone_number="+8613900000001",
                        signature_id=sig, sms_type=None, consent_confirmed_by="root"))
        s.commit()
        qualification_of = s.scalar(select(Signature.qualification_id).where(Signature.id == sig))
    db.engine.dispose()
    before = _counts(url)
    assert before["mute_entry"] == 1

    command.downgrade(migrate.alembic_config(url), "0016")
    assert _counts(url) == before  # the rebuild back cascaded nothing away either
    migrate.upgrade(url, "0017")
    assert _counts(url) == before
    db = Database(url)
    with db.sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM sqlite_sequence WHERE name='template'")) == 1
    db.engine.dispose()

    migrate.upgrade(url)
    db = Database(url)
    with db.sessions() as s:
        assert s.scalar(select(Signature.qualification_id).where(Signature.id == sig)) \
            == qualification_of
        # The outside review's bypass: delete the newest template, create another, and
        # approve with the (id, revision) the old review request carried.
        root = root_ctx(s)
        newest = s.scalar(select(func.max(Template.id)))
        old = s.get(Template, newest)
        assert old is not None
        old_id, old_revision = old.id, old.revision
        content.delete_template(root, old_id)
        s.commit()
        new = content.create_template(root, "international", {
            "name": "n", "sms_type": "notification", "content": "Account locked, see {1}"})
        s.commit()
        assert new.id != old_id
        reviewer = ctx_for(s, make_user(s, "rev2@example.com", presets=["SMSReviewer"]))
        with pytest.raises((NotFound, Conflict)):
            reviews.approve(reviewer, "template", old_id, revision=old_revision)
        assert s.get(Template, new.id).status == "pending"  # type: ignore[union-attr]
    db.engine.dispose()
