"""Sending single messages (SPEC.md §3): every check before a message leaves,
the state machine after, and what comes back (receipts).

A request becomes one Message row per number: `accepted` when every check
passed (a worker submits it), or `rejected` with a stable error code. The path
from accepted onwards works on batches, for one message or a million.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    and_,
    any_,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from app.db import batch_json, utcnow
from app.models import (
    Account,
    AllowedCountry,
    Application,
    CreditPackage,
    Message,
    MuteEntry,
    SendReply,
    Signature,
    Template,
    Unsubscribe,
)
from app.models.content import EFFECTIVE
from app.models.sending import ACCEPTED, REJECTED, SUBMITTING
from app.services import alarms, rollups, sendconfig
from app.services.access import Actor
from app.services.apps import get_app, require_app
from app.services.context import Ctx
from app.services.errors import NotFound, invalid
from app.services.limits import DAY_MS, Check, Guard, Limiter, content_digest
from app.services.sendconfig import (
    AccountSnap,
    AppSnap,
    CountrySnap,
    SignatureSnap,
    Snapshots,
    TemplateSnap,
)
from app.sms import (
    alarm_texts,
    errors,
    numbers,
    outcomes,
    params,
    periods,
    quiet,
    taskfile,
    templating,
)
from app.sms.text import GSM7, INTERNATIONAL, MAINLAND, UCS2, compose, count, is_gsm7

MAX_NUMBERS = 200  # per request
MAX_PARAMS = 200  # per request: a template's content (under 500 characters) holds fewer
# Refusals of the parameters themselves: a row records no copy of what was refused (200
# rows of a request would each keep up to a megabyte of it).
_PARAM_REFUSALS = frozenset({"InvalidParameterValue.TemplateParameterCountMismatch",
                             params.FORMAT_ERROR, params.LENGTH_LIMIT})
SUBMIT_JOB = "jobs.sending.submit"  # for given ids; requests wake the drainer instead
DRAIN_JOB = "jobs.sending.drain"  # coalesced across requests (app/queue.py)
STATUS_CALLBACK_JOB = "jobs.callbacks.status"


@dataclass(frozen=True)
class SendRequest:
    phone_numbers: list[str]
    template_id: int
    template_params: list[str]
    sign_name: str | None = None
    session_context: str | None = None


@dataclass(frozen=True)
class SendStatus:
    serial_no: str
    phone_number: str
    code: str
    message: str
    fee: int
    iso_code: str


def validate_request(body: Any) -> SendRequest:
    """The shape of an API body; a wrong shape is a 400, not per-number results."""
    if not isinstance(body, dict):
        raise invalid("", "The body must be a JSON object.")
    phones = body.get("phone_numbers")
    if not isinstance(phones, list) or not phones or not all(isinstance(p, str) for p in phones):
        raise invalid("phone_numbers", "Give a non-empty list of phone numbers as strings.")
    if len(phones) > MAX_NUMBERS:
        raise invalid("phone_numbers", f"At most {MAX_NUMBERS} numbers per request "
                                       f"({len(phones)} given).")
    template_id = body.get("template_id")
    if not isinstance(template_id, int) or isinstance(template_id, bool) or not (
        1 <= template_id <= 2**31 - 1
    ):
        raise invalid("template_id", "Give the template's id as a positive integer.")
    params = body.get("template_params", [])
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise invalid("template_params", "Give the parameters as a list of strings.")
    if len(params) > MAX_PARAMS:
        raise invalid("template_params", f"At most {MAX_PARAMS} parameters ({len(params)} "
                                         "given).")
    if any(len(p) > 500 for p in params):
        raise invalid("template_params", "Each parameter has at most 500 characters.")
    sign = body.get("sign_name")
    if sign is not None and not isinstance(sign, str):
        raise invalid("sign_name", "Give the signature text as a string.")
    context = body.get("session_context")
    if context is not None and (not isinstance(context, str) or len(context) > 512):
        raise invalid("session_context", "A string of at most 512 characters.")
    for field, values in (("phone_numbers", phones), ("template_params", params),
                          ("sign_name", [sign or ""]), ("session_context", [context or ""])):
        if any(_has_control(v, allow_newlines=field == "template_params") for v in values):
            raise invalid(field, "Control characters (such as NUL) are not allowed.")
    unknown = set(body) - {"phone_numbers", "template_id", "template_params", "sign_name",
                           "session_context"}
    if unknown:
        raise invalid("", f"Unknown field {sorted(unknown)[0]!r}.")
    return SendRequest(phones, template_id, params, sign or None, context)


# C0 controls and DEL; parameters may hold line breaks and tabs. A regex over the whole
# string, not a generator per character.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_BUT_BREAKS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _has_control(text: str, *, allow_newlines: bool) -> bool:
    return (_CONTROL_BUT_BREAKS if allow_newlines else _CONTROL).search(text) is not None


def _new_serial() -> str:
    return uuid.uuid4().hex


def _whole_request_error(ctx: Ctx, app: AppSnap, template: TemplateSnap | None,
                         signature: SignatureSnap | None, req: SendRequest) -> str | None:
    """Checks that fail every number alike, in SPEC.md's order."""
    if not app.enabled:
        return "FailedOperation.AppDisabled"
    if template is None or template.status != EFFECTIVE:
        return "FailedOperation.TemplateNotEffective"
    if signature is None:
        if req.sign_name or template.region == MAINLAND:
            return "FailedOperation.SignatureNotEffective"
    elif not signature.usable or signature.region != template.region:
        return "FailedOperation.SignatureNotEffective"
    if len(req.template_params) != len(templating.variables(template.content)):
        return "InvalidParameterValue.TemplateParameterCountMismatch"
    problem = param_problem(ctx, template, req.template_params)
    return problem.code if problem else None


def param_problem(ctx: Ctx, template: Template | TemplateSnap,
                  values: list[str]) -> params.Problem | None:
    """The template parameter rules (app/sms/params.py): pure, cached, no queries."""
    return params.check(template.content, template.sms_type, tuple(values),
                        max_length=ctx.settings.template_param_max_length,
                        allow_urls=template.allow_url_params)


def _signature(ctx: Ctx, region: str, name: str | None) -> Signature | None:
    """The ORM signature a bulk task records (tasks.py); `send` reads a snapshot."""
    from app.services.content import default_signature

    if not name:
        return default_signature(ctx, region)
    return ctx.db.scalar(select(Signature).where(
        Signature.account_id == ctx.actor.account_id, Signature.region == region,
        Signature.content == name.strip(), Signature.status == EFFECTIVE))


def _local_day(account: Account | AccountSnap, now: datetime) -> tuple[str, datetime]:
    local = now.astimezone(ZoneInfo(account.timezone))
    return local.strftime("%Y%m%d"), local


def _days(old_zone: str, new_zone: str, now: datetime) -> tuple[str, str]:
    """Today's key date in each zone (as `_local_day` makes it)."""
    return tuple(now.astimezone(ZoneInfo(z)).strftime("%Y%m%d")  # type: ignore[return-value]
                 for z in (old_zone, new_zone))


def send(ctx: Ctx, limiter: Limiter, sdk_app_id: str, req: SendRequest,
         snaps: Snapshots | None = None) -> tuple[str, list[SendStatus]]:
    """Check and record one message per number; submission runs as a job.
    `snaps`: the caller's configuration cache (app/services/sendconfig.py), if any.
    The two halves, `prepare` and `settle`, in the caller's transaction."""
    prepared = prepare(ctx, limiter, sdk_app_id, req, snaps)
    settle(ctx, limiter, [prepared])
    return prepared.request_id, prepared.results


