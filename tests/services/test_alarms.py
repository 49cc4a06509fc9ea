"""The alarm service (issue #12): every event through one place, once per period
(also with two workers at once), recorded with a delivery per channel."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import Account, AlarmContact, CreditPackage, Notification, User
from app.models.alarms import Alarm, AlarmDelivery
from app.services import accounts, alarms, app_config, content, monitors, reviews
from app.services.context import Ctx, Settings
from app.services.errors import NotFound, PermissionDenied, ValidationError
from app.sms import alarm_texts
from tests.conftest import Backend
from tests.helpers import ctx_for, make_user
from tests.sending import conftest as sending
from tests.sending.conftest import Shop

shop = sending.shop  # the fixture: an application with effective content

ALL_EVENTS = ["frequency", "threshold", "review", "package", "captcha", "link", "task"]
MOBILE = "+8613900000001"
SETTINGS = Settings(notify_channels=("email", "sms", "slack"), alarm_channel="CALARM001")
EVERY_CHANNEL = {("email", "ops@example.com"), ("sms", MOBILE), ("slack", "U0ONCALL1"),
                 ("slack", "CALARM001")}


def _ctx(shop: Shop) -> Ctx:
    return Ctx(shop.ctx.db, shop.ctx.actor, SETTINGS)


def _contact(shop: Shop, session: Session, events: list[str] = ALL_EVENTS) -> AlarmContact:
    contact = app_config.add_contact(shop.ctx, shop.app.sdk_app_id, name="Ops", mobile=MOBILE,
                                     email="ops@example.com", slack_user_id="U0ONCALL1",
                                     events=events)
    contact.mobile_confirmed_at = utcnow()  # the code round trip is tests/jobs/test_alarm_sms
    session.flush()
    return contact


def _delivered(session: Session, alarm: Alarm) -> set[tuple[str, str]]:
    rows = session.execute(select(Notification.channel, Notification.recipient).join(
        AlarmDelivery, AlarmDelivery.notification_id == Notification.id).where(
        AlarmDelivery.alarm_id == alarm.id)).all()
    return {(channel, recipient) for channel, recipient in rows}


def _alarms(session: Session, event: str) -> list[Alarm]:
    return list(session.scalars(select(Alarm).where(Alarm.event == event).order_by(Alarm.id)))


def test_sending_events_reach_every_channel_once(shop: Shop, session: Session) -> None:
    """Threshold, limit, frequency, quota, package low: raised by real sends."""
    _contact(shop, session)
    sid = shop.app.sdk_app_id
    c = _ctx(shop)
    shop.ctx = c
    app_config.set_thresholds(c, sid, "international", alarm_threshold=2, daily_limit=3)
    numbers = [f"+1415555{n:04d}" for n in range(200, 206)]
    assert shop.codes(numbers) == ["Ok"] * 3 + ["LimitExceeded.AppDailyLimit"] * 3
    assert shop.codes(numbers[:1]) == ["LimitExceeded.AppDailyLimit"]  # no second alarm
    [threshold] = _alarms(session, "threshold")
    [limit] = _alarms(session, "limit")
    assert threshold.figures["value"] == 3 and threshold.figures["threshold"] == 2
    assert limit.figures["threshold"] == 3 and limit.figures["sdk_app_id"] == sid
    for a in (threshold, limit):
        assert _delivered(session, a) == EVERY_CHANNEL

    app_config.set_frequency(c, sid, {"30s": (True, 1), "hour": (False, 5),
                                      "day": (False, 10)})
    app_config.set_thresholds(c, sid, "mainland", alarm_threshold=None, daily_limit=None)
    cn = ["13800000001", "13800000002", "13800000003"]
    assert shop.codes(cn, template="mainland") == ["Ok"] * 3
    assert shop.codes(cn, template="mainland") == [
        "LimitExceeded.PhoneNumberThirtySecondLimit"] * 3
    assert shop.codes(cn[:1], template="mainland") == [
        "LimitExceeded.PhoneNumberThirtySecondLimit"]
    [frequency] = _alarms(session, "frequency")  # at most one per application per hour
    assert frequency.figures["value"] == 3 and "refused 3 number(s)" in frequency.body
    texted = session.scalar(select(Notification.body).join(
        AlarmDelivery, AlarmDelivery.notification_id == Notification.id).where(
        AlarmDelivery.alarm_id == frequency.id, Notification.channel == "sms"))
    assert texted == (f"App {sid}: frequency limits refused 3 number(s) so far this hour. "
                      "Details in the console.")
    assert _delivered(session, frequency) == EVERY_CHANNEL
    # When the hour is over, the hourly job writes the hour's total on the alarm.
    deferred: list = []
    assert alarms.finish_frequency(session, shop.limiter.conn, utcnow(), deferred) == 0
    assert alarms.finish_frequency(session, shop.limiter.conn,
                                   utcnow() + timedelta(hours=1), deferred) == 1
    assert frequency.figures["value"] == 4 and frequency.figures["final"]
    assert "In the whole hour: 4 number(s) refused." in frequency.body
    assert deferred == [("jobs.alarms.refresh", (frequency.id,))]

    accounts.update_settings(c, account_type="enterprise", timezone="Asia/Shanghai",
                             intl_daily_quota=3, reply_callback_url="",
                             reply_callback_enabled=False)
    app_config.set_thresholds(c, sid, "international", alarm_threshold=None, daily_limit=None)
    assert shop.codes(["+442079460958"]) == ["LimitExceeded.AccountInternationalDailyQuota"]
    [quota] = _alarms(session, "quota")
    assert _delivered(session, quota) == EVERY_CHANNEL
    assert alarm_texts.is_catalogued(
        session.scalar(select(Notification.body).join(AlarmDelivery, AlarmDelivery
                                                      .notification_id == Notification.id)
                       .where(AlarmDelivery.alarm_id == quota.id,
                              Notification.channel == "sms")) or "")

    acct = session.get(Account, shop.app.account_id)
    assert acct is not None
    acct.package_alarm_threshold = 5
    session.add(CreditPackage(account_id=acct.id, name="p", size=6, remaining=6,
                              expires_at=utcnow() + timedelta(days=30)))
    session.flush()
    assert shop.codes(["13800000009"], template="mainland", params=["4242"]) == ["Ok"]
    assert shop.codes(["13800000008"], template="mainland", params=["4243"]) == ["Ok"]
    [low] = _alarms(session, "package_low")  # once per day
    assert low.app_id is None and low.figures["threshold"] == 5
    assert _delivered(session, low) == EVERY_CHANNEL


def test_review_result_reaches_submitter_and_allowed_contacts(shop: Shop,
                                                              session: Session) -> None:
    _contact(shop, session, ["review"])
    c = _ctx(shop)
    t = content.create_template(c, "international", {"name": "Hi", "sms_type": "notification",
                                                     "content": "Order {1} shipped"})
    rev = session.scalars(select(User).where(User.email == "rev@example.com")).one()
    reviewer = ctx_for(session, rev, **SETTINGS.__dict__)
    reviews.approve(reviewer, "template", t.id, revision=t.revision)
    review = _alarms(session, "review")[-1]  # the shop's own content was reviewed before
    assert review.figures["object_id"] == t.id
    got = _delivered(session, review)
    assert ("email", "root@example.com") in got  # the submitter
    assert {("email", "ops@example.com"), ("sms", MOBILE), ("slack", "U0ONCALL1")} <= got
    assert ("slack", "CALARM001") not in got  # review results are not alarm-channel events


def test_once_per_period_with_two_workers_at_once(shop: Shop, session: Session,
                                                  backend: Backend) -> None:
    _contact(shop, session, ["captcha"])
    session.commit()
    barrier = threading.Barrier(2)
    made: list[bool] = []

    def worker() -> None:
        s = backend.db.sessions()
        try:
            c = alarms.system_ctx(s, shop.app.account_id, SETTINGS)
            assert c is not None
            app = s.get(type(shop.app), shop.app.id)
            barrier.wait(timeout=10)
            found = alarms.raise_alarm(
                c, backend.redis, "captcha", period=f"{shop.app.id}:2026112501", ttl_s=60,
                app=app, subject="Captcha", body="b",
                sms=alarm_texts.render("captcha", app=shop.app.sdk_app_id))
            s.commit()
            made.append(found is not None)
        finally:
            s.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(made) == [False, True]
    session.expire_all()
    assert len(_alarms(session, "captcha")) == 1


def test_carrier_link_down_for_a_minute_then_back_up(shop: Shop, session: Session,
                                                     backend: Backend) -> None:
    _contact(shop, session, ["link"])
    t0 = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    deferred: list = []

    def seen(up: bool, seconds: int) -> list[Alarm]:
        return alarms.link_seen(session, backend.redis, up, SETTINGS, deferred,
                                now=t0 + timedelta(seconds=seconds))

    # A blip shorter than a minute tells nobody, down or up.
    assert seen(False, 0) == [] and seen(False, 59) == [] and seen(True, 60) == []
    assert seen(False, 100) == [] and seen(False, 130) == []
    [down] = seen(False, 161)
    assert down.event == "link_down" and seen(False, 300) == []  # once per outage
    [up] = seen(True, 400)
    assert up.event == "link_up" and "5 minute(s)" in up.subject
    assert seen(True, 401) == []
    assert _delivered(session, down) == {("email", "ops@example.com"), ("sms", MOBILE),
                                         ("slack", "U0ONCALL1"), ("slack", "CALARM001")}
    assert any(job == "jobs.notify.deliver" for job, _args in deferred)


def test_task_events_once_per_task(shop: Shop, session: Session, backend: Backend) -> None:
    _contact(shop, session, ["task"])
    c = _ctx(shop)
    a = alarms.raise_task_event(c, backend.redis, shop.app, 42, "failed", "Gateway gone")
    assert a is not None and alarms.raise_task_event(c, backend.redis, shop.app, 42,
                                                     "failed") is None
    assert alarms.raise_task_event(c, backend.redis, shop.app, 42, "stopped") is not None
    assert "Gateway gone" in a.body and _delivered(session, a) == EVERY_CHANNEL
    with pytest.raises(ValueError):
        alarms.raise_task_event(c, backend.redis, shop.app, 42, "sent")


def test_expired_package_alarm_once(shop: Shop, session: Session, backend: Backend) -> None:
    _contact(shop, session, ["package"])
    now = utcnow()
    session.add(CreditPackage(account_id=shop.app.account_id, name="Q3 pack", size=9,
                              remaining=4, expires_at=now - timedelta(hours=2)))
    session.flush()
    deferred: list = []
    assert monitors.check_packages(session, backend.redis, SETTINGS, deferred, now) == 1
    assert monitors.check_packages(session, backend.redis, SETTINGS, deferred, now) == 0
    [expired] = _alarms(session, "package_expired")
    assert "Q3 pack" in expired.subject and _delivered(session, expired) == EVERY_CHANNEL


def test_acknowledge_and_history_filters(shop: Shop, session: Session,
                                         backend: Backend) -> None:
    c = _ctx(shop)
    a = alarms.raise_task_event(c, backend.redis, shop.app, 1, "failed")
    b = alarms.raise_task_event(c, backend.redis, shop.app, 2, "stopped")
    assert a is not None and b is not None
    reader = ctx_for(session, make_user(session, "ro@example.com",
                                        presets=["SMSReadOnlyAccess"]))
    with pytest.raises(PermissionDenied):
        alarms.acknowledge(reader, a.id)
    alarms.acknowledge(c, a.id)
    assert a.acknowledged_by == "root@example.com" and a.acknowledged_at is not None
    assert ("jobs.alarms.refresh", (a.id,)) in c.deferred
    rows, total = alarms.history(reader, alarms.parse_filters(event="task_failed"))
    assert total == 1 and rows[0].id == a.id
    rows, total = alarms.history(reader, alarms.parse_filters(sdk_app_id=shop.app.sdk_app_id))
    assert total == 2
    rows, total = alarms.history(reader, alarms.parse_filters(since="2000-01-01",
                                                              until="2000-01-02"))
    assert total == 0
    with pytest.raises(ValidationError) as exc:
        alarms.parse_filters(sdk_app_id="x", event="nope", since="yesterday")
    assert set(exc.value.errors) == {"app", "event", "since"}
    with pytest.raises(NotFound):
        alarms.get(reader, 999999)


def test_scoped_users_see_only_their_applications_alarms(shop: Shop, session: Session,
                                                         backend: Backend) -> None:
    from app.services import apps
    from tests.helpers import doc

    c = _ctx(shop)
    other, _key = apps.create_app(c, name="Other")
    mine = alarms.raise_task_event(c, backend.redis, shop.app, 1, "failed")
    theirs = alarms.raise_task_event(c, backend.redis, other, 2, "failed")
    account_wide = alarms.raise_alarm(c, backend.redis, "package_low", period="x", ttl_s=60,
                                      app=None, subject="Low", body="b",
                                      sms=alarm_texts.render("package", left=1))
    assert mine and theirs and account_wide
    scoped = ctx_for(session, make_user(session, "scoped@example.com", policies=[doc(
        ("allow", ["sms:Describe*"], [f"sms:app/{shop.app.sdk_app_id}"]))]))
    rows, total = alarms.history(scoped, alarms.Filters())
    assert [a.id for a in rows] == [mine.id] and total == 1
    assert alarms.get(scoped, mine.id) is mine
    for hidden in (theirs, account_wide):
        with pytest.raises(NotFound):
            alarms.get(scoped, hidden.id)
    nobody = ctx_for(session, make_user(session, "none@example.com", policies=[doc(
        ("allow", ["sms:SendSms"], ["sms:app/*"]))]))
    with pytest.raises(PermissionDenied):
        alarms.history(nobody, alarms.Filters())


def test_raise_limit_for_a_region_and_a_country(shop: Shop, session: Session) -> None:
    sid = shop.app.sdk_app_id
    c = _ctx(shop)
    shop.ctx = c
    app_config.set_country(c, sid, iso_code="US", alarm_threshold=1, daily_limit=1)
    assert shop.codes(["+14155550300", "+14155550301"]) == [
        "Ok", "LimitExceeded.AppCountryOrRegionDailyLimit"]
    [country] = _alarms(session, "country_limit")
    target = alarms.limit_target(c, country.id)
    assert (target.country, target.daily_limit) == ("US", 1)
    alarms.raise_limit(c, country.id, alarm_threshold="5", daily_limit="10")
    [us] = [x for x in shop.app.countries if x.iso_code == "US"]
    assert (us.alarm_threshold, us.daily_limit) == (5, 10)
    assert shop.codes(["+14155550302"]) == ["Ok"]
    reader = ctx_for(session, make_user(session, "ro2@example.com",
                                        presets=["SMSReadOnlyAccess"]))
    with pytest.raises(PermissionDenied):
        alarms.limit_target(reader, country.id)
    other = alarms.raise_task_event(c, None, shop.app, 9, "failed")
    assert other is not None
    with pytest.raises(ValidationError):
        alarms.limit_target(c, other.id)


def test_an_alarm_rolled_back_is_raised_again(shop: Shop, session: Session,
                                              backend: Backend) -> None:
    """The period's claim in Redis follows the transaction: not committed, given back."""
    session.commit()
    c = _ctx(shop)
    assert alarms.raise_task_event(c, backend.redis, shop.app, 11, "failed") is not None
    session.rollback()  # e.g. the request failed after the alarm was recorded
    assert alarms.raise_task_event(c, backend.redis, shop.app, 11, "failed") is not None
    session.commit()
    assert alarms.raise_task_event(c, backend.redis, shop.app, 11, "failed") is None
    session.close()  # closing without commit gives back too
    assert alarms.raise_task_event(c, backend.redis, shop.app, 11, "stopped") is not None
    session.close()
    assert alarms.raise_task_event(c, backend.redis, shop.app, 11, "stopped") is not None
    session.commit()
    assert len(_alarms(session, "task_failed")) == 1
    assert len(_alarms(session, "task_stopped")) == 1


