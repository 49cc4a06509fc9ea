"""A decision names the revision the reviewer saw (issue #8): an edit after the
review request was opened cannot ride on an approval of the earlier text."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.models import Qualification, Signature, Template, Unsubscribe
from app.models.content import APPROVED, EFFECTIVE, PENDING, REJECTED
from app.services import content, reviews, unsubscribes
from app.services.context import Ctx
from app.services.errors import Conflict
from tests.conftest import Backend
from tests.helpers import QUALIFICATION, ctx_for, make_user

CHANGED = "changed since you opened it"


@pytest.fixture
def people(session: Session) -> tuple[Ctx, Ctx]:
    author = ctx_for(session, make_user(session, "author@example.com",
                                        presets=["SMSFullAccess"]))
    reviewer = ctx_for(session, make_user(session, "reviewer@example.com",
                                          presets=["SMSReviewer"]))
    return author, reviewer


def _template(author: Ctx) -> tuple[Template, Callable[[], Any]]:
    t = content.create_template(author, "international", {
        "name": "Login code", "sms_type": "verification", "content": "Your code is {1}"})
    return t, lambda: content.update_template(author, t.id, {
        "name": "Login code", "sms_type": "verification",
        "content": "Account locked, log in at evil.example/{1}"})


def _signature(author: Ctx) -> tuple[Signature, Callable[[], Any]]:
    s = content.create_signature(author, "international", {
        "purpose": "self", "sign_type": "app", "content": "Acme"})
    return s, lambda: content.update_signature(author, s.id, {
        "purpose": "self", "sign_type": "app", "content": "YourBank"})


def _qualification(author: Ctx) -> tuple[Qualification, Callable[[], Any]]:
    q = content.create_qualification(author, dict(QUALIFICATION))
    return q, lambda: content.update_qualification(author, q.id, {
        **QUALIFICATION, "enterprise_name": "Somebody Else Ltd."})


KINDS = {"template": _template, "signature": _signature, "qualification": _qualification}
DONE = {"template": EFFECTIVE, "signature": EFFECTIVE, "qualification": APPROVED}


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_edit_after_opening_voids_the_old_approval(session: Session, people,
                                                      kind: str) -> None:
    author, reviewer = people
    obj, edit = KINDS[kind](author)
    seen = obj.revision  # what the review message and the /reviews page carried
    edit()
    session.flush()
    assert obj.revision == seen + 1 and obj.status == PENDING
    with pytest.raises(Conflict, match=CHANGED):
        reviews.approve(reviewer, kind, obj.id, revision=seen)
    with pytest.raises(Conflict, match=CHANGED):
        reviews.reject(reviewer, kind, obj.id, "too late", revision=seen)
    session.expire_all()
    obj = reviews.load(reviewer, kind, obj.id)
    assert (obj.status, obj.decided_by) == (PENDING, None)  # nothing became effective
    assert reviews.approve(reviewer, kind, obj.id, revision=seen + 1).status == DONE[kind]


def test_unsubscribe_removal_needs_the_revision_shown(session: Session, people) -> None:
    """Removal requests cannot be edited, but they are decided the same way."""
    author, reviewer = people
    sig, _ = _signature(author)
    reviews.approve(reviewer, "signature", sig.id, revision=sig.revision)
    unsubscribes.record(session, sig.account_id, "+14155550101", sig.id, "marketing", "reply")
    removal = unsubscribes.request_removal(author, phone_number="+14155550101",
                                           signature_id=sig.id, sms_type="marketing",
                                           reason="Customer asked again")
    with pytest.raises(Conflict, match=CHANGED):
        reviews.approve(reviewer, "unsubscribe_removal", removal.id,
                        revision=removal.revision + 1)
    assert session.scalar(select(Unsubscribe.id)) is not None  # still unsubscribed
    assert removal.status == PENDING
    reviews.approve(reviewer, "unsubscribe_removal", removal.id, revision=removal.revision)
    assert session.scalar(select(Unsubscribe.id)) is None


def test_the_conditional_update_carries_the_revision(backend: Backend, session: Session,
                                                     people) -> None:
    """The reviewer's session still holds the old revision when the edit commits
    elsewhere: only the database's row decides, so the approval cannot slip through."""
    author, reviewer = people
    t, _ = _template(author)
    session.commit()
    seen = t.revision
    other = backend.db.sessions()  # the author, in another request
    try:
        content.update_template(ctx_for(other, _user(other)), t.id, {
            "name": "Login code", "sms_type": "verification", "content": "Phish {1}"})
        other.commit()
    finally:
        other.close()
    assert t.revision == seen and t.content == "Your code is {1}"  # stale in this session
    with pytest.raises(Conflict, match=CHANGED):
        reviews.approve(reviewer, "template", t.id, revision=seen)
    session.rollback()
    session.expire_all()
    fresh = session.get(Template, t.id)
    assert (fresh.status, fresh.content, fresh.revision) == (PENDING, "Phish {1}", seen + 1)


