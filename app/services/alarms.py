"""The alarm service (SPEC.md §8): every event comes in here, is decided once per
period (one Redis SET NX per event, scope and period, so two workers raising the
same event make one alarm), is recorded as an Alarm, and fans out to the
subscribed contacts through the notification port (app/services/notifications.py):
Slack channel + DM, SMS in catalogue words with the mute list applied, email. Each
delivery is a Notification row with its result, retried with back-off by the
delivery job; a failing channel does not stop the others.

No channel logic lives where events are raised: callers say what happened.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import redis as redis_lib
from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import Account, Application, Notification, SendTask, User
from app.models.alarms import Alarm, AlarmDelivery
from app.models.tasks import SENDING
from app.services import apps, notifications, values
from app.services.accounts import actor_for
from app.services.context import Ctx, Settings
from app.services.errors import NotFound, ValidationError
from app.sms import alarm_texts

_log = logging.getLogger("smsops.alarms")


class AlarmApp(Protocol):
    """What an alarm reads of its application: an Application, or the send path's
    snapshot of one (app/services/sendconfig.py AppSnap)."""

    @property
    def id(self) -> int: ...
    @property
    def sdk_app_id(self) -> str: ...
    @property
    def name(self) -> str: ...


@dataclass(frozen=True)
class Event:
    subscription: str  # the contact's box (app.models.apps.ALARM_EVENTS) it reaches
    label: str
    # About the whole account (the international quota is shared by every application):
    # recorded without an application and told to the contacts of every application;
    # the application whose send hit it is kept in the figures as from_sdk_app_id.
    account_wide: bool = False


EVENTS: dict[str, Event] = {
    "threshold": Event("threshold", "Daily alarm threshold reached"),
    "limit": Event("threshold", "Daily limit reached (sending suspended)"),
    "country_threshold": Event("threshold", "Country/region alarm threshold reached"),
    "country_limit": Event("threshold", "Country/region limit reached (sending suspended)"),
    "quota": Event("threshold", "Account international quota reached", account_wide=True),
    "frequency": Event("frequency", "Frequency-limit hits"),
    "review": Event("review", "Review result"),
    "package_low": Event("package", "Package balance low"),
    "package_expired": Event("package", "Package expired"),
    "captcha": Event("captcha", "Captcha abuse"),
    "link_down": Event("link", "Carrier link down"),
    "link_up": Event("link", "Carrier link back up"),
    "task_failed": Event("task", "Bulk task failed"),
    "task_stopped": Event("task", "Bulk task stopped"),
    "test": Event("test", "Test alarm"),
}
# Events whose Slack message offers "Raise limit" (a region's or a country's daily pair).
RAISABLE = ("threshold", "limit", "country_threshold", "country_limit")
# Events whose Slack message offers "Stop task" for the bulk tasks sending when they were
# raised (of the application, or of the account for account-wide events), and of which
# region: "" any, "figures" the alarm's own region. The task events themselves are about
# a task that has already ended, so they offer nothing to stop.
STOP_TASKS_OF = {"threshold": "figures", "limit": "figures", "country_threshold": "international",
                 "country_limit": "international", "quota": "international",
                 "frequency": "", "package_low": "mainland"}
STOP_BUTTONS = 3  # at most this many tasks offered on one message
# Told, not handled: plain Slack text without Acknowledge (the review request message
# itself shows the decision).
PLAIN = ("review", "test")
KEY = "smsops:alarm:{}:{}"  # event, period → set once per period
PAGE_SIZE = 50
LINK_DOWN_AFTER_S = 60  # the carrier link must be down this long before it is an alarm
LINK_DOWN_SINCE = "smsops:link:down_since"
LINK_ALARMED = "smsops:link:alarmed"


PENDING_KEYS = "smsops_alarm_keys"  # Session.info: keys claimed in the open transaction


def once(conn: redis_lib.Redis, event: str, period: str, ttl_s: int,
         session: Session | None = None) -> bool:
    """True for the first caller in the period, on every worker (atomic SET NX). With
    `session`, the claim is given back if its transaction does not commit, so an
    alarm whose recording failed is raised by the next caller instead of lost."""
    key = KEY.format(event, period)
    if not conn.set(key, 1, nx=True, ex=max(int(ttl_s), 1)):
        return False
    if session is not None:
        session.info.setdefault(PENDING_KEYS, []).append((conn, key))
    return True


@sa_event.listens_for(Session, "after_commit")
def _claims_kept(session: Session) -> None:
    session.info.pop(PENDING_KEYS, None)


@sa_event.listens_for(Session, "after_transaction_end")
def _claims_given_back(session: Session, transaction: Any) -> None:
    if transaction.parent is not None:
        return  # a savepoint: the outer transaction decides
    for conn, key in session.info.pop(PENDING_KEYS, None) or []:
        try:
            conn.delete(key)
        except redis_lib.RedisError:  # the key expires on its own
            _log.warning("could not give back alarm key %s", key)


def raise_alarm(ctx: Ctx, conn: redis_lib.Redis | None, event: str, *, period: str,
                ttl_s: int, app: AlarmApp | None, subject: str, body: str, sms: str,
                figures: dict[str, Any] | None = None,
                extra: Sequence[tuple[str, str]] = (), read_action: str | None = None,
                recipients: Sequence[tuple[str, str]] | None = None) -> Alarm | None:
    """Record and deliver `event` unless it was raised already this period (None).

    `conn` None: the caller's event is unique by nature (a review decision), so there
    is no period to guard. `extra` recipients (e.g. the submitter) hear it too;
    `recipients` replaces the contacts altogether (the contact test)."""
    spec = EVENTS[event]
    if conn is not None and not once(conn, event, period, ttl_s, ctx.db):
        return None
    if conn is not None and ctx.db.scalar(select(Alarm.id).where(
            Alarm.account_id == ctx.actor.account_id, Alarm.event == event,
            Alarm.period == period[:120],
            Alarm.created_at >= utcnow() - timedelta(seconds=max(int(ttl_s), 1))).limit(1)):
        return None  # recorded already: Redis lost its key (restarted), not the period
    subject = " ".join(subject.split())[:200]  # one line: it becomes a mail header
    if spec.account_wide and app is not None:
        figures = {**(figures or {}), "from_sdk_app_id": app.sdk_app_id,
                   "from_app_name": app.name}
        app = None
    alarm = Alarm(account_id=ctx.actor.account_id, app_id=app.id if app else None,
                  event=event, period=period[:120], subject=subject, body=body,
                  figures={**(figures or {}), "sdk_app_id": app.sdk_app_id if app else None,
                           "app_name": app.name if app else None})
    ctx.db.add(alarm)
    ctx.db.flush()
    alarm.figures = {**alarm.figures, "url": f"{ctx.settings.base_url}/alarms?alarm={alarm.id}"}
    task_ids = _sending_tasks(ctx, alarm)
    if task_ids:
        alarm.figures = {**alarm.figures, "task_ids": task_ids}
    if recipients is None:
        found = notifications.contact_recipients(ctx, spec.subscription,
                                                 app.id if app else None,
                                                 read_action=read_action)
        recipients = [*extra, *found]
    rows = notifications.notify(ctx, spec.subscription, recipients, subject, body, sms=sms)
    ctx.db.add_all([AlarmDelivery(alarm_id=alarm.id, notification_id=r.id) for r in rows])
    ctx.db.flush()
    return alarm


def _sending_tasks(ctx: Ctx, alarm: Alarm) -> list[int]:
    """The bulk tasks sending now that the alarm's *Stop task* may stop."""
    if alarm.event not in STOP_TASKS_OF:
        return []
    region = STOP_TASKS_OF[alarm.event]
    if region == "figures":
        region = str((alarm.figures or {}).get("region") or "")
    q = select(SendTask.id).where(SendTask.account_id == alarm.account_id,
                                  SendTask.status == SENDING)
    if alarm.app_id is not None:
        q = q.where(SendTask.app_id == alarm.app_id)
    if region:
        q = q.where(SendTask.region == region)
    return list(ctx.db.scalars(q.order_by(SendTask.id).limit(STOP_BUTTONS)))