@dataclass
class Prepared:
    """A send request checked as far as it goes without the database: numbers,
    parameters and text checked, limits reserved in Redis (`held`: message index →
    the checks it holds). `settle` finishes it in a transaction: mute list and
    unsubscribes, credit, alarms, the rows. Many can be settled in one transaction
    (the send API's group commit, app/api/groupcommit.py)."""

    actor: Actor
    app: AppSnap
    account: AccountSnap
    template: TemplateSnap | None
    signature: SignatureSnap | None
    region: str
    request_id: str
    now: datetime
    day: str
    messages: list[_Draft]
    codes: list[str | None]
    fees: list[int]
    refusals: list[tuple[int, Check]]  # (message index, the check that refused it)
    held: dict[int, list[Check]]
    whole: str | None
    detail: str | None  # which parameter, and why
    notes: dict[str, str]  # why a number was refused, in the parser's words, by serial
    results: list[SendStatus] = dataclass_field(default_factory=list)
    # The checks of numbers a limit refused: asked again in `settle` when a number
    # found muted there gives its units back (it may free the unit one of them lacked).
    refused_checks: dict[int, list[Check]] = dataclass_field(default_factory=dict)
    # (Idempotency-Key, fingerprint of the request): `settle` stores the answer under
    # the key with the rows, so that a retry is answered from it: `replayed` is then
    # that answer, and nothing of the retry is written.
    idempotency: tuple[str, str] | None = None
    replayed: StoredReply | None = None

    def give_back(self, limiter: Limiter) -> None:
        """Release every reservation still held (the rows were not written)."""
        held = [c for checks in self.held.values() for c in checks]
        self.held.clear()
        limiter.release(held)


def prepare(ctx: Ctx, limiter: Limiter, sdk_app_id: str, req: SendRequest,
            snaps: Snapshots | None = None, guard: Guard | None = None) -> Prepared:
    """Everything of `send` before the database: the permission, the request's shape,
    each number, quiet hours, and every limit reserved in one Redis call. Writes
    nothing to the database (it reads it only for configuration the cache lacks).
    `guard`: checked in that same call (the send API: its nonce, and that the cached
    configuration is current); raises limits.Stale or limits.Replayed."""
    snaps = snaps or sendconfig.uncached()
    app = snaps.app(ctx.db, str(sdk_app_id))
    require_app(ctx.actor, app, sdk_app_id, "SendSms")
    assert app is not None
    account = snaps.account(ctx.db, app.account_id)
    template = snaps.template(ctx.db, req.template_id)
    if template is not None and template.account_id != app.account_id:
        template = None
    region = template.region if template else INTERNATIONAL
    signature = snaps.signature(ctx.db, app.account_id, region, req.sign_name)
    now = utcnow()
    day, local = _local_day(account, now)
    whole = _whole_request_error(ctx, app, template, signature, req)
    problem = param_problem(ctx, template, req.template_params) if template is not None and (
        whole in (params.FORMAT_ERROR, params.LENGTH_LIMIT)) else None  # cached: no re-check

    body = ""
    if whole is None and template is not None:
        body = templating.render(template.content, req.template_params)
    counted = count(body, region, signature.content if signature else None)
    freq = frequency_limits(app, account.account_type)
    # The allowlist matters only to frequency rules.
    allowlist = app.allowlist if any(freq.values()) else frozenset()
    countries = app.countries
    request_id = uuid.uuid4().hex
    messages: list[_Draft] = []
    codes: list[str | None] = []
    wanted: list[tuple[int, list[Check]]] = []  # (index, its limit checks)
    seen: set[str] = set()
    notes: dict[str, str] = {}
    params_kept = list(req.template_params) if template and whole not in _PARAM_REFUSALS \
        else None
    for raw in req.phone_numbers:
        serial = _new_serial()
        msg = _Draft(account_id=app.account_id, app_id=app.id, serial_no=serial,
                     request_id=request_id, region=region, phone_number=raw.strip()[:20],
                     signature_id=signature.id if signature else None,
                     template_id=template.id if template else None,
                     sms_type=template.sms_type if template else "", content=counted.text,
                     encoding=counted.encoding, session_context=req.session_context,
                     fee=0, iso_code="", created_at=now, template_params=params_kept)
        code = whole
        if code is not None:  # refused as a whole, still filed under its number's country
            found = taskfile.parse_number(raw, region)
            if not isinstance(found, str):
                msg.phone_number, msg.iso_code = found
        else:
            # Mainland mobiles skip phonenumbers (~75 µs each) through the task files'
            # fast path, which agrees with it (property test); other shapes go through it.
            found = taskfile.parse_number(raw, region)
            parsed = None if isinstance(found, str) else found
            if isinstance(found, str):
                notes[serial] = found
            # The mute list and unsubscribes are read in `settle`, in the transaction.
            code = _number_checks(msg, parsed, region, countries, {}, local)
        if code is None and msg.phone_number in seen:
            code = "InvalidParameterValue.IncorrectPhoneNumber"  # the same number twice
            notes[serial] = "The same number appears earlier in this request."
        if code is None:
            seen.add(msg.phone_number)
            wanted.append((len(messages), _checks(
                app, account, freq, msg, counted.billed_items, msg.phone_number in allowlist,
                countries.get(msg.iso_code), day)))
        messages.append(msg)
        codes.append(code)
    refusals: list[tuple[int, Check]] = []
    held: dict[int, list[Check]] = {}
    refused_checks: dict[int, list[Check]] = {}
    refused = limiter.reserve_many([checks for _i, checks in wanted],
                                   int(now.timestamp() * 1000), guard)
    for (i, checks), refusal in zip(wanted, refused, strict=True):
        if refusal is None:
            held[i] = checks
        else:
            codes[i] = refusal.error_code
            refusals.append((i, refusal))
            refused_checks[i] = checks
    return Prepared(ctx.actor, app, account, template, signature, region, request_id, now, day,
                    messages, codes, [counted.billed_items] * len(messages), refusals, held,
                    whole, problem.message if problem else None, notes,
                    refused_checks=refused_checks)


def _later_than_blocked(code: str | None) -> bool:
    """Codes the mute list and unsubscribes come before (SPEC.md's order of checks):
    a blocked number is reported as blocked even if these would refuse it too."""
    return code is None or code == "FailedOperation.MarketingQuietHours" \
        or code.startswith("LimitExceeded.")


def settle(ctx: Ctx, limiter: Limiter, batch: list[Prepared]) -> None:
    """Finish prepared requests in the caller's transaction: the mute list and
    unsubscribes (one query per signature and type for the whole batch), credit,
    threshold and limit alarms, then every row with one INSERT (and the rollups).
    Reservations of numbers refused here are released at once. Fills `results`, or
    `replayed` for a request whose Idempotency-Key has an answer already: nothing of
    it is written, and the caller gives its reservations back once this commits (a
    transaction that fails is settled again, and may decide otherwise)."""
    batch, followers = _answered_already(ctx, batch)
    wanted: dict[tuple[int, int, str], set[str]] = {}
    for p in batch:
        if p.signature is not None and p.template is not None:
            key = (p.app.account_id, p.signature.id, p.template.sms_type)
            wanted.setdefault(key, set()).update(
                m.phone_number for m, code in zip(p.messages, p.codes, strict=True)
                if m.iso_code and _later_than_blocked(code))
    blocked = {key: _blocked_numbers(ctx, *key, sorted(found))
               for key, found in wanted.items() if found}
    for p in batch:
        actor_ctx = ctx if p.actor is ctx.actor else replace(ctx, actor=p.actor)  # its alarms
        found = blocked.get((p.app.account_id, p.signature.id, p.template.sms_type), {}) \
            if p.signature is not None and p.template is not None else {}
        back: list[Check] = []
        if found:
            for i, msg in enumerate(p.messages):
                if msg.iso_code and msg.phone_number in found \
                        and _later_than_blocked(p.codes[i]):
                    p.codes[i] = found[msg.phone_number]
                    back += p.held.pop(i, [])
            p.refusals = [(i, r) for i, r in p.refusals if p.codes[i] == r.error_code]
        limiter.release(back)
        if back:
            _reserve_again(limiter, p)
        reserved = sorted(p.held.items())
        covered = _after_reserve(actor_ctx, limiter, p.app, p.account, p.messages, p.codes,
                                 reserved, p.refusals, p.fees, p.app.countries, p.day, p.now)
        for i, _checks in reserved[covered:]:
            p.held.pop(i, None)  # released for want of credit
    rows: list[_Draft] = []
    accepted = False
    for p in batch:
        for msg, code, fee in zip(p.messages, p.codes, p.fees, strict=True):
            if code is None:
                msg.fee, msg.status = fee, ACCEPTED
                accepted = True
            else:
                msg.status, msg.error_code = REJECTED, code
            note = p.detail if code == p.whole else p.notes.get(msg.serial_no)
            reason = "Sent to the carrier shortly." if code is None else (
                note or errors.describe(code).reason)
            p.results.append(SendStatus(msg.serial_no, msg.phone_number, code or errors.OK,
                                        reason, msg.fee, msg.iso_code))
        rows += p.messages
    _keep_replies(ctx, batch, followers)
    if rows:  # (none when every request was answered from a stored reply)
        # The rollups' days in each account's zone, from the snapshot the request was
        # checked with (no query per batch).
        _record(ctx, rows, zones={p.account.id: ZoneInfo(p.account.timezone) for p in batch})
    if accepted:
        ctx.defer(DRAIN_JOB)


