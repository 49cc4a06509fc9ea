"""Linking a Slack member to a console user needs proof of both ends (issue #8): the web
shows a signed-in user a one-time code, and the member types `/sms link CODE` in Slack,
whose signed request names the real member. Nobody can claim a member id by typing it."""

from __future__ import annotations

import re

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import AuditEntry, User
from app.services import slack_link
from tests.bot.conftest import Slack
from tests.helpers import make_user
from tests.web.conftest import Client, soup, text_of

ANA, ROOT, MALLORY = "U0ANA0001", "U0ROOT001", "U0MALLOR1"


def _text(resp) -> str:  # type: ignore[no-untyped-def]
    return resp.get_json().get("text", "")


def _web(app: Flask, email: str) -> Client:
    client = Client(app.test_client())
    assert client.login(email).status_code == 302
    return client


def _code(client: Client) -> str:
    page = client.post("/account/slack/code")
    assert page.status_code == 200
    code = text_of(page, "#slack-link-code")
    assert re.fullmatch(r"[A-Z2-9]{5}-[A-Z2-9]{5}", code)
    assert f"/sms link {code}" in page.get_data(as_text=True)
    return code


def _linked(session: Session, email: str) -> str | None:
    session.expire_all()
    return session.scalar(select(User.slack_user_id).where(User.email == email))


def test_link_with_a_code_from_the_web(slack: Slack, session: Session) -> None:
    make_user(session, "ana@example.com", presets=["SMSReadOnlyAccess"])
    session.commit()
    web = _web(slack.app, "ana@example.com")
    code = _code(web)
    answer = slack.command(f"link {code.lower()}", user=ANA)  # as typed, in any case
    assert "you now act as ana@example.com" in _text(answer)
    assert _linked(session, "ana@example.com") == ANA
    entry = session.scalar(select(AuditEntry).where(AuditEntry.action == "LinkSlackUser"))
    assert entry.actor_label == "ana@example.com" and entry.after == {"slack_user_id": ANA}
    assert "You cannot see any application" in _text(slack.command("apps", user=ANA))
    assert slack.api.named("users.info") == []  # linked by the code, no e-mail look-up
    # Single use: the same code from another member links nobody.
    again = slack.command(f"link {code}", user=MALLORY)
    assert "wrong or has expired" in _text(again)
    assert session.scalar(select(User).where(User.slack_user_id == MALLORY)) is None
    assert "Linked to Slack member" in text_of(web.get("/account"), "#slack")


def test_codes_are_short_lived_one_per_user_and_stored_hashed(slack: Slack,
                                                              session: Session) -> None:
    make_user(session, "ana@example.com")
    session.commit()
    web = _web(slack.app, "ana@example.com")
    first, second = _code(web), _code(web)
    redis = slack.app.extensions["redis"]
    keys = [k.decode() for k in redis.keys("smsops:slack-link:*")]
    stored = " ".join(keys + [str(redis.get(k)) for k in keys])
    assert first.replace("-", "") not in stored and second.replace("-", "") not in stored
    ttls = [redis.ttl(k) for k in keys]
    assert ttls and all(0 < t <= slack_link.CODE_TTL_SECONDS for t in ttls)
    assert "wrong or has expired" in _text(slack.command(f"link {first}", user=ANA))
    assert "you now act as" in _text(slack.command(f"link {second}", user=ANA))


def test_nobody_claims_a_member_id_by_typing_it(slack: Slack, session: Session) -> None:
    make_user(session, "root@example.com", root=True)
    make_user(session, "mallory@example.com")
    session.commit()
    mallory = _web(slack.app, "mallory@example.com")
    mine = mallory.post("/account", {"slack_user_id": ROOT})
    assert mine.status_code == 405
    root = _web(slack.app, "root@example.com")
    mallory_id = session.scalar(select(User.id).where(User.email == "mallory@example.com"))
    theirs = root.post(f"/users/{mallory_id}/slack", {"slack_user_id": ROOT})
    assert theirs.status_code in (404, 405)
    assert _linked(session, "mallory@example.com") is None
    # Her own code links only the member who types it: her, never root.
    slack.command(f"link {_code(mallory)}", user=MALLORY)
    assert _linked(session, "mallory@example.com") == MALLORY


def test_guessing_codes_is_throttled_per_member(slack: Slack, session: Session) -> None:
    make_user(session, "ana@example.com")
    session.commit()
    code = _code(_web(slack.app, "ana@example.com"))
    for n in range(slack_link.MAX_TRIES):
        assert "wrong or has expired" in _text(slack.command(f"link AAAAA-AAAA{n + 2}",
                                                             user=MALLORY))
    assert "Too many" in _text(slack.command(f"link {code}", user=MALLORY))
    assert "you now act as" in _text(slack.command(f"link {code}", user=ANA))  # still valid
    bad = slack.command("link", user=ANA)
    assert "/sms link" in _text(bad) and "/account" in _text(bad)


