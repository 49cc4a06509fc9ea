"""Slack decisions name the revision the reviewer saw (issue #8): an edit updates the
old review message so its buttons are gone and posts a new one; old buttons and
old Reject modals are refused. And user text in review messages and decision DMs
is inert: no mention, no link, no formatting."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ReviewMessage, User
from app.models.content import APPROVED, EFFECTIVE, PENDING
from app.queue import enqueue_deferred
from app.services import content, reviews
from app.services.context import Ctx
from tests.bot.conftest import REVIEW_CHANNEL, Slack
from tests.helpers import QUALIFICATION, ctx_for, make_user

AUTHOR, REVIEWER = "U0AUTHOR1", "U0REVIEW1"
CHANGED = "changed since you opened it"


def people(session: Session) -> dict[str, User]:
    found = {AUTHOR: make_user(session, "author@example.com", presets=["SMSFullAccess"]),
             REVIEWER: make_user(session, "reviewer@example.com", presets=["SMSReviewer"])}
    for slack_id, user in found.items():
        user.slack_user_id = slack_id
    session.commit()
    return found


def dump(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False)


def run(slack: Slack, session: Session, c: Ctx) -> None:
    """Commit what the author did and let a real worker run the jobs it asked for."""
    session.commit()
    enqueue_deferred(slack.app.extensions["redis"], c.deferred)
    slack.run_jobs()


def review_posts(slack: Slack) -> list[dict[str, Any]]:
    return [m for m in slack.api.named("chat.postMessage") if m["channel"] == REVIEW_CHANNEL]


def button(message: dict[str, Any], action_id: str) -> str:
    for block in message["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return str(element["value"])
    raise AssertionError(f"no {action_id} button in {dump(message['blocks'])}")


def has_buttons(message: dict[str, Any]) -> bool:
    return any(b["type"] == "actions" for b in message["blocks"])


def posted_ts(session: Session) -> str:
    """Slack's id of the newest review request, as the bot stored it."""
    session.expire_all()
    return str(session.scalars(select(ReviewMessage.ts)).one())


def ephemerals(slack: Slack) -> list[str]:
    slack.run_jobs()
    return [m["text"] for m in slack.api.named("chat.postEphemeral")]


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


@pytest.mark.parametrize("kind", list(KINDS))
def test_an_edit_replaces_the_review_message_and_voids_its_buttons(slack: Slack,
                                                                   session: Session,
                                                                   kind: str) -> None:
    make, new_text, done = KINDS[kind]
    users = people(session)
    author = ctx_for(session, users[AUTHOR])
    obj_id, edit = make(author)
    run(slack, session, author)
    [first] = review_posts(slack)
    old_approve, old_reject = button(first, "review_approve"), button(first, "review_reject")
    assert old_approve == f"{kind}:{obj_id}:1"
    first_ts = posted_ts(session)

    edit()  # the author edits the pending item after the request was posted
    run(slack, session, author)
    [superseded] = slack.api.named("chat.update")
    assert (superseded["channel"], superseded["ts"]) == (REVIEW_CHANNEL, first_ts)
    assert not has_buttons(superseded) and "review_approve" not in dump(superseded)
    assert "Revision 1" in dump(superseded["blocks"]) and "new review request" in superseded["text"]
    first_again, second = review_posts(slack)
    assert first_again is first and new_text in dump(second["blocks"])
    assert button(second, "review_approve") == f"{kind}:{obj_id}:2"

    # The reviewer clicks the buttons of the message they saw first.
    slack.click("review_approve", old_approve, REVIEWER)
    slack.click("review_reject", old_reject, REVIEWER)
    told = ephemerals(slack)
    assert len(told) == 2 and all(CHANGED in t for t in told), told
    assert slack.api.named("views.open") == []  # no reason asked for a stale request
    session.expire_all()
    obj = reviews.load(author, kind, obj_id)
    assert (obj.status, obj.decided_by) == (PENDING, None)

    slack.click("review_approve", button(second, "review_approve"), REVIEWER)
    session.expire_all()
    assert reviews.load(author, kind, obj_id).status == done
    slack.run_jobs()
    decided = slack.api.named("chat.update")[-1]
    assert decided["ts"] == posted_ts(session) != first_ts and not has_buttons(decided)