REPLY_KEPT = timedelta(hours=24)  # how long a retry with the same key is answered


@dataclass(frozen=True)
class StoredReply:
    fingerprint: str
    request_id: str
    results: list[SendStatus]


def _answered_already(ctx: Ctx, batch: list[Prepared]
                      ) -> tuple[list[Prepared], list[tuple[Prepared, Prepared]]]:
    """The requests of `batch` to settle, and (request, the earlier one with its key in
    this batch) pairs. A request whose key has an answer stored (one query for the
    batch) gets it as `replayed`; neither it nor a follower is settled. A key whose
    answer is past REPLY_KEPT is free again."""
    keyed = {(p.app.id, p.idempotency[0]) for p in batch if p.idempotency is not None}
    if not keyed:
        return batch, []
    stored: dict[tuple[int, str], StoredReply] = {}
    stale: list[int] = []
    by_app: dict[int, list[str]] = {}
    for app_id, name in sorted(keyed):
        by_app.setdefault(app_id, []).append(name)
    # Per application (most batches hold one): the unique index (app_id, key) serves.
    for row in ctx.db.execute(select(
            SendReply.id, SendReply.app_id, SendReply.key, SendReply.fingerprint,
            SendReply.request_id, SendReply.results, SendReply.created_at)
            .where(or_(*(and_(SendReply.app_id == app_id, SendReply.key.in_(keys))
                         for app_id, keys in by_app.items())))):
        if row.created_at <= utcnow() - REPLY_KEPT:
            stale.append(row.id)
        else:
            stored[(row.app_id, row.key)] = StoredReply(
                row.fingerprint, row.request_id,
                [SendStatus(*r) for r in json.loads(row.results)])
    if stale:
        ctx.db.execute(delete(SendReply).where(SendReply.id.in_(stale)))
    settle_now: list[Prepared] = []
    followers: list[tuple[Prepared, Prepared]] = []
    first: dict[tuple[int, str], Prepared] = {}
    for p in batch:
        key = (p.app.id, p.idempotency[0]) if p.idempotency is not None else None
        if key is None:
            settle_now.append(p)
        elif key in stored:
            p.replayed = stored[key]
        elif key in first:
            followers.append((p, first[key]))
        else:
            first[key] = p
            settle_now.append(p)
    return settle_now, followers


def _keep_replies(ctx: Ctx, batch: list[Prepared],
                  followers: list[tuple[Prepared, Prepared]]) -> None:
    """The answers of requests sent with an Idempotency-Key, one INSERT; a follower (its
    key's first request in this batch) is answered with the first one's. Another
    process's batch may hold the same key: the unique key refuses the second INSERT,
    and the group commit settles that request again alone, answered from the first."""
    rows = [{"app_id": p.app.id, "key": p.idempotency[0], "fingerprint": p.idempotency[1],
             "request_id": p.request_id, "created_at": p.now,
             "results": json.dumps([list(vars(r).values()) for r in p.results])}
            for p in batch if p.idempotency is not None]
    if rows:
        ctx.db.execute(insert(SendReply), rows)
    for p, earlier in followers:
        assert earlier.idempotency is not None
        p.replayed = StoredReply(earlier.idempotency[1], earlier.request_id,
                                 list(earlier.results))


def _reserve_again(limiter: Limiter, p: Prepared) -> None:
    """Numbers a limit refused, asked again in order once muted numbers of the same
    request gave back their units: as if the muted ones had never been counted."""
    again = [(i, p.refused_checks[i]) for i, r in p.refusals
             if p.codes[i] == r.error_code and i in p.refused_checks]
    if not again:
        return
    answers = limiter.reserve_many([checks for _i, checks in again],
                                   int(p.now.timestamp() * 1000))
    still = {i: r for i, r in p.refusals}
    for (i, checks), refusal in zip(again, answers, strict=True):
        p.codes[i] = refusal.error_code if refusal else None
        if refusal is None:
            p.held[i] = checks
            del still[i]
        else:
            still[i] = refusal
    p.refusals = sorted(still.items())