def test_a_threshold_without_a_limit_fires_once_a_day(shop: Shop, session: Session) -> None:
    """The alarm threshold is its own setting: no daily limit needed beside it."""
    _contact(shop, session, ["threshold"])
    sid = shop.app.sdk_app_id
    c = _ctx(shop)
    shop.ctx = c
    app_config.set_thresholds(c, sid, "mainland", alarm_threshold=2, daily_limit=None)
    app_config.set_thresholds(c, sid, "international", alarm_threshold=2, daily_limit=None)
    app_config.set_country(c, sid, iso_code="GB", alarm_threshold=1, daily_limit=None)
    app_config.set_country(c, sid, iso_code="US", alarm_threshold=None, daily_limit=None)
    cn = ["13800000011", "13800000012", "13800000013"]
    assert shop.codes(cn[:1], template="mainland") == ["Ok"]
    assert _alarms(session, "threshold") == []  # 1 of 2: not yet
    assert shop.codes(cn[1:], template="mainland") == ["Ok"] * 2
    assert shop.codes(["13800000014"], template="mainland") == ["Ok"]  # once a day
    [mainland] = _alarms(session, "threshold")
    assert mainland.figures["region"] == "mainland" and mainland.figures["value"] == 3
    assert _delivered(session, mainland) == EVERY_CHANNEL

    assert shop.codes(["+14155550400", "+14155550401"]) == ["Ok"] * 2
    assert shop.codes(["+442079460901"]) == ["Ok"]
    [_mainland, intl] = _alarms(session, "threshold")
    assert intl.figures["region"] == "international" and intl.figures["value"] == 2
    [gb] = _alarms(session, "country_threshold")
    assert gb.figures["country"] == "GB" and gb.figures["value"] == 1
    assert shop.codes(["+442079460902", "+14155550402"]) == ["Ok"] * 2
    assert len(_alarms(session, "threshold")) == 2
    assert len(_alarms(session, "country_threshold")) == 1


