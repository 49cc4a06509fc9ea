"""/reviews decides the revision the reviewer was shown (issue #8), with htmx and
without; an edit after the page was opened voids its buttons."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app.models.content import APPROVED, EFFECTIVE, PENDING
from app.services import content, reviews
from app.services.context import Ctx
from tests.helpers import QUALIFICATION, ctx_for, make_user
from tests.web.conftest import Client, soup, text_of

CHANGED = "changed since you opened it"


def _template(author: Ctx) -> tuple[int, Callable[[], Any]]:
    t = content.create_template(author, "international", {
        "name": "Login code", "sms_type": "verification", "content": "Your code is {1}"})
    return t.id, lambda: content.update_template(author, t.id, {
        "name": "Login code", "sms_type": "verification",
        "content": "Account locked, log in at evil.example/{1}"})


def _signature(author: Ctx) -> tuple[int, Callable[[], Any]]:
    s = content.create_signature(author, "international", {
        "purpose": "self", "sign_type": "app", "content": "Acme"})
    return s.id, lambda: content.update_signature(author, s.id, {
        "purpose": "self", "sign_type": "app", "content": "YourBank"})


def _qualification(author: Ctx) -> tuple[int, Callable[[], Any]]:
    q = content.create_qualification(author, dict(QUALIFICATION))
    return q.id, lambda: content.update_qualification(author, q.id, {
        **QUALIFICATION, "enterprise_name": "Somebody Else Ltd."})


KINDS = {"template": (_template, "evil.example", EFFECTIVE),
         "signature": (_signature, "YourBank", EFFECTIVE),
         "qualification": (_qualification, "Somebody Else", APPROVED)}


@pytest.fixture
def reviewer(app: Flask, session: Session) -> Client:
    make_user(session, "rev@example.com", presets=["SMSReviewer"])
    session.commit()
    client = Client(app.test_client())
    client.login("rev@example.com")
    return client


def _author(session: Session) -> Ctx:
    return ctx_for(session, make_user(session, "author@example.com",
                                      presets=["SMSFullAccess"]))


def _shown_revision(page: Any, kind: str, obj_id: int, decision: str) -> str:
    form = soup(page).select_one(f"#review-{kind}-{obj_id} form[action$='/{decision}']")
    assert form is not None, f"no {decision} form for {kind} {obj_id}"
    field = form.select_one("input[name=revision]")
    assert field is not None
    return str(field["value"])


@pytest.mark.parametrize("kind", list(KINDS))
def test_approving_what_was_shown_before_an_edit_is_refused(reviewer: Client,
                                                            session: Session,
                                                            kind: str) -> None:
    make, new_text, done = KINDS[kind]
    author = _author(session)
    obj_id, edit = make(author)
    session.commit()
    page = reviewer.get("/reviews")  # the reviewer opens the queue…
    seen = _shown_revision(page, kind, obj_id, "approve")
    assert seen == "1"
    edit()  # …the author edits the pending item…
    session.commit()
    url = f"/reviews/{kind}/{obj_id}"
    stale = reviewer.post(f"{url}/approve", {"revision": seen}, htmx=True)  # …old click
    assert stale.status_code == 422 and CHANGED in text_of(stale, ".error")
    # the fragment now shows the new text, with buttons for the new revision
    assert new_text in text_of(stale, f"#review-{kind}-{obj_id}")
    assert _shown_revision(stale, kind, obj_id, "approve") == "2"
    stale_reject = reviewer.post(f"{url}/reject", {"revision": seen, "reason": "no"},
                                 htmx=True)
    assert stale_reject.status_code == 422 and CHANGED in text_of(stale_reject, ".error")
    session.expire_all()
    obj = reviews.load(author, kind, obj_id)
    assert (obj.status, obj.decided_by) == (PENDING, None)
    ok = reviewer.post(f"{url}/approve", {"revision": "2"}, htmx=True)
    assert ok.status_code == 200 and not soup(ok).select("button")
    session.expire_all()
    assert reviews.load(author, kind, obj_id).status == done


def test_without_htmx_the_refusal_is_flashed(reviewer: Client, session: Session) -> None:
    author = _author(session)
    tid, edit = _template(author)
    session.commit()
    seen = _shown_revision(reviewer.get("/reviews"), "template", tid, "approve")
    edit()
    session.commit()
    resp = reviewer.post(f"/reviews/template/{tid}/approve", {"revision": seen},
                         follow_redirects=True)
    assert resp.status_code == 200 and CHANGED in text_of(resp, "#flash")
    assert "evil.example" in text_of(resp, f"#review-template-{tid}")
    missing = reviewer.post(f"/reviews/template/{tid}/approve", {}, htmx=True)
    assert missing.status_code == 422 and CHANGED in text_of(missing, ".error")
    session.expire_all()
    assert reviews.load(author, "template", tid).status == PENDING


def test_the_reject_form_carries_the_revision_too(reviewer: Client, session: Session) -> None:
    author = _author(session)
    tid, _ = _template(author)
    session.commit()
    page = reviewer.get("/reviews")
    seen = _shown_revision(page, "template", tid, "reject")
    done = reviewer.post(f"/reviews/template/{tid}/reject",
                         {"revision": seen, "reason": "Say what it is for"}, htmx=True)
    assert done.status_code == 200 and "Rejected" in text_of(done, ".status")


def test_an_unsubscribe_removal_is_decided_by_its_revision(reviewer: Client,
                                                           session: Session) -> None:
    """Removal requests cannot be edited; their form carries the revision all the same."""
    from sqlalchemy import select

    from app.models import Unsubscribe
    from app.services import unsubscribes

    author = _author(session)
    sid, _ = _signature(author)
    root = ctx_for(session, make_user(session, "boss@example.com", presets=["SMSReviewer"]))
    reviews.approve(root, "signature", sid, revision=1)
    unsubscribes.record(session, author.actor.account_id, "+14155550101", sid, "marketing",
                        "reply")
    removal = unsubscribes.request_removal(author, phone_number="+14155550101",
                                           signature_id=sid, sms_type="marketing",
                                           reason="Customer asked again")
    session.commit()
    page = reviewer.get("/reviews")
    seen = _shown_revision(page, "unsubscribe_removal", removal.id, "approve")
    url = f"/reviews/unsubscribe_removal/{removal.id}/approve"
    wrong = reviewer.post(url, {"revision": str(int(seen) + 1)}, htmx=True)
    assert wrong.status_code == 422 and CHANGED in text_of(wrong, ".error")
    assert session.scalar(select(Unsubscribe.id)) is not None
    ok = reviewer.post(url, {"revision": seen}, htmx=True)
    assert ok.status_code == 200 and "Approved" in text_of(ok, ".status")
    session.expire_all()
    assert session.scalar(select(Unsubscribe.id)) is None
