"""Mute list, replies with opt-out keywords, unsubscribe removals, credit packages."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import Message, MuteEntry, Unsubscribe
from app.models.sending import SUBMITTED
from app.services import mute, packages, replies, reviews, unsubscribes
from app.services.errors import Conflict, ValidationError
from tests.conftest import Backend
from tests.helpers import ctx_for, held_together, make_user, together
from tests.sending.conftest import Shop

US = "+14155550123"


def test_mute_list_rules(shop: Shop, session: Session) -> None:
    sig = shop.signatures["international"]
    with pytest.raises(ValidationError) as exc:
        mute.add(shop.ctx, phone_number="12", signature_id="", sms_type="weather", consent=False)
    assert set(exc.value.errors) == {"consent", "phone_number", "signature_id", "sms_type"}
    entry = mute.add(shop.ctx, phone_number=US, signature_id=sig, sms_type="", consent=True)
    assert mute.add(shop.ctx, phone_number=US, signature_id=sig, sms_type="",
                    consent=True).id == entry.id  # no duplicates
    assert shop.codes([US]) == ["FailedOperation.PhoneNumberInMuteList"]
    assert [e.phone_number for e in mute.entries(shop.ctx, "+1 415 555 0123")] == [US]
    assert mute.remove(shop.ctx, [entry.id]) == 1
    assert shop.codes([US]) == ["Ok"]


def test_mute_list_holds_1000_numbers(shop: Shop, session: Session) -> None:
    sig = shop.signatures["international"]
    session.add_all(MuteEntry(account_id=shop.app.account_id, phone_number=f"+1415555{n:04d}",
                              signature_id=sig, sms_type=None, consent_confirmed_by="x")
                    for n in range(1000))
    session.flush()
    with pytest.raises(ValidationError, match="at most 1,000"):
        mute.add(shop.ctx, phone_number="+14155551999", signature_id=sig, sms_type="",
                 consent=True)
    # A number already listed may get another entry.
    mute.add(shop.ctx, phone_number="+14155550001", signature_id=sig, sms_type="marketing",
             consent=True)


@pytest.mark.parametrize("word", ["TD", " t ", "n", "R", "stop", "Stop", "退订"])
def test_opt_out_keywords_unsubscribe(shop: Shop, session: Session, word: str) -> None:
    [r] = shop.send([US])
    session.execute(update(Message).values(status=SUBMITTED))  # as if it had left
    reply = replies.receive(shop.ctx, US, word)
    assert reply.unsubscribed and reply.message_id is not None
    assert shop.codes([US], params=["2222"]) == ["FailedOperation.PhoneNumberUnsubscribed"]
    gone = session.scalar(select(Unsubscribe))
    assert (gone.sms_type, gone.source) == ("verification", "reply")
    assert r.code == "Ok"


def test_other_replies_are_only_stored(shop: Shop, session: Session) -> None:
    reply = replies.receive(shop.ctx, US, "STOP please")
    assert not reply.unsubscribed and reply.message_id is None
    assert [x.text for x in replies.recent(shop.ctx)] == ["STOP please"]


def test_removal_requests_are_reviewed(shop: Shop, session: Session) -> None:
    sig = shop.signatures["international"]
    unsubscribes.record(session, shop.app.account_id, US, sig, "verification", "reply")
    with pytest.raises(Conflict, match="not unsubscribed"):
        unsubscribes.request_removal(shop.ctx, phone_number=US, signature_id=sig,
                                     sms_type="marketing", reason="asked again")
    with pytest.raises(ValidationError, match="Say why"):
        unsubscribes.request_removal(shop.ctx, phone_number=US, signature_id=sig,
                                     sms_type="verification", reason=" ")
    removal = unsubscribes.request_removal(shop.ctx, phone_number=US, signature_id=sig,
                                           sms_type="verification", reason="Customer asked")
    reviewer = ctx_for(session, make_user(session, "r2@example.com", presets=["SMSReviewer"]))
    assert "unsubscribe_removal" in [i.kind for i in reviews.queue(reviewer)]
    [found] = unsubscribes.query(shop.ctx, phone_number=US)
    assert found.sms_type == "verification"
    reviews.approve(reviewer, "unsubscribe_removal", removal.id, revision=removal.revision)
    assert unsubscribes.query(shop.ctx, phone_number=US) == []
    assert shop.codes([US]) == ["Ok"]


def test_packages_and_balance_alarm(shop: Shop, session: Session) -> None:
    from app.models import Notification
    from app.services import app_config

    app_config.add_contact(shop.ctx, shop.app.sdk_app_id, name="Money",
                           email="money@example.com", events=["package"])
    with pytest.raises(ValidationError) as exc:
        packages.add(shop.ctx, name="", size="0", expires_on="2020-01-01")
    assert set(exc.value.errors) == {"name", "size", "expires_on"}
    packages.add(shop.ctx, name="Starter", size="3", expires_on="2099-12-31")
    packages.set_alarm_threshold(shop.ctx, "1")
    assert shop.codes(["13800000001", "13800000002", "13800000003", "13800000004"],
                      template="mainland") == ["Ok", "Ok", "Ok",
                                               "FailedOperation.InsufficientBalanceInSmsPackage"]
    assert packages.balance(packages.packages(shop.ctx)) == 0
    alarms = session.scalars(select(Notification).where(Notification.event == "package")).all()
    assert [(a.recipient, a.subject) for a in alarms] == [("money@example.com",
                                                           "Credit balance is low")]


def test_two_identical_opt_outs_at_once_add_one_row(shop: Shop, session: Session,
                                                    backend: Backend) -> None:
    """Two STOP replies applied together: both insert at once, the second waits for the
    first's row and skips it (it failed its reply job on the unique key before)."""
    sig = shop.signatures["international"]
    session.commit()

    def apply() -> object:
        with backend.db.sessions() as s:
            try:
                added = unsubscribes.record(s, shop.app.account_id, US, sig, "marketing",
                                            "reply")
                s.commit()
                return added
            except Exception as exc:  # what the assertion below reports
                return exc

    with held_together(backend.db.engine, "INSERT INTO unsubscribe"):
        outcomes = together(apply, apply)
    assert sorted(outcomes, key=repr) == [False, True]
    assert session.scalar(select(func.count()).select_from(Unsubscribe)) == 1