def test_quota_alarm_reaches_every_applications_contacts_once(shop: Shop,
                                                               session: Session) -> None:
    """The international quota is the account's: every application's contacts hear it
    when any application hits it, once a day, and a person on several applications
    (same email, mobile or Slack user) is told once per channel."""
    from app.services import apps

    _contact(shop, session, ["threshold"])
    c = _ctx(shop)
    shop.ctx = c
    second, _key = apps.create_app(c, name="Second")
    third, _key = apps.create_app(c, name="Third")
    same = app_config.add_contact(c, second.sdk_app_id, name="Ops again", mobile=MOBILE,
                                  email="OPS@example.com", slack_user_id="U0ONCALL1",
                                  events=["threshold"])
    other = app_config.add_contact(c, second.sdk_app_id, name="Bea", mobile="+8613900000002",
                                   email="bea@example.com", events=["threshold"])
    app_config.add_contact(c, third.sdk_app_id, name="Not subscribed", email="no@example.com",
                           events=["frequency"])
    same.mobile_confirmed_at = other.mobile_confirmed_at = utcnow()
    session.flush()
    accounts.update_settings(c, account_type="enterprise", timezone="Asia/Shanghai",
                             intl_daily_quota=1, reply_callback_url="",
                             reply_callback_enabled=False)
    assert shop.codes(["+442079460958", "+442079460959"]) == [
        "Ok", "LimitExceeded.AccountInternationalDailyQuota"]
    assert shop.codes(["+442079460960"]) == ["LimitExceeded.AccountInternationalDailyQuota"]
    [quota] = _alarms(session, "quota")
    rows = session.execute(select(Notification.channel, Notification.recipient).join(
        AlarmDelivery, AlarmDelivery.notification_id == Notification.id).where(
        AlarmDelivery.alarm_id == quota.id)).all()
    assert sorted(rows) == sorted([*EVERY_CHANNEL, ("email", "bea@example.com"),
                                   ("sms", "+8613900000002")])
    assert quota.app_id is None  # the account's, not one application's
    assert quota.figures["from_sdk_app_id"] == shop.app.sdk_app_id


