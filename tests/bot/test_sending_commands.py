"""`/sms send`, `/sms mute`, `/sms unsubscribed` in Slack."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.models import User
from app.services import unsubscribes
from bot import blocks
from tests.bot.conftest import Slack
from tests.sending.conftest import Shop

ROOT = "U0ROOT0001"


def _link(session: Session, shop: Shop) -> None:
    session.get(User, shop.ctx.actor.user_id).slack_user_id = ROOT
    session.commit()


def test_send_then_the_reply_shows_the_receipt(slack: Slack, shop: Shop,
                                               session: Session) -> None:
    _link(session, shop)
    sid, tid = shop.app.sdk_app_id, shop.templates["international"]
    resp = slack.command(f"send {sid} {tid} +14155550101 4321", user=ROOT)
    assert "Sent to +14155550101: 1 billed item(s)" in resp.get_json()["text"]
    refused = slack.command(f"send {sid} {tid} +14155550102 4321", user=ROOT)
    assert "Sent to" in refused.get_json()["text"]
    slack.run_jobs()
    updates = [p["text"] for m, p in slack.api.calls if m == "response"]
    assert any("Delivered to +14155550101 (DELIVRD)" in t for t in updates)
    assert any("FailedOperation.GatewayRejected" in t and "MK:0012" in t for t in updates)


def test_send_refusals_and_usage(slack: Slack, shop: Shop, session: Session) -> None:
    _link(session, shop)
    sid, tid = shop.app.sdk_app_id, shop.templates["international"]
    bad = slack.command(f"send {sid} {tid} 12345 1234", user=ROOT).get_json()["text"]
    assert "IncorrectPhoneNumber" in bad
    usage = slack.command("send nope", user=ROOT).get_json()["text"]
    assert "/sms send 1400000001 12" in usage


def test_mute_and_unsubscribed(slack: Slack, shop: Shop, session: Session) -> None:
    _link(session, shop)
    none = slack.command("mute +14155550123", user=ROOT).get_json()["text"]
    assert "not on the mute list" in none
    no_consent = slack.command("mute add +14155550123 Shop marketing", user=ROOT)
    assert "consent" in no_consent.get_json()["text"]
    added = slack.command("mute add +14155550123 Shop marketing consent", user=ROOT)
    assert "muted for Shop (marketing)" in added.get_json()["text"]
    again = slack.command("mute add +14155550123 Shop marketing consent", user=ROOT)
    assert "was already muted for Shop" in again.get_json()["text"]  # found from outside
    assert "marketing" in slack.command("mute +14155550123", user=ROOT).get_json()["text"]
    unsubscribes.record(session, shop.app.account_id, "+14155550123",
                        shop.signatures["international"], "marketing", "reply")
    session.commit()
    out = slack.command("unsubscribed +14155550123", user=ROOT)
    assert "unsubscribed from:" in out.get_json()["text"] and "marketing" in (
        out.get_json()["text"])


def test_numbers_in_commands_match_every_other_entry_point(slack: Slack, shop: Shop,
                                                           session: Session) -> None:
    """Issue #8: one parser and one message, in Slack too (numbers without spaces,
    since Slack splits words)."""
    from tests.number_cases import BAD, GOOD

    _link(session, shop)
    sid = shop.app.sdk_app_id
    for raw, e164 in [(r, e) for r, e in GOOD if " " not in r]:
        added = slack.command(f"mute add {raw} Shop all consent", user=ROOT).get_json()["text"]
        assert "muted for Shop" in added
        assert f"{e164} is muted" in slack.command(f"mute {raw}", user=ROOT).get_json()["text"]
        out = slack.command(f"unsubscribed {raw}", user=ROOT).get_json()["text"]
        assert "has not unsubscribed" in out
    for raw, message in BAD:
        for command in (f"mute {raw}", f"mute add {raw} Shop all consent",
                        f"unsubscribed {raw}"):
            assert blocks.escape(message) in slack.command(command, user=ROOT).get_json()[
                "text"], command
        for region in ("mainland", "international"):
            out = slack.command(f"send {sid} {shop.templates[region]} {raw} 1234",
                                user=ROOT).get_json()["text"]
            assert "IncorrectPhoneNumber" in out and blocks.escape(message) in out


def test_ids_that_are_not_numbers_are_usage_not_an_error(slack: Slack, shop: Shop,
                                                          session: Session) -> None:
    """'²' passed str.isdigit and failed int(); an id of 23 digits failed in the
    database: both were "Something went wrong on our side"."""
    _link(session, shop)
    sid = shop.app.sdk_app_id
    for template in ("²", "9" * 23):
        text = slack.command(f"send {sid} {template} +14155550101 4321",
                             user=ROOT).get_json()["text"]
        assert "Try `/sms send" in text and "went wrong" not in text, text


def test_what_slack_escapes_in_a_command_is_read_as_typed(slack: Slack, shop: Shop,
                                                          session: Session) -> None:
    """Slack sends & < > of a slash command's text as &amp; &lt; &gt;: a parameter typed
    "R&D" went out as "R&amp;D"."""
    from sqlalchemy import select

    from app.models import Message
    from app.services import content, reviews
    from tests.helpers import ctx_for, make_user

    _link(session, shop)
    reviewer = ctx_for(session, make_user(session, "r2@example.com", presets=["SMSReviewer"]))
    t = content.create_template(shop.ctx, "international", {
        "name": "dept", "sms_type": "notification", "content": "Hello from {1}"})
    reviews.approve(reviewer, "template", t.id, revision=t.revision)
    session.commit()
    text = f"send {shop.app.sdk_app_id} {t.id} +14155550101 R&amp;D"
    answer = slack.command(text, user=ROOT).get_json()["text"]
    assert "Sent to +14155550101" in answer, answer
    session.expire_all()
    assert session.scalar(select(Message.content)).endswith("Hello from R&D")