# --- events raised by other parts ---------------------------------------------

def raise_task_event(ctx: Ctx, conn: redis_lib.Redis | None, app: Application, task_id: int,
                     status: str, reason: str = "") -> Alarm | None:
    """A bulk task failed or was stopped (for the tasks engine to call): once per task
    and outcome."""
    if status not in ("failed", "stopped"):
        raise ValueError(f"task events are failed or stopped, not {status!r}")
    body = f"{app.name} ({app.sdk_app_id}): bulk task #{task_id} {status}."
    if reason:
        body += f"\nReason: {reason}"
    _offered_elsewhere(ctx, app.id, task_id)
    return raise_alarm(ctx, conn, f"task_{status}", period=f"{app.id}:{task_id}",
                       ttl_s=7 * 86400, app=app,
                       subject=f"Bulk task #{task_id} {status} in {app.name}", body=body,
                       sms=alarm_texts.render("task", app=app.sdk_app_id, id=task_id,
                                              status=status),
                       figures={"task_id": task_id, "status": status})


def _offered_elsewhere(ctx: Ctx, app_id: int, task_id: int) -> None:
    """A task ended: the Slack messages of recent alarms that offer to stop it are
    updated, so nobody is left a button for a task no longer sending."""
    since = utcnow() - timedelta(days=2)
    candidates = ctx.db.scalars(
        select(Alarm).where(Alarm.account_id == ctx.actor.account_id,
                            Alarm.event.in_(tuple(STOP_TASKS_OF)), Alarm.created_at >= since,
                            (Alarm.app_id == app_id) | Alarm.app_id.is_(None))
        .where(select(AlarmDelivery.id).where(AlarmDelivery.alarm_id == Alarm.id,
                                              AlarmDelivery.ref.is_not(None)).exists()))
    for alarm in candidates:
        job = ("jobs.alarms.refresh", (alarm.id,))
        if task_id in (alarm.figures or {}).get("task_ids", ()) and job not in ctx.deferred:
            ctx.deferred.append(job)