def test_once_per_period_survives_a_redis_restart(shop: Shop, session: Session,
                                                  backend: Backend) -> None:
    """Redis decides between racing workers; the recorded alarm is the memory, so a
    Redis that lost its keys (restarted without persistence) raises no second alarm."""
    _contact(shop, session, ["task"])
    c = _ctx(shop)
    assert alarms.raise_task_event(c, backend.redis, shop.app, 21, "failed") is not None
    session.commit()
    for key in backend.redis.scan_iter("smsops:alarm:*"):
        backend.redis.delete(key)
    assert alarms.raise_task_event(c, backend.redis, shop.app, 21, "failed") is None
    assert alarms.raise_task_event(c, backend.redis, shop.app, 22, "failed") is not None
    session.commit()
    assert len(_alarms(session, "task_failed")) == 2


def test_the_quota_alarm_fires_when_an_application_limit_runs_out_with_it(
        shop: Shop, session: Session) -> None:
    """Found from outside: with the application's international limit and the account's
    quota both at 2 and both used up, every later send was refused by the application's
    limit (checked first), and the account's quota alarm never came."""
    c = _ctx(shop)
    shop.ctx = c
    accounts.update_settings(c, account_type="enterprise", timezone="Asia/Shanghai",
                             intl_daily_quota=2, reply_callback_url="",
                             reply_callback_enabled=False)
    app_config.set_thresholds(c, shop.app.sdk_app_id, "international", alarm_threshold=None,
                              daily_limit=2)
    assert shop.codes(["+442079460958", "+442079460959", "+442079460960"]) == [
        "Ok", "Ok", "LimitExceeded.AppDailyLimit"]
    assert len(_alarms(session, "limit")) == 1
    [quota] = _alarms(session, "quota")
    assert quota.app_id is None