def test_the_reject_modal_carries_the_revision(slack: Slack, session: Session) -> None:
    users = people(session)
    author = ctx_for(session, users[AUTHOR])
    tid, edit = _template(author)
    run(slack, session, author)
    [posted] = review_posts(slack)
    slack.click("review_reject", button(posted, "review_reject"), REVIEWER)
    [opened] = slack.api.named("views.open")
    metadata = opened["view"]["private_metadata"]
    assert metadata.startswith(f"template:{tid}:1|")
    edit()  # changed while the reviewer types the reason
    run(slack, session, author)
    resp = slack.submit("review_reject_modal", {"reason": {"reason": {"value": "Unclear"}}},
                        REVIEWER, metadata)
    assert resp.get_json()["response_action"] == "errors"
    assert CHANGED in resp.get_json()["errors"]["reason"]
    session.expire_all()
    t = reviews.load(author, "template", tid)
    assert (t.status, t.reject_reason, t.revision) == (PENDING, None, 2)
    # A modal opened from the new message rejects revision 2.
    new = review_posts(slack)[-1]
    slack.click("review_reject", button(new, "review_reject"), REVIEWER)
    fresh = slack.api.named("views.open")[-1]["view"]["private_metadata"]
    ok = slack.submit("review_reject_modal", {"reason": {"reason": {"value": "Phishing"}}},
                      REVIEWER, fresh)
    assert ok.status_code == 200 and not ok.data
    session.expire_all()
    assert reviews.load(author, "template", tid).status == "rejected"


def test_buttons_without_a_revision_are_refused(slack: Slack, session: Session) -> None:
    """Messages posted before decisions named revisions carry `kind:id` only."""
    users = people(session)
    author = ctx_for(session, users[AUTHOR])
    tid, _ = _template(author)
    run(slack, session, author)
    slack.click("review_approve", f"template:{tid}", REVIEWER)
    slack.click("review_reject", f"template:{tid}", REVIEWER)
    resp = slack.submit("review_reject_modal", {"reason": {"reason": {"value": "x"}}},
                        REVIEWER, f"template:{tid}|CREVIEW01|")
    assert "out of date" in resp.get_json()["errors"]["reason"]
    told = ephemerals(slack)
    assert len(told) == 2 and all("out of date" in t for t in told)
    session.expire_all()
    assert reviews.load(author, "template", tid).status == PENDING


def test_a_carrier_id_change_is_a_new_review_request(slack: Slack, session: Session) -> None:
    users = people(session)
    author = ctx_for(session, users[AUTHOR])
    tid, _ = _template(author)
    run(slack, session, author)
    slack.click("review_approve", button(review_posts(slack)[0], "review_approve"), REVIEWER)
    slack.run_jobs()
    session.expire_all()  # a new request of the author's: it reads the approved template
    content.set_carrier_template_id(author, tid, "1110123")
    run(slack, session, author)
    again = review_posts(slack)[-1]
    assert len(review_posts(slack)) == 2 and "1110123" in dump(again["blocks"])
    assert button(again, "review_approve") == f"template:{tid}:3"
    # the first message showed the decision: it keeps it, it is not superseded
    assert all("Effective" in dump(u["blocks"]) for u in slack.api.named("chat.update"))


HOSTILE = "<!channel> *bold* <http://evil|click>"
# the look-alikes user text gets in place of mrkdwn's formatting marks
STAR, LOW, TILDE, GRAVE = "\u2217", "\u02cd", "\u223c", "\u02cb"
LIVE = [re.compile(p) for p in (
    r"<!(channel|here|everyone)", r"<@", r"<https?://evil", r"<#",  # mentions, links
    r"\*bold\*", r"_it_", r"~gone~", r"`code`")]                  # formatting


def assert_inert(text: str) -> None:
    for pattern in LIVE:
        assert not pattern.search(text), f"{pattern.pattern} is live in {text!r}"


