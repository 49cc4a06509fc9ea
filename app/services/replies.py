"""Replies from recipients (SPEC.md §3): stored, opt-out keywords honoured,
forwarded to the account's reply callback."""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.orm import Session

from app.models import Account, Application, Message, Reply
from app.models.sending import DELIVERED, SUBMITTED
from app.services import apps, paging, sending, unsubscribes
from app.services.context import Ctx
from app.sms import numbers

# Case-insensitive, trimmed; for international numbers too (beyond the hosted console).
OPT_OUT_WORDS = frozenset({"TD", "T", "N", "R", "STOP", "退订"})
REPLY_CALLBACK_JOB = "jobs.callbacks.reply"


def is_opt_out(text: str) -> bool:
    return text.strip().upper() in OPT_OUT_WORDS


def receive(ctx: Ctx, phone_number: str, text: str) -> Reply:
    """A reply arrives (from a gateway, or injected into the simulator). It answers
    the latest message sent to that number, whose signature and type it opts out of."""
    db: Session = ctx.db
    number = numbers.parse_any(phone_number)
    last = _answered(db, ctx.actor.account_id, number)
    reply = Reply(account_id=ctx.actor.account_id, phone_number=number, text=text[:1000],
                  app_id=last.app_id if last else None, message_id=last.id if last else None)
    if last is not None and last.signature_id is not None and is_opt_out(text):
        unsubscribes.record(db, ctx.actor.account_id, number, last.signature_id, last.sms_type,
                            "reply")
        reply.unsubscribed = True
    db.add(reply)
    db.flush()
    account = db.get(Account, ctx.actor.account_id)
    if account is not None and account.reply_callback_enabled and account.reply_callback_url:
        ctx.defer(REPLY_CALLBACK_JOB, reply.id)  # every reply (callbacks.reply_payload)
    return reply


def _answered(db: Session, account_id: int, number: str) -> Message | None:
    """The message a reply from `number` answers: the latest that left for it."""
    return db.scalar(select(Message).where(
        Message.account_id == account_id, Message.phone_number == number,
        Message.status.in_((SUBMITTED, DELIVERED))).order_by(Message.id.desc()).limit(1))


def simulate(ctx: Ctx, phone_number: str, text: str) -> Reply:
    """A reply typed into the simulator's form, as if the recipient answered: only who
    may send on the application it answers may make one (SendSms on every application
    when it answers none), and one that opts out also needs ModifyUnsubscribe."""
    number = numbers.parse_any(phone_number)
    last = _answered(ctx.db, ctx.actor.account_id, number)
    app = ctx.db.get(Application, last.app_id) if last is not None else None
    if app is not None:
        apps.require_app(ctx.actor, app, app.sdk_app_id, "SendSms")
    else:
        ctx.actor.require("SendSms")
    if is_opt_out(text):
        ctx.actor.require("ModifyUnsubscribe")
    return receive(ctx, number, text)


def recent(ctx: Ctx, limit: int = 100, number: str = "") -> list[Reply]:
    """The latest replies the actor may read: those answering an application they may
    read the send records of; replies that answer no known message need that right on
    every application (sms:app/*)."""
    q, _visible = _readable(ctx, number)
    return list(ctx.db.scalars(q.limit(limit)))


def replies_page(ctx: Ctx, number: str, page: int,
                 page_size: int) -> tuple[list[tuple[Reply, str | None]], int]:
    """A page of the replies `recent` reads, newest first, each with the SdkAppId of the
    application it answers (None: no known message), and how many there are."""
    q, visible = _readable(ctx, number)
    rows, total = paging.page_of(ctx.db, q, page, page_size)
    return [(r, visible.get(r.app_id) if r.app_id is not None else None) for r in rows], total


def _readable(ctx: Ctx, number: str) -> tuple[Select[Reply], dict[int, str]]:
    """`number`: as typed in the log's number box (sending.number_prefixes)."""
    action = "DescribeSendSmsRecord"
    account_wide = ctx.actor.can(action)
    visible = apps.allowed(ctx, action)
    if not visible and not account_wide:
        ctx.actor.require(action)  # says plainly which right is missing
    which: ColumnElement[bool] = Reply.app_id.in_(visible)
    if account_wide:
        which = or_(which, Reply.app_id.is_(None))
    q = select(Reply).where(Reply.account_id == ctx.actor.account_id, which)
    if number.strip():
        q = q.where(sending.number_filter(Reply.phone_number, number))
    return q.order_by(Reply.id.desc()), visible