class _Draft:
    """A message being checked: plain attributes (building ORM objects cost more than
    the checks), inserted as a dict of its columns."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # for type checkers: columns set above
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        self.__dict__[name] = value


def _record(ctx: Ctx, messages: list[_Draft], *, ids: bool = False,
            zones: dict[int, ZoneInfo] | None = None) -> dict[str, int]:
    """One INSERT for the whole request or batch, on the session's connection: a plain
    Core statement needs none of the ORM's bookkeeping. The rollups count the same rows
    in the same transaction: counted once, with them. `ids`: also return the new rows'
    ids by serial number (a bulk batch submits them at once). `zones`: the accounts'
    time zones, when the caller has them (else the rollups read them)."""
    nulls = _message_nulls()
    rows = [{**nulls, **vars(m)} for m in messages]
    conn = ctx.db.connection()
    found: dict[str, int] = {}
    if conn.dialect.name == "postgresql":
        # One JSON parameter instead of ~25 placeholders per row (binding and adapting
        # those cost more than PostgreSQL's insert).
        returned = conn.execute(_insert_json(ids), {"data": batch_json(rows)})
        if ids:
            found = {serial: i for serial, i in returned}
    else:
        conn.execute(_insert_message(), rows)
        if ids:
            found = dict(conn.execute(select(Message.serial_no, Message.id).where(  # type: ignore[arg-type]
                Message.serial_no.in_([r["serial_no"] for r in rows]))).all())
    rollups.count_new(ctx.db, rows, zones)
    return found


@functools.cache
def _insert_json(returning: bool) -> Any:
    """INSERT ... SELECT over json_to_recordset (PostgreSQL), typed from the model.
    json, not jsonb: a row of 25 columns is read once, and converting the whole batch
    to jsonb first doubled the cost (1,000 rows: 19-21 ms against 11, bench/README)."""
    from sqlalchemy import text
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    cols = [c for c in Message.__table__.columns if c.key != "id"]
    names = ", ".join(c.name for c in cols)
    types = ", ".join(f"{c.name} {_pg_type(c.type, dialect)}" for c in cols)
    back = " RETURNING serial_no, id" if returning else ""
    return text(f"INSERT INTO message ({names}) SELECT {names} FROM "  # noqa: S608 - model names
                f"json_to_recordset(CAST(:data AS json)) AS j({types}){back}")


def _pg_type(type_: Any, dialect: Any) -> str:
    from sqlalchemy import JSON

    if isinstance(type_, JSON):
        return "json"
    impl = getattr(type_, "impl", type_)
    return str(impl.compile(dialect=dialect))


@functools.cache
def _message_nulls() -> dict[str, Any]:
    """Every column the row does not set is written as NULL (no Python-side defaults),
    as the multi-row INSERT of ORM objects did."""
    return {c.key: None for c in Message.__table__.columns if c.key != "id"}


@functools.cache
def _insert_message() -> Any:
    return insert(Message.__table__)  # type: ignore[arg-type]


@dataclass(frozen=True)
class BatchItem:
    """One recipient of a bulk task: its number was parsed when the file was read."""

    serial_no: str
    phone_number: str  # E.164
    iso_code: str
    params: list[str]


@dataclass(frozen=True)
class Claim:
    """Accepted messages of a batch written straight as `submitting` under this
    attempt and lease (app/services/pipeline.py): the caller submits them itself
    once the batch commits, with no claim statement and no job in between."""

    attempt: str
    lease_until: datetime


@dataclass(frozen=True)
class BatchOutcome:
    accepted: int
    claimed: list[Any]  # pipeline.Claimed, in row order, when a Claim was given


def send_batch(ctx: Ctx, limiter: Limiter, app: Application, template: Template | None,
               signature: Signature | None, region: str, items: list[BatchItem], *,
               request_id: str, task_id: int, claim: Claim | None = None) -> BatchOutcome:
    """A batch of a bulk task's recipients through the same checks as `send` (each
    row with its own parameters), recorded as messages of the one pipeline: accepted
    ones are drained like API sends (or, with `claim`, held for the caller to submit),
    refused ones are `rejected` with their code.
    The caller checked the permission when the task was confirmed. The ORM objects
    are read into the snapshots `send` checks (once per batch: the same check code
    for both paths, fresh from this transaction)."""
    return _send_batch(ctx, limiter, AppSnap.of(app),
                       TemplateSnap.of(template) if template is not None else None,
                       SignatureSnap.of(signature) if signature is not None else None,
                       region, items, request_id=request_id, task_id=task_id, claim=claim)


def _send_batch(ctx: Ctx, limiter: Limiter, app: AppSnap, template: TemplateSnap | None,
                signature: SignatureSnap | None, region: str, items: list[BatchItem], *,
                request_id: str, task_id: int, claim: Claim | None) -> BatchOutcome:
    account = sendconfig.uncached().account(ctx.db, app.account_id)
    now = utcnow()
    day, local = _local_day(account, now)
    freq = frequency_limits(app, account.account_type)
    allowlist = app.allowlist if any(freq.values()) else frozenset()
    countries = app.countries
    blocked = _blocked(ctx, app, signature, template, [i.phone_number for i in items])
    sign_name = signature.content if signature else None
    # What fails every row alike, once per batch; each row's own parameters below.
    shape = _whole_request_error(ctx, app, template, signature, SendRequest(
        [], template.id if template else 0, [], sign_name))
    whole = None if shape == "InvalidParameterValue.TemplateParameterCountMismatch" else shape
    want = len(templating.variables(template.content)) if template is not None else 0
    biller = taskfile.Biller(taskfile.Template(
        template.content, template.sms_type, region, sign_name)) if template else None
    messages: list[_Draft] = []
    codes: list[str | None] = []
    fees: list[int] = []
    wanted: list[tuple[int, list[Check]]] = []
    base = {"account_id": app.account_id, "app_id": app.id, "request_id": request_id,
            "region": region, "signature_id": signature.id if signature else None,
            "template_id": template.id if template else None,
            "sms_type": template.sms_type if template else "", "session_context": None,
            "fee": 0, "created_at": now, "task_id": task_id, "status": ACCEPTED}
    for item in items:
        code = whole
        if code is None and template is not None:
            if len(item.params) != want:
                code = "InvalidParameterValue.TemplateParameterCountMismatch"
            else:
                problem = param_problem(ctx, template, item.params)
                code = problem.code if problem else None
        fee = 1
        if code is None and template is not None and biller is not None:
            text = compose(templating.render(template.content, item.params), sign_name, region)
            encoding = UCS2 if region == MAINLAND or not is_gsm7(text) else GSM7
            fee = biller(item.params)
        else:
            counted = count("", region, sign_name)
            text, encoding, fee = counted.text, counted.encoding, counted.billed_items
        # A plain row object, not an ORM instance: the checks read attributes only,
        # and the batch is written with one multi-row INSERT.
        msg = _Draft(**base, serial_no=item.serial_no, phone_number=item.phone_number,
                     iso_code="", content=text, encoding=encoding,
                     template_params=list(item.params) if template else None)
        code = code or _number_checks(msg, (item.phone_number, item.iso_code), region,
                                      countries, blocked, local)
        if code is None:
            wanted.append((len(messages), _checks(
                app, account, freq, msg, fee, msg.phone_number in allowlist,
                countries.get(msg.iso_code), day)))
        messages.append(msg)
        codes.append(code)
        fees.append(fee)
    _reserve_all(ctx, limiter, app, account, messages, codes, wanted, fees, countries, day,
                 now)
    taken: list[_Draft] = []
    for msg, code, fee in zip(messages, codes, fees, strict=True):
        if code is None:
            msg.fee, msg.status = fee, ACCEPTED
            if claim is not None:
                msg.status, msg.attempt_id, msg.lease_until = (SUBMITTING, claim.attempt,
                                                              claim.lease_until)
            taken.append(msg)
        else:
            msg.status, msg.error_code = REJECTED, code
    ids = _record(ctx, messages, ids=claim is not None and bool(taken))
    if taken and claim is None:
        ctx.defer(DRAIN_JOB)
    from app.services.pipeline import Claimed

    return BatchOutcome(len(taken), [] if claim is None else [
        Claimed(ids[m.serial_no], m.phone_number, m.content, m.region, m.template_id,
                m.template_params, m.signature_id) for m in taken])


def _blocked(ctx: Ctx, app: AppSnap | Application, signature: SignatureSnap | Signature | None,
             template: TemplateSnap | Template | None, wanted: list[str]) -> dict[str, str]:
    """Numbers on the mute list or unsubscribed for this signature and type, found
    with one query for the whole request (not one per number)."""
    if signature is None or template is None or not wanted:
        return {}
    return _blocked_numbers(ctx, app.account_id, signature.id, template.sms_type, wanted)


def _blocked_numbers(ctx: Ctx, account_id: int, signature_id: int, sms_type: str,
                     wanted: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    conn = ctx.db.connection()
    pg = conn.dialect.name == "postgresql"
    rows = conn.execute(_blocked_query(pg), {
        "account": account_id, "numbers": wanted if pg else json.dumps(wanted),
        "signature": signature_id, "sms_type": sms_type}).all()
    for number, is_muted in sorted(rows, key=lambda row: row[1]):
        # The mute list comes first: its rows sort last and overwrite.
        found[number] = "FailedOperation.PhoneNumberInMuteList" if is_muted \
            else "FailedOperation.PhoneNumberUnsubscribed"
    return found


@functools.cache
def _blocked_query(pg: bool) -> Any:
    """Built once per dialect. The numbers come as one parameter, not an expanding IN
    list (a list of a new length is compiled again, and psycopg splits a thousand
    placeholders anew: both cost more than the query): an array on PostgreSQL, a JSON
    array on SQLite."""
    def among(column: Any) -> Any:
        if pg:
            return column == any_(bindparam("numbers", type_=ARRAY(String())))
        return column.in_(text("SELECT value FROM json_each(:numbers)").columns(value=String))
    rules: tuple[Any, ...] = (bindparam("account"), bindparam("signature"), bindparam("sms_type"))
    unsubscribed = unsubscribed_numbers(*rules).add_columns(literal(0).label("muted")) \
        .where(among(Unsubscribe.phone_number))
    muted = muted_numbers(*rules).add_columns(literal(1).label("muted")) \
        .where(among(MuteEntry.phone_number))
    return union_all(unsubscribed, muted)


def muted_numbers(account: Any, signature: Any, sms_type: Any) -> Select[Any]:
    """The mute list of a signature for one type of message (an entry without a type
    mutes every type)."""
    return select(MuteEntry.phone_number).where(
        MuteEntry.account_id == account, MuteEntry.signature_id == signature,
        MuteEntry.sms_type.is_(None) | (MuteEntry.sms_type == sms_type))


def unsubscribed_numbers(account: Any, signature: Any, sms_type: Any) -> Select[Any]:
    """Numbers that unsubscribed from a signature's messages of one type."""
    return select(Unsubscribe.phone_number).where(
        Unsubscribe.account_id == account, Unsubscribe.signature_id == signature,
        Unsubscribe.sms_type == sms_type)


