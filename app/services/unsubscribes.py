"""Opt-outs (SPEC.md §5): who unsubscribed from what, and removal requests,
which are reviewed like content."""

from __future__ import annotations

from sqlalchemy import Select, delete, select

from app.db import utcnow
from app.models import Signature, Unsubscribe, UnsubscribeRemoval
from app.services import audit, paging, values
from app.services.apps import get_app
from app.services.context import Ctx
from app.services.errors import Conflict, ValidationError, invalid
from app.services.values import text
from app.sms import numbers, templating


def query(ctx: Ctx, *, phone_number: str, sdk_app_id: str = "",
          signature_id: str | int = "") -> list[Unsubscribe]:
    """Which SMS types a number unsubscribed from (for one signature, or all)."""
    if sdk_app_id:
        get_app(ctx, sdk_app_id, "DescribeUnsubscribe")
    else:
        ctx.actor.require("DescribeUnsubscribe")
    try:
        number = numbers.parse_any(phone_number)
    except numbers.NumberError as exc:
        raise invalid("phone_number", str(exc)) from None
    q = select(Unsubscribe).where(Unsubscribe.account_id == ctx.actor.account_id,
                                  Unsubscribe.phone_number == number)
    if signature_id not in (None, ""):
        q = q.where(Unsubscribe.signature_id == (values.record_id(signature_id) or 0))
    return list(ctx.db.scalars(q.order_by(Unsubscribe.id)))


def record(db: object, account_id: int, phone_number: str, signature_id: int, sms_type: str,
           source: str) -> bool:
    """Add an opt-out if it is new (system use: replies). True when added.

    One statement that skips an existing row: two identical replies applied at once
    must not fail one of their jobs on the unique key."""
    from sqlalchemy.dialects import postgresql, sqlite
    from sqlalchemy.orm import Session

    assert isinstance(db, Session)
    dialect = postgresql if db.get_bind().dialect.name == "postgresql" else sqlite
    added = db.execute(dialect.insert(Unsubscribe).values(
        account_id=account_id, phone_number=phone_number, signature_id=signature_id,
        sms_type=sms_type, source=source, created_at=utcnow(),
    ).on_conflict_do_nothing().returning(Unsubscribe.id))
    return added.scalar() is not None  # (rowcount is -1 for this on psycopg)


def number_and_signature(ctx: Ctx, phone_number: str, signature_id: str | int,
                         errors: dict[str, str]) -> tuple[str, Signature | None]:
    """A typed number and one of the account's signatures, as a form gives them;
    problems go into `errors` beside the other fields'."""
    number = ""
    try:
        number = numbers.parse_any(phone_number)
    except numbers.NumberError as exc:
        errors["phone_number"] = str(exc)
    sid = values.record_id(signature_id)
    sig = ctx.db.get(Signature, sid) if sid else None
    if sig is None or sig.account_id != ctx.actor.account_id:
        errors["signature_id"] = "Choose a signature."
        sig = None
    return number, sig


def request_removal(ctx: Ctx, *, phone_number: str, signature_id: str | int, sms_type: str,
                    reason: str) -> UnsubscribeRemoval:
    ctx.actor.require("ModifyUnsubscribe")
    errors: dict[str, str] = {}
    number, sig = number_and_signature(ctx, phone_number, signature_id, errors)
    if sms_type not in templating.SMS_TYPES:
        errors["sms_type"] = "Choose an SMS type."
    reason = (reason or "").strip()
    if not reason:
        errors["reason"] = "Say why this number may be messaged again."
    else:
        reason = text(reason, "reason", errors, max_len=500, multiline=True)
    if errors:
        raise ValidationError(errors)
    assert sig is not None
    if not ctx.db.scalar(select(Unsubscribe.id).where(
        Unsubscribe.account_id == ctx.actor.account_id, Unsubscribe.phone_number == number,
        Unsubscribe.signature_id == sig.id, Unsubscribe.sms_type == sms_type)):
        raise Conflict("This number is not unsubscribed from that signature and type.")
    from app.services.content import submit_for_review

    removal = UnsubscribeRemoval(account_id=ctx.actor.account_id, phone_number=number,
                                 signature_id=sig.id, sms_type=sms_type, reason=reason)
    ctx.db.add(removal)
    submit_for_review(ctx, removal)
    audit.record(ctx, "ModifyUnsubscribe", "unsubscribe_removal", removal.id, None,
                 {"phone_number": number, "signature": sig.content, "sms_type": sms_type,
                  "reason": reason})
    return removal


def _requests(ctx: Ctx) -> Select[UnsubscribeRemoval]:
    ctx.actor.require("DescribeUnsubscribe")
    return select(UnsubscribeRemoval).where(
        UnsubscribeRemoval.account_id == ctx.actor.account_id
    ).order_by(UnsubscribeRemoval.id.desc())


def requests(ctx: Ctx) -> list[UnsubscribeRemoval]:
    """The latest 200 (what the console shows)."""
    return list(ctx.db.scalars(_requests(ctx).limit(200)))


def requests_page(ctx: Ctx, page: int, page_size: int) -> tuple[list[UnsubscribeRemoval], int]:
    return paging.page_of(ctx.db, _requests(ctx), page, page_size)


def apply_removal(ctx: Ctx, removal: UnsubscribeRemoval) -> None:
    """An approved request: the number may be messaged again."""
    ctx.db.execute(delete(Unsubscribe).where(
        Unsubscribe.account_id == removal.account_id,
        Unsubscribe.phone_number == removal.phone_number,
        Unsubscribe.signature_id == removal.signature_id,
        Unsubscribe.sms_type == removal.sms_type))
