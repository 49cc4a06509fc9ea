"""Who alarm contacts hear from, and confirming their mobile (issue #8, finding 1).

The rule (README, *Notifications*): review results are about account-level content,
so they reach a contact only while the user who last saved the contact may read that
kind of content on the whole account (`sms:app/*`)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import AlarmContact, Notification, Policy, User
from app.services import app_config, content, notifications, reviews, users
from app.services.errors import Conflict, PermissionDenied, ValidationError
from app.sms import alarm_texts
from tests.helpers import ctx_for, doc, make_user, root_ctx
from tests.sending import conftest as sending
from tests.sending.conftest import Shop

shop = sending.shop  # the fixture: an application with effective content

SMS = ("email", "sms")


def _scoped(sid: str) -> str:
    return doc(("allow", ["sms:*"], [f"sms:app/{sid}"]))


def test_scoped_user_cannot_subscribe_a_contact_to_account_review_results(
        session: Session, shop: Shop) -> None:
    sid = shop.app.sdk_app_id
    scoped = ctx_for(session, make_user(session, "scoped@example.com", policies=[_scoped(sid)]))
    with pytest.raises(ValidationError) as exc:
        app_config.add_contact(scoped, sid, name="Mine", email="mine@example.com",
                               events=["review", "threshold"])
    assert "review" in exc.value.errors["events"].lower()
    assert session.scalars(select(AlarmContact)).all() == []
    # Their own application's alarms are theirs to route.
    contact = app_config.add_contact(scoped, sid, name="Mine", email="mine@example.com",
                                     events=["threshold"])
    assert contact.saved_by_id == scoped.actor.user_id
    # Nor may they turn review results on for a contact someone else saved.
    other = app_config.add_contact(shop.ctx, sid, name="Lead", email="lead@example.com",
                                   events=["review"])
    with pytest.raises(ValidationError):
        app_config.update_contact(scoped, sid, other.id, name="Lead", email="x@example.com",
                                  events=["review"])


def _decide(session: Session, reviewer, kind: str, obj_id: int, reject: bool = True) -> set[str]:  # type: ignore[no-untyped-def]
    before = session.scalar(select(Notification.id).order_by(Notification.id.desc())) or 0
    if reject:
        reviews.reject(reviewer, kind, obj_id, "Not allowed <b>here</b>",
                       revision=reviews.load(reviewer, kind, obj_id).revision)
    else:
        reviews.approve(reviewer, kind, obj_id,
                        revision=reviews.load(reviewer, kind, obj_id).revision)
    return {n.recipient for n in session.scalars(select(Notification).where(
        Notification.id > before, Notification.event == "review"))}


def test_review_results_reach_only_contacts_whose_saver_may_read_the_content(
        session: Session, shop: Shop) -> None:
    sid = shop.app.sdk_app_id
    root = shop.ctx
    reviewer = ctx_for(session, session.scalars(select(User).where(
        User.email == "rev@example.com")).one())
    lead_user = make_user(session, "lead@example.com",
                          policies=[doc(("allow", ["sms:*"], ["sms:app/*"]))])
    tpl_user = make_user(session, "tpl@example.com", policies=[doc(
        ("allow", ["sms:DescribeSmsTemplateList", "sms:*NewsReceiver"], ["sms:app/*"]))])
    app_config.add_contact(ctx_for(session, lead_user), sid, name="A", email="a@example.com",
                           events=["review"])
    app_config.add_contact(ctx_for(session, tpl_user), sid, name="B", email="b@example.com",
                           events=["review"])
    app_config.add_contact(root, sid, name="C", email="c@example.com", events=["threshold"])

    def template(name: str) -> int:
        return content.create_template(root, "international", {
            "name": name, "sms_type": "notification", "content": "Order {1} shipped"}).id

    assert _decide(session, reviewer, "template", template("t1")) == {
        "root@example.com", "a@example.com", "b@example.com"}
    sig = content.create_signature(root, "international", {
        "purpose": "self", "sign_type": "company", "content": "Other"})
    # The template-only reader's contact hears nothing about signatures.
    assert _decide(session, reviewer, "signature", sig.id, reject=False) == {
        "root@example.com", "a@example.com"}
    # The lead's policy narrows to one application: their contact stops hearing at once.
    narrowed = Policy(account_id=lead_user.account_id, name="lead-scoped",
                      document=_scoped(sid))
    session.add(narrowed)
    lead_user.policies = [narrowed]
    session.flush()
    assert _decide(session, reviewer, "template", template("t2")) == {
        "root@example.com", "b@example.com"}
    # Nobody vouches for a contact whose saver was deleted.
    users.delete_user(root, tpl_user.id)
    session.expire_all()
    assert _decide(session, reviewer, "template", template("t3")) == {"root@example.com"}


def test_alarm_sms_rows_carry_catalogue_text_only(session: Session, shop: Shop) -> None:
    sid = shop.app.sdk_app_id
    root = ctx_for(session, session.scalars(select(User).where(User.is_root)).one(),
                   notify_channels=SMS)
    reviewer = ctx_for(session, session.scalars(select(User).where(
        User.email == "rev@example.com")).one(), notify_channels=SMS)
    contact = app_config.add_contact(root, sid, name="Ops", mobile="+8613900000001",
                                     email="ops@example.com", events=["review"])
    contact.mobile_confirmed_at = utcnow()
    t = content.create_template(root, "international", {
        "name": "WIN cash now", "sms_type": "notification", "content": "Order {1} shipped"})
    reviews.reject(reviewer, "template", t.id, "Call 4006 to claim",
                   revision=reviews.load(reviewer, "template", t.id).revision)
    [sms] = session.scalars(select(Notification).where(Notification.channel == "sms")).all()
    assert sms.body == f"Review result: template #{t.id} is rejected. Details in the console."
    assert alarm_texts.is_catalogued(sms.body) and "WIN" not in sms.body
    [email] = session.scalars(select(Notification).where(
        Notification.recipient == "ops@example.com")).all()
    assert "WIN cash now" in email.subject and "Call 4006" in email.body  # details by email


def test_unconfirmed_mobile_gets_no_sms_row(session: Session, shop: Shop) -> None:
    sid = shop.app.sdk_app_id
    root = ctx_for(session, session.scalars(select(User).where(User.is_root)).one(),
                   notify_channels=SMS)
    app_config.add_contact(root, sid, name="Ops", mobile="+8613900000001",
                           events=["review", "threshold"])
    assert notifications.contact_recipients(root, "threshold", shop.app.id) == []
    assert notifications.contact_recipients(root, "review",
                                            read_action="DescribeSmsTemplateList") == []


def test_mobile_confirmation_rules(session: Session, shop: Shop) -> None:
    sid = shop.app.sdk_app_id
    root = ctx_for(session, session.scalars(select(User).where(User.is_root)).one(),
                   notify_channels=SMS)
    contact = app_config.add_contact(root, sid, name="Ops", mobile="+8613900000001",
                                     email="ops@example.com", events=["threshold"])
    no_mobile = app_config.add_contact(root, sid, name="Mail", email="m@example.com",
                                       events=["threshold"])
    with pytest.raises(Conflict, match="no mobile"):
        app_config.send_mobile_code(root, sid, no_mobile.id)
    app_config.send_mobile_code(root, sid, contact.id)
    [row] = session.scalars(select(Notification).where(Notification.channel == "sms")).all()
    assert row.event == notifications.CONFIRM_EVENT and alarm_texts.is_catalogued(row.body)
    code = row.body.split("code is ")[1][:6]
    with pytest.raises(Conflict, match="Wait"):
        app_config.send_mobile_code(root, sid, contact.id)  # one code a minute
    wrong = "000000" if code != "000000" else "111111"
    assert "Wrong code" in (app_config.confirm_mobile(root, sid, contact.id, wrong) or "")
    assert "6 digits" in (app_config.confirm_mobile(root, sid, contact.id, "12ab") or "")
    assert app_config.confirm_mobile(root, sid, contact.id, code) is None
    assert contact.mobile_confirmed_at is not None and contact.confirm_code_hash is None
    # A new mobile must be confirmed again; an unchanged one stays confirmed.
    app_config.update_contact(root, sid, contact.id, name="Ops 2", mobile="+8613900000001",
                              email="ops@example.com", events=["threshold"])
    assert contact.mobile_confirmed_at is not None
    app_config.update_contact(root, sid, contact.id, name="Ops 2", mobile="+8613900000004",
                              email="ops@example.com", events=["threshold"])
    assert contact.mobile_confirmed_at is None


def _last_code(session: Session) -> str:
    row = session.scalars(select(Notification).where(Notification.channel == "sms")
                          .order_by(Notification.id.desc())).first()
    assert row is not None
    return row.body.split("code is ")[1][:6]


def test_code_expires_and_wrong_tries_are_limited(session: Session, shop: Shop) -> None:
    sid = shop.app.sdk_app_id
    root = root_ctx(session)
    contact = app_config.add_contact(root, sid, name="Ops", mobile="+8613900000001",
                                     events=["threshold"])
    app_config.send_mobile_code(root, sid, contact.id)
    code = _last_code(session)
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(app_config.CONFIRM_MAX_TRIES):
        assert app_config.confirm_mobile(root, sid, contact.id, wrong)
    # Out of tries: even the right code is refused until a new one is sent.
    assert "new code" in (app_config.confirm_mobile(root, sid, contact.id, code) or "")
    assert contact.mobile_confirmed_at is None
    contact.confirm_sent_at = utcnow() - timedelta(minutes=2)
    app_config.send_mobile_code(root, sid, contact.id)
    code = _last_code(session)
    contact.confirm_expires_at = utcnow() - timedelta(seconds=1)
    assert "expired" in (app_config.confirm_mobile(root, sid, contact.id, code) or "")
    # Codes per day are capped, so the form cannot be used to flood a phone.
    contact.confirm_sends = app_config.CONFIRM_SENDS_PER_DAY
    contact.confirm_sent_at = utcnow() - timedelta(minutes=2)
    with pytest.raises(Conflict, match="today"):
        app_config.send_mobile_code(root, sid, contact.id)


def test_scoped_user_cannot_confirm_other_apps_contacts(session: Session, shop: Shop) -> None:
    from app.services.apps import create_app
    from app.services.errors import NotFound

    other, _ = create_app(shop.ctx, name="Other")
    contact = app_config.add_contact(shop.ctx, other.sdk_app_id, name="Ops",
                                     mobile="+8613900000001", events=["threshold"])
    scoped = ctx_for(session, make_user(session, "s@example.com",
                                        policies=[_scoped(shop.app.sdk_app_id)]))
    with pytest.raises(NotFound):
        app_config.send_mobile_code(scoped, other.sdk_app_id, contact.id)
    with pytest.raises(NotFound):
        app_config.confirm_mobile(scoped, other.sdk_app_id, contact.id, "123456")
    reader = ctx_for(session, make_user(session, "ro@example.com",
                                        presets=["SMSReadOnlyAccess"]))
    with pytest.raises(PermissionDenied):
        app_config.send_mobile_code(reader, other.sdk_app_id, contact.id)
    with pytest.raises(PermissionDenied):
        app_config.confirm_mobile(reader, other.sdk_app_id, contact.id, "123456")


class _Counting:
    """The simulator behind a list of what reached it."""

    name = "sms"

    def __init__(self) -> None:
        from app.gateways.simulator import SimulatorGateway
        from app.notify.sms import SmsChannel

        self.texts: list[str] = []
        self.inner = SmsChannel(SimulatorGateway())

    def send(self, message) -> None:  # type: ignore[no-untyped-def]
        self.inner.send(message)
        self.texts.append(message.body)


def test_alarm_sms_per_number_per_hour_and_unsubscribed(session: Session, shop: Shop) -> None:
    from app.models import Unsubscribe
    from app.models.notifications import REFUSED, SENT
    from app.notify import Channels

    sid = shop.app.sdk_app_id
    root = ctx_for(session, session.scalars(select(User).where(User.is_root)).one(),
                   notify_channels=SMS)
    contact = app_config.add_contact(root, sid, name="Ops", mobile="+8613900000001",
                                     events=["threshold"])
    contact.mobile_confirmed_at = utcnow()
    channel = _Counting()
    channels = Channels()
    channels.add(channel)
    text = alarm_texts.render("frequency", app=sid, used=1)
    ids = []
    for _ in range(notifications.SMS_PER_NUMBER_HOUR + 2):
        [row] = notifications.notify(root, "frequency", [("sms", contact.mobile)], "Hit", "b",
                                     sms=text)
        ids.append(row.id)
    notifications.deliver(session, ids, channels)
    rows = [session.get(Notification, i) for i in ids]
    assert len(channel.texts) == notifications.SMS_PER_NUMBER_HOUR
    assert [r.status for r in rows].count(SENT) == notifications.SMS_PER_NUMBER_HOUR
    assert all(r.status == REFUSED and "per hour" in (r.error or "") for r in rows[-2:])
    # A number that unsubscribed from notifications gets no alarm SMS either.
    session.add(Unsubscribe(account_id=root.actor.account_id, phone_number="+8613900000004",
                            signature_id=shop.signatures["mainland"], sms_type="notification"))
    contact.mobile = "+8613900000004"
    [row] = notifications.notify(root, "frequency", [("sms", contact.mobile)], "Hit", "b",
                                 sms=text)
    notifications.deliver(session, [row.id], channels)
    assert row.status == REFUSED and "unsubscribed" in (row.error or "")
    assert len(channel.texts) == notifications.SMS_PER_NUMBER_HOUR
