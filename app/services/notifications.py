"""Recording notifications and delivering them through the notification port.

Who hears what (README, *Notifications*):
- alarm events of an application reach its contacts subscribed to them;
- review results concern account-level content (qualifications, signatures,
  templates, unsubscribe removals), so a contact hears them only while the user who
  last saved the contact may read that kind of content on the whole account;
- SMS carries catalogue wording only (app/sms/alarm_texts.py), to confirmed mobiles
  that are not on the mute list or unsubscribed, at most SMS_PER_NUMBER_HOUR an hour.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import AlarmContact, Application, MuteEntry, Notification, Unsubscribe, User
from app.models.notifications import FAILED, PENDING, REFUSED, SENT
from app.notify import Channels, DeliveryError, Message
from app.queue import RETRIES
from app.services.accounts import actor_for
from app.services.context import Ctx
from app.sms import alarm_texts

_log = logging.getLogger("smsops.notify")
PAGE_SIZE = 50
DELIVER_JOB = "jobs.notify.deliver"
# Review results go to the review channel (the request is updated); these are alarms.
ALARM_EVENTS = ("threshold", "frequency", "package", "captcha", "link", "task")
CONFIRM_EVENT = "confirm"  # the code that confirms a contact's mobile
# Tries of one delivery: the first and RQ's retries with back-off (app/queue.py).
MAX_ATTEMPTS = 1 + len(RETRIES[DELIVER_JOB])
STRANDED_AFTER = timedelta(minutes=2)  # a pending row this old lost its delivery job
SMS_PER_NUMBER_HOUR = 10  # alarm SMS to one number in any hour (no storms on one phone)
ALARM_SMS_TYPE = "notification"  # alarm SMS count as notifications for mute/unsubscribe
# Reading each kind of reviewed content on the whole account.
REVIEW_READ_ACTIONS = {"qualification": "DescribeQualification",
                       "signature": "DescribeSmsSignList",
                       "template": "DescribeSmsTemplateList",
                       "unsubscribe_removal": "DescribeUnsubscribe"}


def _control(value: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in value)


def refusal(channel: str, recipient: str, subject: str, text: str) -> str | None:
    """Why a notification cannot be sent safely, or None."""
    if _control(subject):
        return "Refused: the subject has a line break or control character."
    if channel == "email":
        try:
            validate_email(recipient, check_deliverability=False, globally_deliverable=False)
        except EmailNotValidError:
            return "Refused: the recipient is not one plain email address."
        if _control(recipient) or len(recipient) > 254:
            return "Refused: the recipient is not one plain email address."
    elif channel == "sms" and not alarm_texts.is_catalogued(text):
        return "Refused: SMS alarms use the fixed catalogue wording only."
    elif _control(recipient) or len(recipient) > 254:
        return "Refused: the recipient has a control character or is too long."
    return None


def notify(ctx: Ctx, event: str, recipients: Iterable[tuple[str, str]], subject: str,
           body: str, *, sms: str | None = None) -> list[Notification]:
    """Record one notification per (channel, recipient); delivery runs as a job
    after the caller commits. `sms` is the catalogue text SMS recipients get; a row
    that cannot be sent safely is recorded as refused and never tried."""
    rows = []
    for channel, recipient in dict.fromkeys(recipients):
        text = (sms or "") if channel == "sms" else body
        problem = refusal(channel, recipient, subject, text)
        rows.append(Notification(
            account_id=ctx.actor.account_id, event=event, channel=channel,
            recipient=recipient[:254], subject=subject[:200], body=text,
            status=REFUSED if problem else PENDING, error=problem))
    ctx.db.add_all(rows)
    ctx.db.flush()
    pending = [r.id for r in rows if r.status == PENDING]
    if pending:
        ctx.defer(DELIVER_JOB, pending)
    return rows


def may_read(db: Session, contact: AlarmContact, account_id: int, action: str) -> bool:
    """May the user who last saved `contact` do `action` on the whole account?"""
    user = db.get(User, contact.saved_by_id) if contact.saved_by_id else None
    if user is None or not user.active or user.account_id != account_id:
        return False
    return actor_for(user).can(action)


def contact_recipients(ctx: Ctx, event: str, app_id: int | None = None, *,
                       read_action: str | None = None) -> list[tuple[str, str]]:
    """Alarm contacts subscribed to `event`: of one application, or of them all.
    With `read_action` (account-level content), only contacts whose saver may do it."""
    q = select(AlarmContact).join(Application).where(
        Application.account_id == ctx.actor.account_id)
    if app_id is not None:
        q = q.where(Application.id == app_id)
    contacts = ctx.db.scalars(q.order_by(AlarmContact.id)).all()
    found: list[tuple[str, str]] = []
    for c in contacts:
        if event not in c.events:
            continue
        if read_action and not may_read(ctx.db, c, ctx.actor.account_id, read_action):
            continue
        if c.email:
            found.append(("email", c.email))
        if c.mobile and c.mobile_confirmed_at and "sms" in ctx.settings.notify_channels:
            found.append(("sms", c.mobile))
        if c.slack_user_id and "slack" in ctx.settings.notify_channels:
            found.append(("slack", c.slack_user_id))
    if event in ALARM_EVENTS and ctx.settings.alarm_channel:
        found.append(("slack", ctx.settings.alarm_channel))
    # A person on several applications is told once per channel; an email address
    # differing only in case is the same mailbox.
    seen: set[tuple[str, str]] = set()
    unique = []
    for channel, recipient in found:
        key = (channel, recipient.casefold() if channel == "email" else recipient)
        if key not in seen:
            seen.add(key)
            unique.append((channel, recipient))
    return unique


def _sms_hold(db: Session, n: Notification) -> str | None:
    """Why an alarm SMS must not go to this number now, or None."""
    muted = db.scalar(select(MuteEntry.id).where(
        MuteEntry.account_id == n.account_id, MuteEntry.phone_number == n.recipient,
        or_(MuteEntry.sms_type.is_(None), MuteEntry.sms_type == ALARM_SMS_TYPE)).limit(1))
    if muted is not None:
        return "Not sent: the number is on the mute list."
    unsubscribed = db.scalar(select(Unsubscribe.id).where(
        Unsubscribe.account_id == n.account_id, Unsubscribe.phone_number == n.recipient,
        or_(Unsubscribe.sms_type.is_(None), Unsubscribe.sms_type == ALARM_SMS_TYPE)).limit(1))
    if unsubscribed is not None:
        return "Not sent: the number has unsubscribed from notifications."
    if n.event != CONFIRM_EVENT:
        confirmed = db.scalar(select(AlarmContact.id).join(Application).where(
            Application.account_id == n.account_id, AlarmContact.mobile == n.recipient,
            AlarmContact.mobile_confirmed_at.is_not(None)).limit(1))
        if confirmed is None:
            return "Not sent: the mobile is not a confirmed alarm contact."
    recent = db.scalar(select(func.count()).select_from(Notification).where(
        Notification.account_id == n.account_id, Notification.channel == "sms",
        Notification.recipient == n.recipient, Notification.status == SENT,
        Notification.sent_at >= utcnow() - timedelta(hours=1))) or 0
    if recent >= SMS_PER_NUMBER_HOUR:
        return f"Not sent: at most {SMS_PER_NUMBER_HOUR} alarm SMS per number per hour."
    return None


def deliver(db: Session, ids: list[int], channels: Channels) -> int:
    """Send what is not sent yet, each on its own: one failure never stops the
    others. Returns how many failed in a way a retry may fix."""
    failed = 0
    rows = db.scalars(select(Notification).where(
        Notification.id.in_(ids), Notification.status.in_((PENDING, FAILED)))
        .order_by(Notification.id)).all()
    for n in rows:
        hold = _sms_hold(db, n) if n.channel == "sms" else None
        if hold:
            n.status, n.error = REFUSED, hold
            _forget_code(n)
            continue
        # Claimed by a conditional update first: a second job holding the same id (the
        # redrive and a late original) waits for this transaction, then finds it taken.
        claimed = db.execute(update(Notification).where(
            Notification.id == n.id, Notification.status == n.status,
            Notification.attempts == n.attempts).values(attempts=n.attempts + 1)
            .execution_options(synchronize_session=False))
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            db.expire(n)
            continue
        n.attempts += 1
        alarm = _alarm_of(db, n)
        try:
            ref = channels.get(n.channel).send(Message(n.recipient, n.subject, n.body, alarm))
        except DeliveryError as exc:
            n.status, n.error = (REFUSED if exc.permanent else FAILED), str(exc)[:500]
            failed += 0 if exc.permanent else 1
            if exc.permanent:
                _forget_code(n)
        except Exception as exc:  # a bug in one channel must not stop the batch
            _log.exception("notification %s: unexpected %s", n.id, type(exc).__name__)
            n.status, n.error = FAILED, f"Unexpected error: {type(exc).__name__}"
            failed += 1
        else:
            n.status, n.error, n.sent_at = SENT, None, utcnow()
            _forget_code(n)
            if ref and alarm is not None:
                from app.services import alarms

                alarms.delivered_at(db, n.id, ref)
    return failed


def retry_note(n: Notification) -> str:
    """How a failed delivery stands: still retried, or given up."""
    if n.attempts >= MAX_ATTEMPTS:
        return f"gave up after {n.attempts} tries"
    return f"{n.attempts} {'try' if n.attempts == 1 else 'tries'} so far, retried with back-off"


def stranded(db: Session, now: datetime | None = None, limit: int = 500) -> list[int]:
    """Notifications recorded but never tried well after their delivery job should
    have run (it was lost with Redis, or its enqueue failed): to deliver again."""
    before = (now or utcnow()) - STRANDED_AFTER
    return list(db.scalars(select(Notification.id).where(
        Notification.status == PENDING, Notification.attempts == 0,
        Notification.created_at < before).order_by(Notification.id).limit(limit)))


def _alarm_of(db: Session, n: Notification) -> dict[str, Any] | None:
    """The alarm a Slack notification carries, so the channel can show its figures
    and buttons (app/services/alarms.py records which notification carried what)."""
    if n.channel != "slack":
        return None
    from app.services import alarms  # alarms builds on this module

    return alarms.delivery_data(db, n.id)


def _forget_code(n: Notification) -> None:
    """Once a confirmation code is sent (or never will be), only the phone has it."""
    if n.event == CONFIRM_EVENT:
        n.body = "(a confirmation code; not kept)"


def log(ctx: Ctx, page: int = 1) -> tuple[list[Notification], int]:
    """Deliveries newest first, as the alarm history scopes alarms (alarms.history): an
    application alarm's only where the actor may read that application's alarms; the
    rest (account-level alarms, review results) only for who may read them all."""
    from app.models.alarms import Alarm, AlarmDelivery
    from app.services import apps

    visible = apps.allowed(ctx, "DescribeAlarms")
    account_wide = ctx.actor.can("DescribeAlarms")
    if not visible and not account_wide:
        ctx.actor.require("DescribeAlarms")  # refused, with the usual message
    of_app = select(Alarm.app_id).join(AlarmDelivery, AlarmDelivery.alarm_id == Alarm.id).where(
        AlarmDelivery.notification_id == Notification.id, Alarm.app_id.is_not(None))
    hidden = of_app.where(Alarm.app_id.not_in(visible)).exists()
    shown = ~hidden if account_wide else of_app.where(Alarm.app_id.in_(visible)).exists() \
        & ~hidden
    q = select(Notification).where(Notification.account_id == ctx.actor.account_id, shown)
    total = ctx.db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = ctx.db.scalars(q.order_by(Notification.id.desc()).limit(PAGE_SIZE)
                          .offset((max(page, 1) - 1) * PAGE_SIZE)).all()
    return list(rows), total


def may_read_outbox(ctx: Ctx) -> bool:
    """The e-mail outbox (mail written to files when no SMTP server is set) holds every
    message as sent, unscoped: only for who may read every application's alarms."""
    from app.services import apps

    return ctx.actor.can("DescribeAlarms") and len(apps.allowed(ctx, "DescribeAlarms")) == (
        ctx.db.scalar(select(func.count()).select_from(Application).where(
            Application.account_id == ctx.actor.account_id)) or 0)
