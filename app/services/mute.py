"""The mute (do-not-disturb) list (SPEC.md §5): number + signature + SMS type."""

from __future__ import annotations

from sqlalchemy import Select, delete, func, select

from app.models import MuteEntry
from app.services import audit, paging
from app.services.context import Ctx
from app.services.errors import ValidationError, invalid
from app.services.unique import same_time, taken
from app.services.unsubscribes import number_and_signature
from app.sms import numbers, templating

MAX_NUMBERS = 1000  # distinct numbers in total (fixed)


def _entries(ctx: Ctx, phone_number: str) -> Select[MuteEntry]:
    ctx.actor.require("DescribeBlackList")
    q = select(MuteEntry).where(MuteEntry.account_id == ctx.actor.account_id)
    if phone_number.strip():
        try:
            q = q.where(MuteEntry.phone_number == numbers.parse_any(phone_number))
        except numbers.NumberError as exc:
            raise invalid("phone_number", str(exc)) from None
    return q.order_by(MuteEntry.id.desc())


def entries(ctx: Ctx, phone_number: str = "") -> list[MuteEntry]:
    """The latest 500 (what the console and Slack show)."""
    return list(ctx.db.scalars(_entries(ctx, phone_number).limit(500)))


def entries_page(ctx: Ctx, phone_number: str, page: int,
                 page_size: int) -> tuple[list[MuteEntry], int]:
    return paging.page_of(ctx.db, _entries(ctx, phone_number), page, page_size)


def add(ctx: Ctx, *, phone_number: str, signature_id: str | int, sms_type: str,
        consent: bool) -> MuteEntry:
    """The entry for the number, signature and type: added, or the one already there."""
    return add_entry(ctx, phone_number=phone_number, signature_id=signature_id,
                     sms_type=sms_type, consent=consent)[0]


def add_entry(ctx: Ctx, *, phone_number: str, signature_id: str | int, sms_type: str,
              consent: bool) -> tuple[MuteEntry, bool]:
    """`add`, and whether the entry is new (a person is told when it was there already)."""
    ctx.actor.require("AddBlackList")
    errors: dict[str, str] = {}
    if not consent:
        errors["consent"] = "Confirm that the number's owner asked not to be disturbed."
    number, sig = number_and_signature(ctx, phone_number, signature_id, errors)
    if sms_type and sms_type not in templating.SMS_TYPES:
        errors["sms_type"] = "Choose an SMS type, or all types."
    if errors:
        raise ValidationError(errors)
    assert sig is not None
    kind = sms_type or None
    existing = ctx.db.scalar(select(MuteEntry).where(
        MuteEntry.account_id == ctx.actor.account_id, MuteEntry.phone_number == number,
        MuteEntry.signature_id == sig.id,
        MuteEntry.sms_type.is_(None) if kind is None else MuteEntry.sms_type == kind))
    if existing is not None:
        return existing, False
    listed = ctx.db.scalar(select(func.count(func.distinct(MuteEntry.phone_number))).where(
        MuteEntry.account_id == ctx.actor.account_id)) or 0
    known = ctx.db.scalar(select(MuteEntry.id).where(
        MuteEntry.account_id == ctx.actor.account_id, MuteEntry.phone_number == number).limit(1))
    if known is None and listed >= MAX_NUMBERS:
        raise invalid("phone_number", f"The mute list holds at most {MAX_NUMBERS:,} numbers.")
    entry = MuteEntry(account_id=ctx.actor.account_id, phone_number=number,
                      signature_id=sig.id, sms_type=kind, consent_confirmed_by=ctx.actor.label)
    with taken(ctx.db, same_time("mute entry")):
        ctx.db.add(entry)
    audit.record(ctx, "AddBlackList", "mute", entry.id, None,
                 {"phone_number": number, "signature": sig.content, "sms_type": kind or "all"})
    return entry, True


def remove(ctx: Ctx, ids: list[int]) -> int:
    ctx.actor.require("DeleteBlackList")
    found = ctx.db.scalars(select(MuteEntry).where(
        MuteEntry.account_id == ctx.actor.account_id, MuteEntry.id.in_(ids))).all()
    for e in found:
        audit.record(ctx, "DeleteBlackList", "mute", e.id,
                     {"phone_number": e.phone_number, "sms_type": e.sms_type or "all"}, None)
    ctx.db.execute(delete(MuteEntry).where(MuteEntry.id.in_([e.id for e in found])))
    return len(found)