def _number_checks(msg: _Draft, parsed: tuple[str, str] | None, region: str,
                   countries: dict[str, CountrySnap], blocked: dict[str, str],
                   local: datetime) -> str | None:
    if parsed is None:
        return "InvalidParameterValue.IncorrectPhoneNumber"
    msg.phone_number, msg.iso_code = parsed
    if region == INTERNATIONAL and countries and msg.iso_code not in countries:
        return "FailedOperation.CountryNotAllowed"
    if msg.phone_number in blocked:
        return blocked[msg.phone_number]
    if msg.sms_type == templating.MARKETING and quiet.is_quiet(local):
        return "FailedOperation.MarketingQuietHours"
    return None


# The per-number frequency rules in the order they are checked: (rule, window ms,
# the code of a refusal). A sliding window for 30s and hour, a counter per day.
FREQUENCY_RULES = (("30s", 30_000, "LimitExceeded.PhoneNumberThirtySecondLimit"),
                   ("hour", 3_600_000, "LimitExceeded.PhoneNumberOneHourLimit"),
                   ("day", DAY_MS, "LimitExceeded.PhoneNumberDailyLimit"))


def frequency_limits(app: AppSnap | Application, account_type: str) -> dict[str, int | None]:
    """Each frequency rule's limit for this application (None: off). Individual
    accounts have a cap that applies even to a rule that is off."""
    from app.services.accounts import INDIVIDUAL_FREQ_CAPS

    limits: dict[str, int | None] = {}
    for rule, _span, _code in FREQUENCY_RULES:
        limit = getattr(app, f"freq_{rule}_limit") if getattr(app, f"freq_{rule}_enabled") \
            else None
        if account_type == "individual":
            limit = min(limit or INDIVIDUAL_FREQ_CAPS[rule], INDIVIDUAL_FREQ_CAPS[rule])
        limits[rule] = limit
    return limits


def frequency_key(rule: str, app_id: int, phone: str, scope: str) -> str:
    """scope: the content's digest for 30s, the local day for day, "" for hour."""
    return f"smsops:freq:{rule}:{app_id}:{phone}{':' if scope else ''}{scope}"


def _checks(app: AppSnap, account: AccountSnap, freq: dict[str, int | None], msg: _Draft,
            fee: int, allowlisted: bool, country: CountrySnap | None, day: str) -> list[Check]:
    found: list[Check] = []
    if not allowlisted:
        for rule, span, code in FREQUENCY_RULES:
            limit = freq[rule]
            if limit is not None:
                scope = content_digest(msg.content) if rule == "30s" else \
                    day if rule == "day" else ""
                found.append(Check(frequency_key(rule, app.id, msg.phone_number, scope),
                                   "c" if rule == "day" else "w", limit, 1, span, code,
                                   msg.serial_no))
    region_limit = app.mainland_daily_limit if msg.region == MAINLAND else app.intl_daily_limit
    # Counted when there is a limit or an alarm threshold to compare with.
    if region_limit is not None or (app.mainland_alarm_threshold if msg.region == MAINLAND
                                    else app.intl_alarm_threshold) is not None:
        found.append(Check(app_day_key(app.id, msg.region, day), "c",
                           region_limit if region_limit is not None else UNLIMITED, fee, DAY_MS,
                           "LimitExceeded.AppDailyLimit", msg.serial_no))
    if msg.region == INTERNATIONAL:
        # Counted when the country has a limit or an alarm threshold to compare with.
        if country and (country.daily_limit is not None or country.alarm_threshold is not None):
            found.append(Check(country_day_key(app.id, msg.iso_code, day), "c",
                               country.daily_limit if country.daily_limit is not None
                               else UNLIMITED, fee, DAY_MS,
                               "LimitExceeded.AppCountryOrRegionDailyLimit", msg.serial_no))
        found.append(Check(account_day_key(account.id, day), "c",
                           account.intl_daily_quota, fee, DAY_MS,
                           "LimitExceeded.AccountInternationalDailyQuota", msg.serial_no))
    return found


def account_day_key(account_id: int, day: str) -> str:
    """The account's international billed items on its local `day` (its daily quota)."""
    return f"smsops:day:account:{account_id}:{day}"


def carry_day_counters(db: Session, limiter: Limiter, account_id: int, old_zone: str,
                       new_zone: str, now: datetime) -> None:
    """The account's time zone changes: today's billed items (its international quota,
    each application's daily limits, each country's) become the new zone's today's,
    so a change of zone is no way around a daily limit (found from outside: a used-up
    quota was whole again). So do the numbers' daily frequency counters, one a number:
    found by a scan (`carry_frequency`, a job run at once)."""
    old_day, new_day = _days(old_zone, new_zone, now)
    if old_day == new_day:
        return
    # Today's alarms too (their once-a-day guards are keyed by the same date): a
    # threshold passed before the change is not announced again after it.
    alarm = alarms.KEY.format
    pairs = [(account_day_key(account_id, old_day), account_day_key(account_id, new_day)),
             (alarm("quota", f"{account_id}:{old_day}"), alarm("quota", f"{account_id}:{new_day}"))]
    for app_id, sdk_app_id in db.execute(select(Application.id, Application.sdk_app_id).where(
            Application.account_id == account_id)):
        for r in (MAINLAND, INTERNATIONAL):
            pairs.append((app_day_key(app_id, r, old_day), app_day_key(app_id, r, new_day)))
            pairs += [(alarm(event, f"{sdk_app_id}:{r}:{old_day}"),
                       alarm(event, f"{sdk_app_id}:{r}:{new_day}"))
                      for event in ("threshold", "limit")]
    for app_id, sdk_app_id, iso in db.execute(
            select(AllowedCountry.app_id, Application.sdk_app_id, AllowedCountry.iso_code)
            .join(Application, Application.id == AllowedCountry.app_id)
            .where(Application.account_id == account_id)):
        pairs.append((country_day_key(app_id, iso, old_day),
                      country_day_key(app_id, iso, new_day)))
        pairs += [(alarm(event, f"{sdk_app_id}:{iso}:{old_day}"),
                   alarm(event, f"{sdk_app_id}:{iso}:{new_day}"))
                  for event in ("country_threshold", "country_limit")]
    limiter.carry(pairs, 2 * DAY_MS)


def carry_frequency(db: Session, limiter: Limiter, account_id: int, old_zone: str,
                    new_zone: str, now: datetime) -> int:
    """Each number's daily frequency count of today, under the new zone's date (see
    `carry_day_counters`); returns how many were carried."""
    old_day, new_day = _days(old_zone, new_zone, now)
    if old_day == new_day:
        return 0
    return sum(limiter.carry_matching(frequency_key("day", app_id, "*", old_day), old_day,
                                      new_day, 2 * DAY_MS)
               for app_id, in db.execute(select(Application.id).where(
                   Application.account_id == account_id)))


