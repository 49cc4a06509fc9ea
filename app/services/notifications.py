"""Recording notifications and delivering them through the notification port."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import AlarmContact, Application, Notification
from app.models.notifications import FAILED, SENT
from app.notify import Channels, DeliveryError, Message
from app.services.context import Ctx

PAGE_SIZE = 50
DELIVER_JOB = "jobs.notify.deliver"
# Review results go to the review channel (the request is updated); these are alarms.
ALARM_EVENTS = ("threshold", "frequency", "package", "captcha")


def notify(ctx: Ctx, event: str, recipients: Iterable[tuple[str, str]], subject: str,
           body: str) -> list[Notification]:
    """Record one notification per (channel, recipient); delivery runs as a job
    after the caller commits."""
    rows = [
        Notification(account_id=ctx.actor.account_id, event=event, channel=channel,
                     recipient=recipient, subject=subject[:200], body=body)
        for channel, recipient in dict.fromkeys(recipients)
    ]
    ctx.db.add_all(rows)
    ctx.db.flush()
    if rows:
        ctx.defer(DELIVER_JOB, [r.id for r in rows])
    return rows


def contact_recipients(ctx: Ctx, event: str,
                       app_id: int | None = None) -> list[tuple[str, str]]:
    """Alarm contacts subscribed to `event`: of one application, or of them all."""
    q = select(AlarmContact).join(Application).where(
        Application.account_id == ctx.actor.account_id)
    if app_id is not None:
        q = q.where(Application.id == app_id)
    contacts = ctx.db.scalars(q).all()
    found: list[tuple[str, str]] = []
    for c in contacts:
        if event not in c.events:
            continue
        if c.email:
            found.append(("email", c.email))
        if c.mobile and "sms" in ctx.settings.notify_channels:
            found.append(("sms", c.mobile))
        if c.slack_user_id and "slack" in ctx.settings.notify_channels:
            found.append(("slack", c.slack_user_id))
    if event in ALARM_EVENTS and ctx.settings.alarm_channel:
        found.append(("slack", ctx.settings.alarm_channel))
    return found


def deliver(db: Session, ids: list[int], channels: Channels) -> int:
    """Send what is not sent yet; returns how many still failed (for a retry)."""
    failed = 0
    rows = db.scalars(select(Notification).where(Notification.id.in_(ids),
                                                 Notification.status != SENT)).all()
    for n in rows:
        n.attempts += 1
        try:
            channels.get(n.channel).send(Message(n.recipient, n.subject, n.body))
        except DeliveryError as exc:
            n.status, n.error = FAILED, str(exc)[:500]
            failed += 1
        else:
            n.status, n.error, n.sent_at = SENT, None, utcnow()
    return failed


def log(ctx: Ctx, page: int = 1) -> tuple[list[Notification], int]:
    ctx.actor.require("DescribeAlarms")
    q = select(Notification).where(Notification.account_id == ctx.actor.account_id)
    total = ctx.db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = ctx.db.scalars(q.order_by(Notification.id.desc()).limit(PAGE_SIZE)
                          .offset((max(page, 1) - 1) * PAGE_SIZE)).all()
    return list(rows), total