FREQ_COUNT = "smsops:alarm:freqcount:{}"  # period → numbers refused in that hour


def frequency_hits(ctx: Ctx, conn: redis_lib.Redis, app: AlarmApp, period: str,
                   refused: int, example: str, reason: str) -> Alarm | None:
    """Frequency limits refused `refused` numbers: counted for the hour in Redis; the
    first hit of the hour raises the alarm, and the hourly job writes the hour's
    total on it when the hour is over (finish_frequency)."""
    key = FREQ_COUNT.format(period)
    pipe = conn.pipeline()
    pipe.incrby(key, refused)
    pipe.expire(key, 3 * 3600)
    total = int(pipe.execute()[0])
    return raise_alarm(
        ctx, conn, "frequency", period=period, ttl_s=3600, app=app,
        subject=f"Frequency limit hit in {app.name}",
        body=(f"{app.name} ({app.sdk_app_id}) refused {total:,} number(s) on frequency "
              f"limits so far this hour, e.g. {example}: {reason}"),
        sms=alarm_texts.render("frequency", app=app.sdk_app_id, used=total),
        figures={"value": total, "unit": "number(s) refused", "counter": key})


def finish_frequency(db: Session, conn: redis_lib.Redis, now: datetime,
                     deferred: list[tuple[str, tuple[Any, ...]]]) -> int:
    """Frequency alarms of hours now over get the hour's total refused numbers (and
    their Slack messages are updated); returns how many were finished."""
    hour_start = now.replace(minute=0, second=0, microsecond=0)
    done = 0
    for alarm in db.scalars(select(Alarm).where(
            Alarm.event == "frequency", Alarm.created_at < hour_start,
            Alarm.created_at >= hour_start - timedelta(hours=3))):
        figures = dict(alarm.figures or {})
        if figures.get("final") or not figures.get("counter"):
            continue
        total = int(conn.get(figures["counter"]) or figures.get("value") or 0)
        alarm.figures = {**figures, "value": total, "final": True}
        alarm.body += f"\nIn the whole hour: {total:,} number(s) refused."
        deferred.append(("jobs.alarms.refresh", (alarm.id,)))
        done += 1
    db.flush()
    return done


