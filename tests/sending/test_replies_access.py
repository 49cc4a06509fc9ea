"""Replies are read with the reader's policy (issue #8): a user denied an application
does not see its replies."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.models import Message
from app.models.sending import SUBMITTED
from app.services import apps, replies, sending
from app.services.errors import PermissionDenied
from tests.helpers import ctx_for, doc, make_user
from tests.sending.conftest import Shop

SHOP_NUMBER, OTHER_NUMBER, STRANGER = "+14155550123", "+14155550124", "+14155550199"


def _replies_to_two_apps(shop: Shop, session: Session) -> str:
    other, _key = apps.create_app(shop.ctx, name="Other")
    assert [r.code for r in shop.send([SHOP_NUMBER])] == ["Ok"]
    req = sending.SendRequest([OTHER_NUMBER], shop.templates["international"], ["654321"])
    assert [r.code for r in sending.send(shop.ctx, shop.limiter, other.sdk_app_id, req)[1]] \
        == ["Ok"]
    session.execute(update(Message).values(status=SUBMITTED))  # as if they had left
    replies.receive(shop.ctx, SHOP_NUMBER, "to shop")
    replies.receive(shop.ctx, OTHER_NUMBER, "to other")
    replies.receive(shop.ctx, STRANGER, "to nobody")  # answers no message we know
    session.flush()
    return other.sdk_app_id


def test_a_denied_application_hides_its_replies(shop: Shop, session: Session) -> None:
    _replies_to_two_apps(shop, session)
    assert [r.text for r in replies.recent(shop.ctx)] == ["to nobody", "to other", "to shop"]
    denied = make_user(session, "denied@example.com", policies=[doc(
        ("allow", ["sms:*"], ["sms:app/*"]),
        ("deny", ["sms:DescribeSendSmsRecord"], [f"sms:app/{shop.app.sdk_app_id}"]))])
    assert [r.text for r in replies.recent(ctx_for(session, denied))] == [
        "to nobody", "to other"]


def test_a_user_scoped_to_one_application_sees_only_its_replies(shop: Shop,
                                                                session: Session) -> None:
    other = _replies_to_two_apps(shop, session)
    scoped = make_user(session, "scoped@example.com", policies=[doc(
        ("allow", ["sms:DescribeSendSmsRecord"], [f"sms:app/{other}"]))])
    assert [r.text for r in replies.recent(ctx_for(session, scoped))] == ["to other"]
    nobody = make_user(session, "nobody@example.com", policies=[doc(
        ("allow", ["sms:DescribeAppList"], ["sms:app/*"]))])
    with pytest.raises(PermissionDenied, match="DescribeSendSmsRecord"):
        replies.recent(ctx_for(session, nobody))


def test_a_simulated_reply_needs_the_rights_its_effects_need(shop: Shop,
                                                             session: Session) -> None:
    """Found from outside: the simulator's reply form checked SendSms on every
    application only, so a user denied an application could file a reply on its message
    and unsubscribe its recipient without ModifyUnsubscribe."""
    from app.models import Unsubscribe
    from app.services.errors import NotFound

    other = _replies_to_two_apps(shop, session)
    denied = ctx_for(session, make_user(session, "fdeny@example.com", policies=[doc(
        ("allow", ["sms:*"], ["sms:app/*"]), ("deny", ["sms:*"], [f"sms:app/{other}"]))]))
    with pytest.raises((NotFound, PermissionDenied)):
        replies.simulate(denied, OTHER_NUMBER, "TD")
    sender = ctx_for(session, make_user(session, "sender@example.com", policies=[doc(
        ("allow", ["sms:SendSms", "sms:DescribeAppList"], ["sms:app/*"]))]))
    with pytest.raises(PermissionDenied, match="ModifyUnsubscribe"):
        replies.simulate(sender, SHOP_NUMBER, "TD")
    assert session.query(Unsubscribe).count() == 0
    assert replies.simulate(sender, SHOP_NUMBER, "thanks").text == "thanks"
    assert replies.simulate(shop.ctx, OTHER_NUMBER, "TD").unsubscribed