def _user(s: Session):  # type: ignore[no-untyped-def]
    from app.models import User

    return s.scalar(select(User).where(User.email == "author@example.com"))


def test_edit_and_approve_racing_on_postgresql(backend: Backend, session: Session,
                                               people) -> None:
    """A real race: the edit holds the row, the approval waits for it, then finds a
    new revision and is refused."""
    if backend.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite runs one writer at a time")
    author, _ = people
    t, _ = _template(author)
    session.commit()
    seen = t.revision
    editing = backend.db.sessions()
    content.update_template(ctx_for(editing, _user(editing)), t.id, {
        "name": "Login code", "sms_type": "verification", "content": "Phish {1}"})
    editing.flush()  # the row is locked until the edit commits
    outcome: list[BaseException | str] = []

    def approve() -> None:
        s = backend.db.sessions()
        try:
            from app.models import User

            me = s.scalar(select(User).where(User.email == "reviewer@example.com"))
            reviews.approve(ctx_for(s, me), "template", t.id, revision=seen)
            s.commit()
            outcome.append("approved")
        except BaseException as exc:  # reported to the test thread
            outcome.append(exc)
        finally:
            s.close()

    racer = threading.Thread(target=approve)
    racer.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # wait until the approval blocks on the row
        with backend.db.engine.connect() as conn:
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query ILIKE 'UPDATE template%'")).scalar()
        if waiting:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the approval never waited for the edit's row lock")
    editing.commit()
    editing.close()
    racer.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], Conflict), outcome
    assert CHANGED in str(outcome[0])
    session.expire_all()
    fresh = session.get(Template, t.id)
    assert (fresh.status, fresh.content) == (PENDING, "Phish {1}")


def test_every_change_is_a_new_revision(session: Session, people) -> None:
    author, reviewer = people
    t, edit = _template(author)
    assert t.revision == 1
    reviews.reject(reviewer, "template", t.id, "Name the service", revision=1)
    assert (t.status, t.revision) == (REJECTED, 2)
    edit()
    assert (t.status, t.revision) == (PENDING, 3)
    with pytest.raises(Conflict, match=CHANGED):
        reviews.approve(reviewer, "template", t.id, revision=2)


def test_an_edit_that_loaded_before_a_decision_cannot_land_after_it(
        backend: Backend, session: Session, people) -> None:
    """The other order of the race: the author's edit read the pending template, the
    approval commits, then the edit writes. Its UPDATE names the revision it read, so
    it matches nothing: the approved text stays, and the author is told."""
    author, _ = people
    t, _ = _template(author)
    session.commit()
    editing = backend.db.sessions()
    try:
        editor = ctx_for(editing, _user(editing))
        loaded = content.get_template(editor, t.id)  # the edit form's request reads it
        assert loaded.status == PENDING
        from app.models import User

        me = session.scalar(select(User).where(User.email == "reviewer@example.com"))
        reviews.approve(ctx_for(session, me), "template", t.id, revision=1)
        session.commit()
        with pytest.raises(Conflict, match="changed while you were working on it"):
            content.update_template(editor, t.id, {
                "name": "Login code", "sms_type": "verification", "content": "Phish {1}"})
        editing.rollback()
    finally:
        editing.close()
    session.expire_all()
    fresh = session.get(Template, t.id)
    assert (fresh.status, fresh.content) == (EFFECTIVE, "Your code is {1}")


def test_changing_the_carrier_template_id_sends_it_back_to_review(session: Session,
                                                                   people) -> None:
    author, reviewer = people
    t, _ = _template(author)
    reviews.approve(reviewer, "template", t.id, revision=t.revision)
    assert t.status == EFFECTIVE
    content.set_carrier_template_id(author, t.id, "1110123")
    assert (t.status, t.revision, t.carrier_template_id) == (PENDING, 3, "1110123")
    assert t.submitted_by == "author@example.com"  # so the author cannot approve it
    content.set_carrier_template_id(author, t.id, " 1110123 ")  # unchanged: no new review
    assert t.revision == 3
    reviews.approve(reviewer, "template", t.id, revision=3)
    assert t.status == EFFECTIVE