def link_seen(db: Session, conn: redis_lib.Redis, up: bool, settings: Settings,
              deferred: list[tuple[str, tuple[Any, ...]]],
              now: datetime | None = None) -> list[Alarm]:
    """The gateway answered (`up`) or could not be reached. Down for more than a
    minute raises link_down (once per outage); the first answer after that raises
    link_up. Cheap when nothing changes: one Redis read on success. Jobs to start
    after the caller commits are added to `deferred`."""
    now = now or utcnow()
    stamp = now.timestamp()
    if up:
        since = conn.get(LINK_DOWN_SINCE)
        if since is None:
            return []
        alarmed = conn.get(LINK_ALARMED)
        conn.delete(LINK_DOWN_SINCE, LINK_ALARMED)
        if alarmed is None:
            return []  # a blip shorter than a minute: nobody was told it was down
        minutes = max(1, round((stamp - float(since)) / 60))
        return _each_account(db, conn, settings, deferred, "link_up", f"{float(since):.0f}",
                             f"The carrier link is back up after {minutes} minute(s)",
                             f"The carrier link is back up after {minutes} minute(s); "
                             "waiting messages are being sent.",
                             alarm_texts.render("link_up", minutes=min(minutes, 999)),
                             {"minutes": minutes})
    conn.set(LINK_DOWN_SINCE, stamp, nx=True)
    since_s = float(conn.get(LINK_DOWN_SINCE) or stamp)
    if stamp - since_s < LINK_DOWN_AFTER_S:
        return []
    if not conn.set(LINK_ALARMED, 1, nx=True):
        return []  # already alarmed for this outage
    minutes = max(1, round((stamp - since_s) / 60))
    return _each_account(db, conn, settings, deferred, "link_down", f"{since_s:.0f}",
                         "The carrier link is down",
                         f"The carrier could not be reached for {minutes} minute(s). Messages "
                         "wait and are sent when it is back.",
                         alarm_texts.render("link_down", minutes=min(minutes, 999)),
                         {"minutes": minutes, "threshold": LINK_DOWN_AFTER_S // 60,
                          "unit": "minute(s) down"})


def _each_account(db: Session, conn: redis_lib.Redis, settings: Settings,
                  deferred: list[tuple[str, tuple[Any, ...]]], event: str, period: str,
                  subject: str, body: str, sms: str, figures: dict[str, Any]) -> list[Alarm]:
    """An installation-wide event (the carrier link) reaches every account."""
    out = []
    for account_id in db.scalars(select(Account.id).order_by(Account.id)).all():
        ctx = system_ctx(db, account_id, settings)
        if ctx is None:
            continue
        found = raise_alarm(ctx, conn, event, period=f"{account_id}:{period}", ttl_s=86400,
                            app=None, subject=subject, body=body, sms=sms, figures=figures)
        if found is not None:
            out.append(found)
        deferred.extend(ctx.deferred)
    return out


@dataclass(frozen=True)
class LinkState:
    """The carrier link as its alarms record it (installation-wide, told to each account)."""

    down_since: datetime | None  # the outage the newest alarm says is going on began then
    up_since: datetime | None  # back up then after the last recorded outage


def link_state(ctx: Ctx) -> LinkState:
    """The newest link_down or link_up alarm of the actor's account: down since the
    outage began (its period holds that instant), or up (since when, after an outage).
    No link alarm at all: up, as far as anyone was told."""
    last = ctx.db.scalars(select(Alarm).where(
        Alarm.account_id == ctx.actor.account_id, Alarm.event.in_(("link_down", "link_up")))
        .order_by(Alarm.created_at.desc(), Alarm.id.desc()).limit(1)).first()
    if last is None:
        return LinkState(None, None)
    if last.event == "link_up":
        return LinkState(None, last.created_at)
    stamp = last.period.rpartition(":")[2]  # "<account id>:<when the outage began>"
    try:
        since = datetime.fromtimestamp(float(stamp), UTC)
    except ValueError:
        since = last.created_at
    return LinkState(since, None)


def system_ctx(db: Session, account_id: int, settings: Settings) -> Ctx | None:
    """A context acting as the account's root, for events nobody clicked (the
    monitor, the carrier link); None when the account has no root user."""
    root = db.scalar(select(User).where(User.account_id == account_id, User.is_root.is_(True))
                     .order_by(User.id).limit(1))
    return Ctx(db, actor_for(root), settings) if root is not None else None


# --- acknowledge, history -----------------------------------------------------