def app_day_key(app_id: int, region: str, day: str) -> str:
    return f"smsops:day:app:{app_id}:{region}:{day}"


def country_day_key(app_id: int, iso: str, day: str) -> str:
    return f"smsops:day:country:{app_id}:{iso}:{day}"


UNLIMITED = 2**62  # a counter kept only for an alarm threshold


def _reserve_all(ctx: Ctx, limiter: Limiter, app: AppSnap, account: AccountSnap,
                 messages: list[_Draft], codes: list[str | None],
                 wanted: list[tuple[int, list[Check]]], fees: list[int],
                 countries: dict[str, CountrySnap], day: str, now: datetime) -> None:
    """Every limit of every number in one Redis call, then credit with one query;
    fills `codes` for the numbers refused. Alarms at most once per kind per request."""
    refused = limiter.reserve_many([checks for _i, checks in wanted],
                                   int(now.timestamp() * 1000))
    reserved: list[tuple[int, list[Check]]] = []
    refusals: list[tuple[int, Check]] = []
    for (i, checks), refusal in zip(wanted, refused, strict=True):
        if refusal is None:
            reserved.append((i, checks))
        else:
            codes[i] = refusal.error_code
            refusals.append((i, refusal))
    _after_reserve(ctx, limiter, app, account, messages, codes, reserved, refusals, fees,
                   countries, day, now)


def _after_reserve(ctx: Ctx, limiter: Limiter, app: AppSnap, account: AccountSnap,
                   messages: list[_Draft], codes: list[str | None],
                   reserved: list[tuple[int, list[Check]]], refusals: list[tuple[int, Check]],
                   fees: list[int], countries: dict[str, CountrySnap], day: str,
                   now: datetime) -> int:
    """After the limits: credit for the `reserved` messages in order (the unpaid are
    released and refused), the alarm thresholds they pass, and one alarm per kind of
    refusal. Returns how many of `reserved` were paid for (all, without packages)."""
    paid = len(reserved)
    if reserved:
        region = messages[reserved[0][0]].region
        if region == MAINLAND:
            paid_by = _consume_credit(ctx, limiter, account, [fees[i] for i, _c in reserved])
            for (i, _c), package_id in zip(reserved, paid_by, strict=False):
                messages[i].package_id = package_id
            paid = len(paid_by)
            unpaid = reserved[paid:]
            if unpaid:
                limiter.release([c for _i, checks in unpaid for c in checks])
                for i, _checks_of in unpaid:
                    codes[i] = "FailedOperation.InsufficientBalanceInSmsPackage"
            reserved = reserved[:paid]
        threshold = app.mainland_alarm_threshold if region == MAINLAND \
            else app.intl_alarm_threshold
        if reserved and threshold is not None:
            used = limiter.used(app_day_key(app.id, region, day))
            if used >= threshold:
                _alarm(ctx, limiter, app, "threshold", f"{app.sdk_app_id}:{region}:{day}", 86400,
                       f"{app.name} passed its daily {region} alarm threshold",
                       f"{app.name} ({app.sdk_app_id}) has sent {used:,} billed {region} "
                       f"items today; the alarm threshold is {threshold:,}.",
                       sms=alarm_texts.render("threshold", app=app.sdk_app_id, region=region,
                                              used=used),
                       figures={"value": used, "threshold": threshold, "region": region,
                                "unit": "billed items today"})
        for iso in dict.fromkeys(messages[i].iso_code for i, _checks_of in reserved):
            _country_threshold(ctx, limiter, app, countries.get(iso), region, iso, day)
    _refusal_alarms(ctx, limiter, app, account, [(messages[i], r) for i, r in refusals], day)
    return paid


def _refusal_alarms(ctx: Ctx, limiter: Limiter, app: AppSnap, account: AccountSnap,
                    refusals: list[tuple[_Draft, Check]], day: str) -> None:
    alarmed: set[str] = set()
    frequency_refused = sum(r.error_code.startswith("LimitExceeded.PhoneNumber")
                            for _m, r in refusals)
    for msg, refusal in refusals:
        if refusal.error_code.startswith("LimitExceeded.PhoneNumber") and "f" not in alarmed:
            alarmed.add("f")
            # At most one per application per (UTC) hour, with how many were refused.
            alarms.frequency_hits(ctx, limiter.conn, app,
                                  f"{app.sdk_app_id}:{time.strftime('%Y%m%d%H', time.gmtime())}",
                                  frequency_refused, msg.phone_number,
                                  errors.describe(refusal.error_code).reason)
        elif refusal.error_code == "LimitExceeded.AppDailyLimit" and "l" not in alarmed:
            alarmed.add("l")
            _alarm(ctx, limiter, app, "limit", f"{app.sdk_app_id}:{msg.region}:{day}",
                   86400, f"{app.name} reached its daily {msg.region} limit",
                   f"{app.name} ({app.sdk_app_id}) reached its daily {msg.region} limit of "
                   f"{refusal.limit:,} billed items; sending there is suspended until the end "
                   "of the day.",
                   sms=alarm_texts.render("limit", app=app.sdk_app_id, region=msg.region),
                   figures={"value": refusal.limit, "threshold": refusal.limit,
                            "region": msg.region, "unit": "billed items today"})
        elif refusal.error_code == "LimitExceeded.AppCountryOrRegionDailyLimit" \
                and f"c:{msg.iso_code}" not in alarmed:
            alarmed.add(f"c:{msg.iso_code}")
            _alarm(ctx, limiter, app, "country_limit",
                   f"{app.sdk_app_id}:{msg.iso_code}:{day}", 86400,
                   f"{app.name} reached its daily limit for {msg.iso_code}",
                   f"{app.name} ({app.sdk_app_id}) reached its daily limit of "
                   f"{refusal.limit:,} billed items for {msg.iso_code}; sending there is "
                   "suspended until the end of the day.",
                   sms=alarm_texts.render("country_limit", app=app.sdk_app_id,
                                          country=msg.iso_code),
                   figures={"value": refusal.limit, "threshold": refusal.limit,
                            "country": msg.iso_code, "unit": "billed items today"})
        if "q" not in alarmed and msg.region == INTERNATIONAL and (
                refusal.error_code == "LimitExceeded.AccountInternationalDailyQuota"
                # Refused by a limit checked before the quota, the quota may have run out
                # too: its alarm must not wait for a message that only it refuses.
                or (refusal.error_code.startswith("LimitExceeded.App") and limiter.used(
                    account_day_key(account.id, day)) + max(msg.fee, 1)
                    > account.intl_daily_quota)):
            alarmed.add("q")
            quota = account.intl_daily_quota
            _alarm(ctx, limiter, app, "quota", f"{account.id}:{day}", 86400,
                   "The account reached its daily international quota",
                   f"The account reached its international quota of {quota:,} billed "
                   f"items per day (refused in {app.name}, {app.sdk_app_id}); international "
                   "sending is suspended until the end of the day.",
                   sms=alarm_texts.render("quota"),
                   figures={"value": quota, "threshold": quota, "unit": "billed items today"})


def _country_threshold(ctx: Ctx, limiter: Limiter, app: AppSnap, country: CountrySnap | None,
                       region: str, iso: str, day: str) -> None:
    """A country's own alarm threshold, once per day like the application's."""
    if region != INTERNATIONAL or country is None or country.alarm_threshold is None:
        return
    used = limiter.used(country_day_key(app.id, iso, day))
    if used >= country.alarm_threshold:
        _alarm(ctx, limiter, app, "country_threshold", f"{app.sdk_app_id}:{iso}:{day}", 86400,
               f"{app.name} passed its daily alarm threshold for {iso}",
               f"{app.name} ({app.sdk_app_id}) has sent {used:,} billed items to {iso} today; "
               f"the alarm threshold there is {country.alarm_threshold:,}.",
               sms=alarm_texts.render("country_threshold", app=app.sdk_app_id, country=iso,
                                      used=used),
               figures={"value": used, "threshold": country.alarm_threshold, "country": iso,
                        "unit": "billed items today"})