def test_a_linked_member_must_unlink_first(slack: Slack, session: Session) -> None:
    make_user(session, "ana@example.com").slack_user_id = ANA
    make_user(session, "bob@example.com")
    session.commit()
    bob = _web(slack.app, "bob@example.com")
    code = _code(bob)
    refused = slack.command(f"link {code}", user=ANA)
    assert "already linked to ana@example.com" in _text(refused)
    ana = _web(slack.app, "ana@example.com")
    assert ana.post("/account/slack/unlink").status_code == 302
    assert _linked(session, "ana@example.com") is None
    assert "you now act as bob@example.com" in _text(slack.command(f"link {code}", user=ANA))


def test_root_can_unlink_anyone(slack: Slack, session: Session) -> None:
    make_user(session, "root@example.com", root=True).slack_user_id = ROOT
    user = make_user(session, "ana@example.com")
    user.slack_user_id = ANA
    session.commit()
    root = _web(slack.app, "root@example.com")
    page = root.get(f"/users/{user.id}")
    assert ANA in text_of(page, "#slack")
    assert root.post(f"/users/{user.id}/slack/unlink").status_code == 302
    assert _linked(session, "ana@example.com") is None
    ana = _web(slack.app, "ana@example.com")
    root_id = session.scalar(select(User.id).where(User.email == "root@example.com"))
    assert ana.post(f"/users/{root_id}/slack/unlink").status_code == 403
    assert _linked(session, "root@example.com") == ROOT


def test_email_link_needs_a_confirmed_email(slack: Slack, session: Session) -> None:
    make_user(session, "ana@example.com", presets=["SMSReadOnlyAccess"])
    session.commit()
    slack.api.emails[ANA] = "ana@example.com"
    slack.api.unconfirmed.add(ANA)
    assert "not linked" in _text(slack.command("apps", user=ANA))
    assert _linked(session, "ana@example.com") is None
    slack.api.unconfirmed.clear()
    assert "not linked" not in _text(slack.command("apps", user=ANA))
    assert _linked(session, "ana@example.com") == ANA
    assert soup  # keep the parser helper importable here


def test_one_member_typing_two_codes_at_once(slack: Slack, session: Session) -> None:
    """Both redeems pass the "not linked yet" check; the unique member id refuses the
    second link, which answers plainly (no "something went wrong") and links nobody."""
    from tests.helpers import held_together, together

    for email in ("ana@example.com", "bob@example.com"):
        make_user(session, email, presets=["SMSReadOnlyAccess"])
    session.commit()
    codes = [_code(_web(slack.app, e)) for e in ("ana@example.com", "bob@example.com")]
    with held_together(slack.app.extensions["db"].engine, "UPDATE user_account",
                       "INSERT INTO audit_entry") as met:
        answers = together(*(lambda c=c: _text(slack.command(f"link {c}", user=ANA))
                             for c in codes))
    assert len(met) == 2
    assert sum("you now act as" in a for a in answers) == 1, answers
    assert any("just linked by another code" in a for a in answers), answers
    linked = [_linked(session, e) for e in ("ana@example.com", "bob@example.com")]
    assert sorted(linked, key=str) == sorted([ANA, None], key=str)
    assert session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "LinkSlackUser")) == 1


def test_an_unlink_is_not_undone_by_the_email_match(slack: Slack, session: Session) -> None:
    """Found from outside: after root (or the user) unlinked a member, the member's next
    command linked them again by their confirmed email, so root could not take Slack
    away from a user although the audit said "UnlinkSlackUser". After an unlink only a
    code links again."""
    root = make_user(session, "root@example.com", root=True)
    user = make_user(session, "ana@example.com", presets=["SMSReadOnlyAccess"])
    session.commit()
    slack.api.emails[ANA] = "ana@example.com"
    assert "not linked" not in _text(slack.command("apps", user=ANA))
    assert _linked(session, "ana@example.com") == ANA
    from tests.helpers import ctx_for

    slack_link.unlink(ctx_for(session, root), user.id)
    session.commit()
    assert "not linked" in _text(slack.command("apps", user=ANA))
    assert _linked(session, "ana@example.com") is None
    # The user may link again, with the proof of a code.
    ana = _web(slack.app, "ana@example.com")
    assert "you now act as ana@example.com" in _text(slack.command(f"link {_code(ana)}",
                                                                   user=ANA))
    assert _linked(session, "ana@example.com") == ANA


def test_a_disabled_user_is_told_so_not_asked_to_link(slack: Slack, session: Session) -> None:
    """Found from outside: a member linked to a disabled user was told to link their
    account, which they had; the answer says the user is disabled."""
    user = make_user(session, "ana@example.com", presets=["SMSReadOnlyAccess"])
    user.slack_user_id = ANA
    user.active = False
    session.commit()
    said = _text(slack.command("apps", user=ANA))
    assert "is disabled" in said and "/sms link" not in said, said