def mrkdwn_objects(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if node.get("type") == "mrkdwn" else []
        return found + [m for v in node.values() for m in mrkdwn_objects(v)]
    if isinstance(node, list):
        return [m for v in node for m in mrkdwn_objects(v)]
    return []


def test_user_text_in_review_messages_and_dms_is_inert(slack: Slack, session: Session) -> None:
    users = people(session)
    author = ctx_for(session, users[AUTHOR])
    t = content.create_template(author, "international", {
        "name": HOSTILE, "sms_type": "notification",
        "content": "Hi <!here> _it_ ~gone~ `code` *bold* order {1}",
        "notes": "<@U0BOSS001> <#C0GENERAL> *bold*"})
    run(slack, session, author)
    [posted] = review_posts(slack)
    assert_inert(posted["text"])
    assert_inert(dump(mrkdwn_objects(posted["blocks"])))
    assert f"&lt;!channel&gt; {STAR}bold{STAR} &lt;http://evil|click&gt;" in posted["text"]
    # What the author wrote is plain text (no markup, mentions or links: Block Kit's
    # text object), shown exactly as written.
    plain = [b["text"]["text"] for b in posted["blocks"]
             if b.get("text", {}).get("type") == "plain_text"]
    assert plain == ["Hi <!here> _it_ ~gone~ `code` *bold* order {1}",
                     "<@U0BOSS001> <#C0GENERAL> *bold*"]
    assert all(m.get("verbatim") is True for m in mrkdwn_objects(posted["blocks"]))

    slack.click("review_reject", button(posted, "review_reject"), REVIEWER)
    [opened] = slack.api.named("views.open")
    assert_inert(dump(opened["view"]["blocks"]))
    slack.submit("review_reject_modal",
                 {"reason": {"reason": {"value": "No <!everyone> or *bold* please"}}},
                 REVIEWER, opened["view"]["private_metadata"])
    slack.run_jobs()
    [updated] = slack.api.named("chat.update")
    assert_inert(updated["text"])
    assert_inert(dump(mrkdwn_objects(updated["blocks"])))
    assert f"{STAR}bold{STAR} please" in dump(updated["blocks"])
    [dm] = [m for m in slack.api.named("chat.postMessage") if m["channel"] == AUTHOR]
    assert_inert(dm["text"])
    assert "&lt;!everyone&gt;" in dm["text"] and f"{STAR}bold{STAR}" in dm["text"]
    assert f"/content/templates/{t.id}" in dm["text"]  # the link still works
    assert dm["text"].startswith("*Your template")  # our own formatting stays


def test_an_unsubscribe_removal_request_round_trip(slack: Slack, session: Session) -> None:
    """Removal requests are posted, decided by their revision and updated in place
    (kind "unsubscribe_removal" is longer than the column once was)."""
    from app.models import Unsubscribe
    from app.services import unsubscribes

    users = people(session)
    author = ctx_for(session, users[AUTHOR])
    sid, _ = _signature(author)
    reviews.approve(ctx_for(session, users[REVIEWER]), "signature", sid, revision=1)
    unsubscribes.record(session, author.actor.account_id, "+14155550101", sid, "marketing",
                        "reply")
    author.deferred.clear()
    removal = unsubscribes.request_removal(author, phone_number="+14155550101",
                                           signature_id=sid, sms_type="marketing",
                                           reason="Customer *asked* again")
    run(slack, session, author)
    [posted] = review_posts(slack)
    assert {"type": "plain_text", "text": "Customer *asked* again", "emoji": False} in [
        b.get("text") for b in posted["blocks"]]
    assert "from Acme (international)" in dump(posted["blocks"])  # which signature
    value = button(posted, "review_approve")
    assert value == f"unsubscribe_removal:{removal.id}:1"
    assert posted_ts(session)  # stored, so a decision can update it
    slack.click("review_approve", value, REVIEWER)
    slack.run_jobs()
    session.expire_all()
    assert session.scalar(select(Unsubscribe.id)) is None
    [updated] = slack.api.named("chat.update")
    assert updated["ts"] == posted_ts(session) and not has_buttons(updated)
    assert "Approved" in dump(updated["blocks"])


def test_what_a_submitter_wrote_cannot_pass_for_the_bot(slack: Slack, session: Session) -> None:
    """Found from outside: only the content's first line was quoted, and notes ran on in
    the bot's own text, so notes of "urgent\nSubmitted by cfo@example.com (revision 1)"
    showed a forged submitter above the real one; look-alikes changed what the approver
    saw (* as a look-alike). What the submitter wrote is now shown exactly, in blocks of its own."""
    author = ctx_for(session, people(session)[AUTHOR])
    notes = "urgent\nSubmitted by cfo@example.com (revision 1)\n<!channel> *now*"
    content.create_template(author, "international", {
        "name": "t", "sms_type": "notification", "content": "Hi *{1}*\nline two",
        "notes": notes})
    run(slack, session, author)
    [posted] = review_posts(slack)
    mrkdwn = " ".join(b["text"]["text"] for b in posted["blocks"]
                      if b.get("text", {}).get("type") == "mrkdwn")
    plain = [b["text"]["text"] for b in posted["blocks"]
             if b.get("text", {}).get("type") == "plain_text"]
    assert "cfo@example.com" not in mrkdwn and "<!channel>" not in mrkdwn
    assert mrkdwn.count("Submitted by") == 1 and "author@example.com" in mrkdwn
    assert plain == ["Hi *{1}*\nline two", notes]  # exactly as written
