"""The review workflow: queue, decisions, no self-approval, audit, notifications."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import AuditEntry, Notification
from app.models.content import EFFECTIVE
from app.services import app_config, content, reviews
from app.services.errors import Conflict, PermissionDenied, ValidationError
from tests.helpers import ctx_for, make_app, make_user


@pytest.fixture
def people(session: Session):  # type: ignore[no-untyped-def]
    author = ctx_for(session, make_user(session, "author@example.com",
                                        presets=["SMSFullAccess"]))
    reviewer = ctx_for(session, make_user(session, "reviewer@example.com",
                                          presets=["SMSReviewer"]))
    reader = ctx_for(session, make_user(session, "reader@example.com",
                                        presets=["SMSReadOnlyAccess"]))
    return author, reviewer, reader


def _template(ctx, text: str = "Your code is {1}"):  # type: ignore[no-untyped-def]
    return content.create_template(ctx, "international", {
        "name": "Login code", "sms_type": "verification", "content": text})


def test_queue_lists_pending_with_facts_and_changes(session: Session, people) -> None:
    author, reviewer, _ = people
    t = _template(author, "€" * 100 + " code {1}")
    sig = content.create_signature(author, "international", {
        "purpose": "self", "sign_type": "app", "content": "Acme"})
    items = reviews.queue(reviewer)
    assert [(i.kind, i.obj.id) for i in items] == [("template", t.id), ("signature", sig.id)]
    assert items[0].facts == {"variables": [1], "encoding": "GSM-7", "billed_items": 2,
                              "characters": 112}
    reviews.reject(reviewer, "template", t.id, "Too long", revision=t.revision)
    content.update_template(author, t.id, {"name": "Login code", "sms_type": "verification",
                                           "content": "Code {1}"})
    item = next(i for i in reviews.queue(reviewer) if i.kind == "template")
    assert item.changes == [("content", "€" * 100 + " code {1}", "Code {1}")]


def test_nobody_approves_their_own_submission(session: Session, people) -> None:
    author, _, _ = people
    t = _template(author)
    with pytest.raises(PermissionDenied, match="your own"):
        reviews.approve(author, "template", t.id, revision=t.revision)
    assert t.status == "pending"


def test_only_reviewers_decide(session: Session, people) -> None:
    author, _, reader = people
    t = _template(author)
    with pytest.raises(PermissionDenied, match="sms:ReviewContent"):
        reviews.approve(reader, "template", t.id, revision=t.revision)


def test_a_decision_is_made_once(session: Session, people) -> None:
    author, reviewer, _ = people
    t = _template(author)
    reviews.approve(reviewer, "template", t.id, revision=t.revision)
    with pytest.raises(Conflict, match=r"Already decided: effective by reviewer@example\.com"):
        reviews.reject(reviewer, "template", t.id, "late", revision=t.revision)


def test_reject_needs_a_reason(session: Session, people) -> None:
    author, reviewer, _ = people
    t = _template(author)
    with pytest.raises(ValidationError, match="Say why"):
        reviews.reject(reviewer, "template", t.id, "   ", revision=t.revision)


def test_signature_becomes_effective_through_the_gateway(session: Session, people) -> None:
    author, reviewer, _ = people

    class SlowCarrier:
        name = "slow"
        calls: list[tuple[str, str]] = []

        def register_signature(self, region: str, text: str) -> bool:
            self.calls.append((region, text))
            return False

    sig = content.create_signature(author, "international", {
        "purpose": "self", "sign_type": "app", "content": "Acme"})
    from app.services.context import Ctx

    slow = Ctx(reviewer.db, reviewer.actor, gateway=SlowCarrier())
    assert reviews.approve(slow, "signature", sig.id,
                           revision=sig.revision).status == "approved_pending_effect"
    assert SlowCarrier.calls == [("international", "Acme")]
    other = content.create_signature(author, "international", {
        "purpose": "self", "sign_type": "app", "content": "Beta"})
    assert reviews.approve(reviewer, "signature", other.id,
                           revision=other.revision).status == EFFECTIVE


def test_decisions_are_audited_and_notified(session: Session, people) -> None:
    author, reviewer, _ = people
    sid = make_app(session)
    from tests.helpers import root_ctx

    app_config.add_contact(root_ctx(session), sid, name="Ops", email="ops@example.com",
                           events=["review"])
    app_config.add_contact(root_ctx(session), sid, name="Money", email="money@example.com",
                           events=["package"])
    t = _template(author)
    reviews.reject(reviewer, "template", t.id, "Name the service <b>please</b>",
                   revision=t.revision)
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "ReviewContent")).one()
    assert entry.actor_label == "reviewer@example.com"
    assert entry.after == {"status": "rejected", "reason": "Name the service <b>please</b>",
                           "title": "Login code"}
    sent = session.scalars(select(Notification).order_by(Notification.id)).all()
    assert [(n.channel, n.recipient) for n in sent] == [("email", "author@example.com"),
                                                        ("email", "ops@example.com")]
    assert "rejected" in sent[0].subject and "Name the service" in sent[0].body
    assert reviewer.deferred == [("jobs.notify.deliver", ([n.id for n in sent],)),
                                 ("jobs.reviews.decided", ("template", t.id))]
    assert ("jobs.reviews.submitted", ("template", t.id)) in author.deferred