def get(ctx: Ctx, alarm_id: int) -> Alarm:
    """One alarm the actor may read: of an application they may read alarms of, or
    account-level for those who may read alarms of every application."""
    alarm = ctx.db.get(Alarm, alarm_id)
    sid = (alarm.figures or {}).get("sdk_app_id") if alarm else None
    if alarm is None or alarm.account_id != ctx.actor.account_id or not ctx.actor.can(
            "DescribeAlarms", sid):
        raise NotFound(f"No alarm #{alarm_id}.")
    return alarm


def acknowledge(ctx: Ctx, alarm_id: int) -> Alarm:
    """Who handles it, kept; Slack messages carrying it are updated by a job. A second
    acknowledge keeps the first person."""
    alarm = get(ctx, alarm_id)
    ctx.actor.require("ModifyAlarms", (alarm.figures or {}).get("sdk_app_id"))
    if alarm.acknowledged_at is None:
        user = ctx.db.get(User, ctx.actor.user_id)
        alarm.acknowledged_by_id = ctx.actor.user_id
        alarm.acknowledged_by = user.email if user else "?"
        alarm.acknowledged_at = utcnow()
        ctx.db.flush()
        ctx.defer("jobs.alarms.refresh", alarm.id)
    return alarm


def slack_refs(db: Session, alarm_id: int) -> list[str]:
    return [r for r in db.scalars(select(AlarmDelivery.ref).where(
        AlarmDelivery.alarm_id == alarm_id, AlarmDelivery.ref.is_not(None))) if r]


def slack_data(db: Session, alarm: Alarm) -> dict[str, Any]:
    """What a Slack alarm message shows (the channel builds the blocks): the tasks
    offered to stop as they are now (a button while sending, else how it ended)."""
    figures = dict(alarm.figures or {})
    task_ids = [int(i) for i in figures.get("task_ids") or ()]
    statuses = dict(db.execute(select(SendTask.id, SendTask.status).where(
        SendTask.id.in_(task_ids))).tuples().all()) if task_ids else {}
    stopped_by = figures.get("stopped_by") or {}
    return {"alarm_id": alarm.id, "event": alarm.event, "label": EVENTS[alarm.event].label,
            "subject": alarm.subject, "body": alarm.body, "figures": figures,
            "when": alarm.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            "acknowledged_by": alarm.acknowledged_by,
            "acknowledged_at": alarm.acknowledged_at.strftime("%Y-%m-%d %H:%M UTC")
            if alarm.acknowledged_at else None,
            "url": figures.get("url", ""),
            "raise_limit": alarm.event in RAISABLE and bool(figures.get("sdk_app_id")),
            "stop_tasks": [i for i in task_ids if statuses.get(i) == SENDING],
            "tasks_ended": [(i, statuses.get(i, "deleted"), stopped_by.get(str(i)))
                            for i in task_ids if statuses.get(i) != SENDING]}


def delivery_data(db: Session, notification_id: int) -> dict[str, Any] | None:
    """For the delivery job: the alarm a notification carries, as Slack data."""
    alarm = db.scalar(select(Alarm).join(AlarmDelivery, AlarmDelivery.alarm_id == Alarm.id)
                      .where(AlarmDelivery.notification_id == notification_id))
    if alarm is None or alarm.event in PLAIN:
        return None
    return slack_data(db, alarm)


def delivered_at(db: Session, notification_id: int, ref: str) -> None:
    """Where the Slack post landed, so acknowledging can update it in place."""
    db.execute(update(AlarmDelivery).where(AlarmDelivery.notification_id == notification_id)
               .values(ref=ref[:80]))


@dataclass(frozen=True)
class Filters:
    sdk_app_id: str = ""
    event: str = ""
    since: datetime | None = None
    until: datetime | None = None
    alarm_id: int | None = None  # one alarm: where "Open in web" leads
    unacknowledged: bool = False  # only those still waiting for someone (not PLAIN ones)


YES, NO = ("1", "true", "on", "yes"), ("", "0", "false", "off", "no")