def _consume_credit(ctx: Ctx, limiter: Limiter, account: AccountSnap,
                    fees: list[int]) -> list[int | None]:
    """Pay for the messages of `fees` billed items each, in order, earliest-expiring
    package first (each message from one package); returns the package that paid for
    each message paid for (the first ones; None for all when the account has no
    package: mainland sending is then not metered). One query reads the packages
    (locked on PostgreSQL); a conditional update per package used, so balances never
    go negative."""
    now = utcnow()
    q = select(CreditPackage).where(CreditPackage.account_id == account.id) \
        .order_by(CreditPackage.expires_at)
    if ctx.db.get_bind().dialect.name == "postgresql":
        q = q.with_for_update()
    packages = ctx.db.scalars(q).all()
    if not packages:
        return [None] * len(fees)
    live = [p for p in packages if p.expires_at > now]
    left = {p.id: p.remaining for p in live}
    take: dict[int, int] = {}
    paid_by: list[int | None] = []
    for fee in fees:
        p = next((p for p in live if left[p.id] >= fee), None)
        if p is None:
            break
        left[p.id] -= fee
        take[p.id] = take.get(p.id, 0) + fee
        paid_by.append(p.id)
    charged: list[tuple[int, int]] = []
    for package_id, amount in take.items():
        done = ctx.db.execute(update(CreditPackage).where(
            CreditPackage.id == package_id, CreditPackage.remaining >= amount)
            .values(remaining=CreditPackage.remaining - amount)
            .execution_options(synchronize_session=False))
        if done.rowcount != 1:  # type: ignore[attr-defined]
            # Taken meanwhile by a concurrent request: give back, charge nothing here.
            for back_id, back in charged:
                ctx.db.execute(update(CreditPackage).where(CreditPackage.id == back_id)
                               .values(remaining=CreditPackage.remaining + back)
                               .execution_options(synchronize_session=False))
            return []
        charged.append((package_id, amount))
    balance = sum(left.values())
    if paid_by and account.package_alarm_threshold is not None and (
        balance <= account.package_alarm_threshold
    ):
        alarms.raise_alarm(ctx, limiter.conn, "package_low", period=f"{account.id}:{now:%Y%m%d}",
                           ttl_s=86400, app=None, subject="Credit balance is low",
                           body=f"{balance:,} mainland billed items are left in your packages.",
                           sms=alarm_texts.render("package", left=max(balance, 0)),
                           figures={"value": max(balance, 0),
                                    "threshold": account.package_alarm_threshold,
                                    "unit": "billed items left"})
    return paid_by


def never_billed(db: Session, message_ids: list[int]) -> list[Check]:
    """Messages that failed before the carrier took them (refused by it at submission,
    or their application disabled meanwhile) were never billed (SPEC.md §7 bills what
    the carrier accepted): their credit comes back here, in the transaction that
    records the refusal, and the limit units their checks reserved (daily limits, the
    account's quota, frequency windows) are returned for the caller to release once
    that transaction has committed (a crash in between keeps the units: never too many
    given back)."""
    from app.models.sending import FAILED
    from app.services.pipeline import among

    if not message_ids:
        return []
    rows = db.execute(select(
        Message.app_id, Message.serial_no, Message.phone_number, Message.region,
        Message.iso_code, Message.content, Message.fee, Message.created_at,
        Message.package_id).where(
        among(db, Message.id, message_ids), Message.status == FAILED)).all()
    snaps: dict[int, tuple[AppSnap, AccountSnap]] = {}
    checks: list[Check] = []
    credit: dict[int, int] = {}  # billed items back, by the package that paid them
    for r in rows:
        if r.app_id not in snaps:
            app = db.get(Application, r.app_id)
            if app is None:
                continue
            snaps[r.app_id] = (AppSnap.of(app),
                               sendconfig.uncached().account(db, app.account_id))
        app_snap, account = snaps[r.app_id]
        freq = frequency_limits(app_snap, account.account_type)
        day, _local = _local_day(account, r.created_at)
        msg = _Draft(serial_no=r.serial_no, phone_number=r.phone_number, content=r.content,
                     region=r.region, iso_code=r.iso_code)
        checks += _checks(app_snap, account, freq, msg, r.fee,
                          r.phone_number in app_snap.allowlist, app_snap.countries.get(
                              r.iso_code), day)
        if r.package_id is not None:
            credit[r.package_id] = credit.get(r.package_id, 0) + r.fee
    for package_id, items in sorted(credit.items()):  # in id order: no lock-order deadlock
        # Never past its size (a package resized or refilled meanwhile).
        back = CreditPackage.remaining + items
        db.execute(update(CreditPackage).where(CreditPackage.id == package_id).values(
            remaining=case((back > CreditPackage.size, CreditPackage.size), else_=back))
            .execution_options(synchronize_session=False))
    return checks


def _alarm(ctx: Ctx, limiter: Limiter, app: AppSnap, event: str, period: str, ttl: int,
           subject: str, body: str, *, sms: str, figures: dict[str, Any]) -> None:
    """Through the alarm service: once per event per period, to every channel.
    `sms`: the catalogue wording (app/sms/alarm_texts.py) texted to contacts."""
    alarms.raise_alarm(ctx, limiter.conn, event, period=period, ttl_s=ttl, app=app,
                       subject=subject, body=body, sms=sms, figures=figures)


def get_message(ctx: Ctx, sdk_app_id: str, serial_no: str) -> Message:
    app = get_app(ctx, sdk_app_id, "DescribeSendSmsRecord")
    msg = ctx.db.scalar(select(Message).where(Message.serial_no == serial_no,
                                              Message.app_id == app.id))
    if msg is None:
        raise NotFound(f"No message {serial_no[:40]} in application {sdk_app_id}.")
    return msg


def as_dict(msg: Message, sdk_app_id: str) -> dict[str, Any]:
    error = errors.describe(msg.error_code) if msg.error_code else None
    return {
        "serial_no": msg.serial_no, "request_id": msg.request_id, "sdk_app_id": sdk_app_id,
        "phone_number": msg.phone_number, "iso_code": msg.iso_code, "status": msg.status,
        "code": msg.error_code or errors.OK, "message": error.reason if error else "",
        "carrier_code": msg.carrier_code, "encoding": msg.encoding,
        "fee": outcomes.billed_items(msg),
        "session_context": msg.session_context,
        "created_at": msg.created_at.isoformat(),
        "submitted_at": msg.submitted_at.isoformat() if msg.submitted_at else None,
        "receipt_at": msg.receipt_at.isoformat() if msg.receipt_at else None,
    }


# --- after acceptance: see app/services/pipeline.py ---------------------------------

def apps_with_callbacks(db: Any, message_ids: list[int]) -> list[int]:
    """The messages whose application has a status callback URL."""
    from app.services.pipeline import among

    return list(db.scalars(select(Message.id).join(Application, Application.id == Message.app_id)
                           .where(among(db, Message.id, message_ids),
                                  Application.status_callback_url.is_not(None))))



# --- the SMS log ------------------------------------------------------------------

LOG_PAGE = 50
LOG_COUNT_CAP = 1_000  # counted this far (further when paging deeper: count_cap)
PERIODS = {"today": 0, "yesterday": 1, "7d": 6, "30d": 29}


