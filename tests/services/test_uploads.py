"""Signature images follow the transaction: nothing on disk unless it commits."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Account, Signature
from app.services import content
from app.services.context import Ctx
from app.services.uploads import Upload
from tests.helpers import root_ctx
from tests.services.test_content import png

TRADEMARK = {"purpose": "self", "sign_type": "trademark", "content": "Brandy"}


def _ctx(session: Session, folder: Path) -> Ctx:
    base = root_ctx(session)
    return Ctx(base.db, base.actor, type(base.settings)(upload_dir=folder))


def test_rollback_leaves_no_file(session: Session, tmp_path: Path) -> None:
    c = _ctx(session, tmp_path)
    content.create_signature(c, "international", TRADEMARK, proof=Upload("p.png", png()))
    session.rollback()
    session.commit()  # a later commit of the same session stores nothing either
    assert list(tmp_path.iterdir()) == []


def test_failed_commit_removes_what_it_wrote(session: Session, tmp_path: Path) -> None:
    c = _ctx(session, tmp_path)
    account_id = c.actor.account_id
    content.create_signature(c, "international", TRADEMARK, proof=Upload("p.png", png()))
    session.add(Account(id=account_id, name="duplicate"))  # fails in the commit's flush
    with pytest.raises(IntegrityError):
        session.commit()
    session.rollback()
    assert list(tmp_path.iterdir()) == []
    assert session.query(Signature).count() == 0


def test_unwritable_folder_fails_the_commit_not_the_page_later(session: Session,
                                                               tmp_path: Path) -> None:
    blocked = tmp_path / "uploads"
    blocked.write_text("a file where the folder should be")
    c = _ctx(session, blocked)
    content.create_signature(c, "international", TRADEMARK, proof=Upload("p.png", png()))
    with pytest.raises(OSError):
        session.commit()
    session.rollback()
    assert session.query(Signature).count() == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["uploads"]