def parse_filters(sdk_app_id: str = "", event: str = "", since: str = "",
                  until: str = "", alarm: str = "", zone: str = "UTC",
                  unacknowledged: str = "") -> Filters:
    """The dates are whole days in `zone` (the web gives the account's, in which it
    shows the times)."""
    errors: dict[str, str] = {}
    waiting = unacknowledged.strip().lower()
    if waiting not in YES + NO:
        errors["unacknowledged"] = "Give true or false."
    one = alarm.strip()
    if one and not (values.digits(one) and len(one) <= 12):
        errors["alarm"] = "Give an alarm number."
    sid = sdk_app_id.strip()
    if sid and not (values.digits(sid) and len(sid) == 10):
        errors["app"] = "Give a 10-digit SDK AppID."
    ev = event.strip()
    if ev and ev not in EVENTS:
        errors["event"] = "Choose an event from the list."
    dates: dict[str, datetime | None] = {}
    for name, value in (("since", since), ("until", until)):
        value = value.strip()
        dates[name] = None
        if value:
            try:
                dates[name] = datetime.strptime(value, "%Y-%m-%d")
            except ValueError:
                errors[name] = "Give a date as YYYY-MM-DD."
    if errors:
        raise ValidationError(errors)
    start, end = dates["since"], dates["until"]
    tz = ZoneInfo(zone)
    return Filters(sid, ev, start.replace(tzinfo=tz) if start else None,
                   (end + timedelta(days=1)).replace(tzinfo=tz) if end else None,
                   int(one) if one else None, waiting in YES)


def history(ctx: Ctx, filters: Filters, page: int = 1,
            page_size: int = PAGE_SIZE) -> tuple[list[Alarm], int]:
    """Alarms newest first; application alarms only where the actor may read alarms."""
    q = select(Alarm).outerjoin(Application, Application.id == Alarm.app_id).where(
        Alarm.account_id == ctx.actor.account_id)
    if filters.sdk_app_id:
        q = q.where(Application.sdk_app_id == filters.sdk_app_id)
    if filters.event:
        q = q.where(Alarm.event == filters.event)
    if filters.alarm_id is not None:
        q = q.where(Alarm.id == filters.alarm_id)
    if filters.since:
        q = q.where(Alarm.created_at >= filters.since)
    if filters.until:
        q = q.where(Alarm.created_at < filters.until)
    if filters.unacknowledged:
        # Review results and tests are told, not handled: nobody is expected to take them.
        q = q.where(Alarm.acknowledged_at.is_(None), Alarm.event.not_in(PLAIN))
    # Application alarms only of the applications the actor may read alarms of (a
    # deny on one hides it even from who may read "every" application); account-level
    # alarms, which may concern any application, only for who may read them all.
    visible = apps.allowed(ctx, "DescribeAlarms")
    account_wide = ctx.actor.can("DescribeAlarms")
    if not visible and not account_wide:
        ctx.actor.require("DescribeAlarms")  # refused, with the usual message
    which: ColumnElement[bool] = Alarm.app_id.in_(visible)
    q = q.where(or_(which, Alarm.app_id.is_(None)) if account_wide else which)
    total = ctx.db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = ctx.db.scalars(q.order_by(Alarm.id.desc()).limit(page_size)
                          .offset((max(page, 1) - 1) * page_size)).all()
    return list(rows), total


def deliveries(ctx: Ctx, alarm_ids: list[int]) -> dict[int, list[Notification]]:
    """Each alarm's deliveries with their results (channel, recipient, status, error)."""
    out: dict[int, list[Notification]] = {i: [] for i in alarm_ids}
    if not alarm_ids:
        return out
    rows = ctx.db.execute(select(AlarmDelivery.alarm_id, Notification)
                          .join(Notification, Notification.id == AlarmDelivery.notification_id)
                          .where(AlarmDelivery.alarm_id.in_(alarm_ids))
                          .order_by(Notification.id)).all()
    for alarm_id, n in rows:
        out[alarm_id].append(n)
    return out


# --- actions from an alarm message --------------------------------------------

@dataclass(frozen=True)
class LimitTarget:
    sdk_app_id: str
    app_name: str
    region: str
    alarm_threshold: int | None
    daily_limit: int | None
    country: str | None = None  # an ISO code: the country's pair, not the region's