@dataclass(frozen=True)
class LogFilter:
    sdk_app_id: str = ""
    phone_number: str = ""
    status: str = ""
    period: str = "7d"
    page: int = 1
    page_size: int = LOG_PAGE  # the API's callers choose theirs (1-100)
    template_id: int | None = None
    signature_id: int | None = None
    iso_code: str = ""  # the destination country, two letters
    region: str = ""  # mainland or international; "": both
    start: str = ""  # period "custom": local dates YYYY-MM-DD, as the statistics take
    end: str = ""


def number_prefixes(typed: str, region: str = "") -> tuple[str, ...]:
    """What the SMS log's number box searches for (numbers are stored E.164): a whole
    number as E.164, or the start of one as typed, with the `+` added. Digits typed
    without `+` that start as a mainland mobile does (1…, at most 11) are searched as
    people write those numbers too, after +86, unless the search is international
    only (found from outside: "1380013806" found none of the +86 138 0013 806x)."""
    typed = "".join(typed.split())
    with contextlib.suppress(numbers.NumberError):
        return (numbers.parse_any(typed),)
    digits = typed.lstrip("+")
    if not (digits.isascii() and digits.isdigit()):
        return (typed[:20],)  # stored as given when it was not a number at all
    found = []
    if typed[0] != "+" and digits[0] == "1" and len(digits) <= 11 and region != INTERNATIONAL:
        found.append("+86" + digits)
    if region != MAINLAND or digits.startswith("86") or not found:
        found.append("+" + digits[:15])  # the last: a search always has a prefix
    return tuple(found)


def number_filter(column: Any, typed: str, region: str = "") -> ColumnElement[bool]:
    """`column` starts with one of the number box's prefixes (number_prefixes)."""
    return or_(*(column.startswith(p, autoescape=True)
                 for p in number_prefixes(typed, region)))


def _log_query(ctx: Ctx, f: LogFilter) -> tuple[Any, dict[int, str]]:
    from app.models.sending import STATUSES
    from app.services.apps import allowed

    if f.region and f.region not in (MAINLAND, INTERNATIONAL):
        raise invalid("region", "Choose mainland or international (or neither: both).")
    if f.status and f.status not in STATUSES:
        raise invalid("status", f"Choose a status: {', '.join(STATUSES)}.")
    visible = allowed(ctx, "DescribeSendSmsRecord")
    if f.sdk_app_id:
        visible = {k: v for k, v in visible.items() if v == f.sdk_app_id}
    account = ctx.db.get(Account, ctx.actor.account_id)
    assert account is not None
    try:  # the statistics' periods, in the account's zone (a custom range too)
        win = periods.window(f.period, utcnow(), account.timezone, f.start, f.end)
    except periods.PeriodError as exc:
        raise invalid("period", str(exc)) from None
    start, end = win.start, win.end
    every = not f.sdk_app_id and len(visible) == ctx.db.scalar(
        select(func.count()).select_from(Application)
        .where(Application.account_id == ctx.actor.account_id))
    # Every application of the account: say so (`account_id`), not as a list of ids,
    # which PostgreSQL would answer by reading the (app_id, created_at) index whole.
    mine = Message.account_id == ctx.actor.account_id if every else \
        Message.app_id.in_(visible)
    q = select(Message).where(mine, Message.created_at >= start, Message.created_at < end)
    if f.phone_number.strip():
        # A prefix: on PostgreSQL ix_message_phone (text_pattern_ops) serves it.
        q = q.where(number_filter(Message.phone_number, f.phone_number, f.region))
    if f.status:
        q = q.where(Message.status == f.status)
    if f.region:
        q = q.where(Message.region == f.region)
    if f.template_id is not None:
        q = q.where(Message.template_id == f.template_id)
    if f.signature_id is not None:
        q = q.where(Message.signature_id == f.signature_id)
    if f.iso_code.strip():
        iso = f.iso_code.strip().upper()
        if len(iso) != 2 or not iso.isascii() or not iso.isalpha():
            raise invalid("iso_code", "Give a two-letter country code, such as US.")
        q = q.where(Message.iso_code == iso)
    return q, visible


def count_cap(f: LogFilter) -> int:
    """How far the log counts: LOG_COUNT_CAP, or just past the page being read."""
    return max(LOG_COUNT_CAP, (max(f.page, 1) + 1) * f.page_size)


def log(ctx: Ctx, f: LogFilter) -> tuple[list[tuple[Message, str]], int]:
    """Messages the actor may read, newest first, with their application's AppID.
    The total is counted up to just past count_cap(f) (the page says "more than")."""
    q, visible = _log_query(ctx, f)
    if not visible:
        return [], 0
    if ctx.db.get_bind().dialect.name == "postgresql":
        # A page reads a few thousand rows at most: starting parallel workers costs
        # more than it saves (tens to hundreds of ms on a busy machine).
        ctx.db.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    if f.phone_number.strip():
        rows, total = _by_number(ctx, f, q)
        return [(m, visible[m.app_id]) for m in rows], total
    # Counted newest first, as the page reads (a walk back that stops once past the
    # cap), never a whole month: with a common filter (a status, one application)
    # counting to 10,000 read some 200,000 rows, to 1,000 about 20,000.
    total = ctx.db.scalar(select(func.count()).select_from(
        q.with_only_columns(Message.id).order_by(Message.id.desc())
        .limit(count_cap(f) + 1).subquery())) or 0
    page = q.limit(f.page_size).offset((max(f.page, 1) - 1) * f.page_size)
    rows = ctx.db.scalars(page.order_by(Message.id.desc())).all()
    return [(m, visible[m.app_id]) for m in rows], total


RECENT_IDS = 20_000  # how far back a number search first looks, walking newest first


def _by_number(ctx: Ctx, f: LogFilter, q: Any) -> tuple[Sequence[Message], int]:
    """A page of a number search and its count (up to just past the cap), from the
    ids of the newest matches. A short prefix (a country code) matches many rows:
    the newest RECENT_IDS rows hold more than the cap, walking the primary key back.
    A longer one may match a few rows, all weeks old (a campaign to a range of
    numbers): PostgreSQL's walk back would pass millions of rows first, so then
    ix_message_phone finds them from the index alone (ordered by `id + 0`, which the
    primary key cannot serve, so the planner does not walk it); only the page's
    rows are read from the table."""
    cap = count_cap(f)
    ids_of = q.with_only_columns(Message.id)
    newest = ctx.db.scalar(select(func.max(Message.id))) or 0
    ids = ctx.db.scalars(ids_of.where(Message.id > newest - RECENT_IDS)
                         .order_by(Message.id.desc()).limit(cap + 1)).all()
    if len(ids) <= cap:  # fewer than that lately: count over the whole period
        ids = ctx.db.scalars(ids_of.order_by((Message.id + 0).desc()).limit(cap + 1)).all()
    first = (max(f.page, 1) - 1) * f.page_size
    wanted = list(ids[first:first + f.page_size])
    rows = ctx.db.scalars(select(Message).where(Message.id.in_(wanted))
                          .order_by(Message.id.desc())).all() if wanted else []
    return rows, len(ids)


EXPORT_MAX = 100_000  # rows per CSV download; narrow the filter for more


def log_export(ctx: Ctx, f: LogFilter) -> Iterator[tuple[Message, str]]:
    """Every message of the filter (up to EXPORT_MAX), newest first, read in pages by
    id so memory stays flat."""
    q, visible = _log_query(ctx, f)  # checked now, not once the download has begun

    def rows() -> Iterator[tuple[Message, str]]:
        if not visible:
            return
        last: int | None = None
        sent = 0
        while sent < EXPORT_MAX:
            page = q if last is None else q.where(Message.id < last)
            found = ctx.db.scalars(page.order_by(Message.id.desc()).limit(1000)).all()
            if not found:
                return
            for m in found:
                yield m, visible[m.app_id]
            sent += len(found)
            last = found[-1].id
    return rows()