def limit_target(ctx: Ctx, alarm_id: int) -> LimitTarget:
    """The daily pair a threshold/limit alarm is about, for the *Raise limit* form.
    Refused (PermissionDenied) for users who may not change it, before any form."""
    from app.services.apps import get_app

    alarm = get(ctx, alarm_id)
    figures = alarm.figures or {}
    sid, country = figures.get("sdk_app_id"), figures.get("country")
    region = "international" if country else figures.get("region")
    if alarm.event not in RAISABLE or region not in ("mainland", "international") or not sid:
        raise ValidationError({"alarm": "This alarm has no daily limit to raise."})
    action = "ModifyCountryConfig" if country else "ModifyWarningThreshold"
    app = get_app(ctx, sid, action)
    ctx.actor.require(action, app.sdk_app_id)
    if country:
        row = next((c for c in app.countries if c.iso_code == country), None)
        if row is None:
            raise ValidationError({"alarm": f"{country} is no longer an allowed country."})
        return LimitTarget(app.sdk_app_id, app.name, region, row.alarm_threshold,
                           row.daily_limit, country)
    prefix = "mainland" if region == "mainland" else "intl"
    return LimitTarget(app.sdk_app_id, app.name, region,
                       getattr(app, f"{prefix}_alarm_threshold"),
                       getattr(app, f"{prefix}_daily_limit"))


def raise_limit(ctx: Ctx, alarm_id: int, *, alarm_threshold: Any, daily_limit: Any) -> Any:
    """Change the pair through the same service and policy check as the web form."""
    from app.services import app_config

    target = limit_target(ctx, alarm_id)
    if target.country:
        return app_config.set_country(ctx, target.sdk_app_id, iso_code=target.country,
                                      alarm_threshold=alarm_threshold, daily_limit=daily_limit)
    return app_config.set_thresholds(ctx, target.sdk_app_id, target.region,
                                     alarm_threshold=alarm_threshold, daily_limit=daily_limit)


def stop_task(ctx: Ctx, alarm_id: int, task_id: int) -> SendTask:
    """*Stop task* on an alarm: only a task the alarm offers, stopped through the tasks
    service and its policy check (ModifyTaskStatusStop), as from the web; who stopped
    it is shown on the alarm's messages, updated in place by a job."""
    from app.services import tasks

    alarm = get(ctx, alarm_id)
    figures = alarm.figures or {}
    if task_id not in figures.get("task_ids", ()):
        raise NotFound(f"Alarm #{alarm.id} offers no task #{task_id} to stop.")
    task = tasks.stop(ctx, task_id)
    user = ctx.db.get(User, ctx.actor.user_id) if ctx.actor.user_id else None
    alarm.figures = {**figures, "stopped_by": {**(figures.get("stopped_by") or {}),
                                               str(task_id): user.email if user else "?"}}
    ctx.db.flush()
    job = ("jobs.alarms.refresh", (alarm.id,))
    if job not in ctx.deferred:
        ctx.deferred.append(job)
    return task


def test_contact(ctx: Ctx, sdk_app_id: str, contact_id: int) -> Alarm:
    """A test alarm to one contact on every channel it has (a confirmed mobile for
    SMS), recorded and delivered like any other, so its results show in the history."""
    from app.models import AlarmContact
    from app.services.apps import get_app

    app = get_app(ctx, sdk_app_id, "ModifyNewsReceiver")
    ctx.actor.require("ModifyNewsReceiver", app.sdk_app_id)
    contact = ctx.db.get(AlarmContact, contact_id)
    if contact is None or contact.app_id != app.id:
        raise NotFound(f"No alarm contact #{contact_id} in application {app.sdk_app_id}.")
    recipients: list[tuple[str, str]] = []
    if contact.email:
        recipients.append(("email", contact.email))
    if contact.mobile and contact.mobile_confirmed_at and "sms" in ctx.settings.notify_channels:
        recipients.append(("sms", contact.mobile))
    if contact.slack_user_id and "slack" in ctx.settings.notify_channels:
        recipients.append(("slack", contact.slack_user_id))
    if not recipients:
        raise ValidationError({"": "This contact has no channel to test: add an email, "
                                   "confirm the mobile or link a Slack user."})
    alarm = raise_alarm(ctx, None, "test", period=f"{contact.id}:{utcnow():%Y%m%d%H%M%S%f}",
                        ttl_s=0, app=app, subject=f"Test alarm for {contact.name}",
                        body=(f"A test alarm from smsops for {contact.name}, alarm contact of "
                              f"{app.name} ({app.sdk_app_id}). Nothing is wrong."),
                        sms=alarm_texts.render("test"), recipients=recipients)
    assert alarm is not None  # no period guard
    return alarm
