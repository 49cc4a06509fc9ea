"""The management API: what the console does, for programs (SPEC.md §9).

A thin adapter, like app/web: it authenticates the request (the send API's signing
scheme with X-SMS-SecretId and the pair's SecretKey), reads JSON into the arguments
the services take, and writes their results as JSON. Every rule, permission check
and audit entry is in app/services; the request acts as the pair's user.

Conventions, the same on every endpoint:
- errors are {"error": {"code", "message"}} (validation errors add "fields");
- lists take ?page= (from 1) and ?page_size= (1-100, default 20) and answer
  {"items": [...], "page", "page_size", "total"};
- files (task recipients, group imports, country lists) travel in the JSON body as
  {"filename", "data_base64"}, and a file's bad rows come back as task validation
  lists them ({"row", "column", "reason"});
- writes (POST, PUT, DELETE) accept an Idempotency-Key header: the answer is stored
  in the write's own transaction, so a retry (within 24 hours) gets it back instead of
  writing twice. Refused writes store nothing, so their retry runs afresh.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from flask import current_app, request
from redis.exceptions import RedisError
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from app import safejson
from app.api import (
    IDEMPOTENCY_KEY,
    ApiError,
    _body,
    _ctx,
    _request_target,
    bp,
    verify_signed,
)
from app.api.manage_spec import OPERATIONS, Operation
from app.db import utcnow
from app.models import (
    Alarm,
    AlarmContact,
    AllowedCountry,
    ApiKey,
    Application,
    CustomerGroup,
    IdempotentReply,
    Message,
    MuteEntry,
    Qualification,
    SendTask,
    Signature,
    Template,
    Unsubscribe,
    UnsubscribeRemoval,
    User,
)
from app.queue import enqueue_deferred
from app.services import (
    alarms,
    api_keys,
    app_config,
    apps,
    audience,
    content,
    mute,
    replies,
    reviews,
    sending,
    stats,
    tasks,
    unsubscribes,
    values,
)
from app.services.access import Actor
from app.services.app_config import FREQ_RULES
from app.services.context import Ctx
from app.services.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    ServiceError,
    ValidationError,
)
from app.services.uploads import Upload
from app.sms import errors, outcomes, taskfile
from app.sms.text import parts_of

Json = dict[str, Any]
MAX_ID = values.MAX_ID
IDEMPOTENCY_TTL = timedelta(hours=24)  # how long a retry replays the first answer
STATUS = {PermissionDenied: 403, NotFound: 404, Conflict: 409, ValidationError: 400}


# --- authentication ------------------------------------------------------------

def authenticate_user() -> Actor:
    """The user whose SecretId/SecretKey pair signed the request, with their policies."""
    with current_app.extensions["db"].sessions() as s:
        def lookup(secret_id: str) -> tuple[tuple[ApiKey, User], str] | None:
            found = api_keys.credentials(s, secret_id)
            return (found, found[0].secret_key) if found else None

        key, user = verify_signed("X-SMS-SecretId", lookup, "sid:")
        try:
            actor = api_keys.actor_of(s, key, user)
        except PermissionDenied as exc:
            raise ApiError(401, "AuthFailure.Disabled", exc.message) from None
        s.commit()  # the last-used time
    return actor


# --- reading requests ------------------------------------------------------------

def _no_nul(value: Any) -> bool:
    """PostgreSQL text cannot hold NUL; such a value is refused, never a 500."""
    if isinstance(value, str):
        return "\x00" not in value
    if isinstance(value, dict):
        return all(_no_nul(k) and _no_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_no_nul(v) for v in value)
    return True


def _json_body() -> Json:
    raw = _body()
    if not raw:
        return {}
    try:
        body = safejson.loads(raw)
    except safejson.Refused as exc:
        raise ApiError(400, "InvalidParameter", f"The body is not accepted: {exc}.") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "InvalidParameter", "The body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidParameter", "The body must be a JSON object.")
    if not _no_nul(body):
        raise ApiError(400, "InvalidParameter", "Text may not contain NUL characters.")
    return body


class Body:
    """Typed access to the JSON body: a wrong type is a 400 naming the field."""

    def __init__(self, data: Json) -> None:
        self.data = data

    def _bad(self, field: str, what: str) -> ValidationError:
        return ValidationError({field: f"Must be {what}."})

    def text(self, field: str, default: str = "") -> str:
        value = self.data.get(field, default)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._bad(field, "a string")
        return value

    def number(self, field: str, *, required: bool = False) -> int | None:
        value = self.data.get(field)
        if value is None:
            if required:
                raise ValidationError({field: "Required."})
            return None
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_ID:
            raise self._bad(field, f"a whole number up to {MAX_ID}")
        return value

    def flag(self, field: str, *, required: bool = False) -> bool:
        value = self.data.get(field)
        if value is None:
            if required:
                raise ValidationError({field: "Required."})
            return False
        if not isinstance(value, bool):
            raise self._bad(field, "true or false")
        return value

    def texts(self, field: str) -> list[str]:
        value = self.data.get(field) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(field, "a list of strings")
        return value

    def numbers(self, field: str) -> list[int]:
        value = self.data.get(field) or []
        if not isinstance(value, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise self._bad(field, "a list of whole numbers")
        return [v for v in value if 0 < v <= MAX_ID]

    def obj(self, field: str) -> Json:
        value = self.data.get(field) or {}
        if not isinstance(value, dict):
            raise self._bad(field, "an object")
        return value

    def image(self, field: str) -> Upload | None:
        value = self.data.get(field)
        if value is None:
            return None
        if not isinstance(value, dict) or not isinstance(value.get("data_base64"), str):
            raise self._bad(field, 'an object with "filename" and "data_base64"')
        try:
            data = base64.b64decode(value["data_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise self._bad(field, "base64 data") from None
        name = value.get("filename")
        return Upload(name if isinstance(name, str) else "", data)


def _query(name: str) -> str:
    return request.args.get(name, "")


def _page_args() -> tuple[int, int]:
    page, size = _query("page") or "1", _query("page_size") or "20"
    if not (values.digits(page) and 1 <= int(page) <= 1_000_000):
        raise ValidationError({"page": "Must be a whole number from 1."})
    if not (values.digits(size) and 1 <= int(size) <= 100):
        raise ValidationError({"page_size": "Must be a whole number from 1 to 100."})
    return int(page), int(size)


def paged(items: list[Any], to_json: Callable[[Any], Json]) -> Json:
    page, size = _page_args()
    start = (page - 1) * size
    return {"items": [to_json(i) for i in items[start:start + size]], "page": page,
            "page_size": size, "total": len(items)}


# --- writing answers ----------------------------------------------------------------

def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _json_answer(status: int, payload: Any, replayed: bool = False) -> Response:
    resp = current_app.response_class(json.dumps(payload), status=status,
                                      mimetype="application/json")
    if replayed:
        resp.headers["Idempotent-Replayed"] = "true"
    return resp


class WritesKept(ValidationError):
    """Refused, but what the service wrote stands (a wrong confirmation code counts):
    committed, with no answer stored for an Idempotency-Key."""


class RowErrors(ValidationError):
    """A file with bad rows: how many, and the first ones as task validation lists them."""

    def __init__(self, errors: dict[str, str], count: int,
                 rows: list[taskfile.RowError]) -> None:
        super().__init__(errors)
        self.count, self.rows = count, rows


def _row_errors(rows: list[taskfile.RowError]) -> list[Json]:
    return [{"row": e.row, "column": e.column, "reason": e.reason} for e in rows]


def service_error(exc: ServiceError) -> Response:
    status = next((s for cls, s in STATUS.items() if isinstance(exc, cls)), 400)
    error: Json = {"code": exc.code, "message": exc.message}
    if isinstance(exc, ValidationError):
        error["fields"] = exc.errors
    if isinstance(exc, RowErrors):
        error["errors"], error["first_errors"] = exc.count, _row_errors(exc.rows)
    return _json_answer(status, {"error": error})


# --- the wrapper every endpoint goes through ------------------------------------------

View = Callable[..., Any]


def _fingerprint() -> str:
    return hashlib.sha256(request.method.encode() + b"\n" + _request_target(request.environ)
                          + b"\n" + _body()).hexdigest()


def _replay(row: IdempotentReply, fingerprint: str) -> Response:
    if row.fingerprint != fingerprint:
        return _json_answer(422, {"error": {
            "code": "IdempotencyKeyReused",
            "message": "This Idempotency-Key was used with a different request."}})
    return _json_answer(row.status, json.loads(row.body), replayed=True)


def _run(operation: Operation, view: View, kwargs: dict[str, Any]) -> Response:
    actor = authenticate_user()
    for _name, value in kwargs.items():
        if isinstance(value, int) and value > MAX_ID:
            raise NotFound("No such object.")
        if isinstance(value, str) and any(ord(c) < 32 for c in value):
            raise NotFound("No such object.")
    if any("\x00" in v for v in request.args.values()):
        raise ValidationError({"": "Query values may not contain NUL characters."})
    ctx = _ctx(actor)
    write = request.method not in ("GET", "HEAD")  # Flask answers HEAD with the GET view
    args = [Body(_json_body())] if write else []
    key = request.headers.get("Idempotency-Key") if write else None
    row = None
    if key is not None:
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise ApiError(400, "InvalidParameter.IdempotencyKey",
                           "Idempotency-Key must be 1 to 128 printable ASCII characters.")
        fingerprint = _fingerprint()
        ctx.db.execute(delete(IdempotentReply).where(  # kept a day, then forgotten
            IdempotentReply.user_id == actor.user_id,
            IdempotentReply.created_at < utcnow() - IDEMPOTENCY_TTL))
        found = ctx.db.scalar(select(IdempotentReply).where(
            IdempotentReply.user_id == actor.user_id, IdempotentReply.key == key))
        if found is not None:
            return _replay(found, fingerprint)
        # Claimed in the write's own transaction: a concurrent retry waits on the
        # unique key until this commits (then replays) or rolls back (then runs).
        row = IdempotentReply(user_id=actor.user_id, key=key, fingerprint=fingerprint)
        ctx.db.add(row)
        try:
            ctx.db.flush()
        except IntegrityError:
            ctx.db.rollback()
            found = ctx.db.scalar(select(IdempotentReply).where(
                IdempotentReply.user_id == actor.user_id, IdempotentReply.key == key))
            if found is None:  # the other request failed meanwhile: ask again
                raise ApiError(409, "IdempotencyInProgress", "A request with this "
                               "Idempotency-Key was in progress; retry it.") from None
            return _replay(found, fingerprint)
    status = operation.status
    try:
        result = view(ctx, *args, **kwargs)
        if row is not None:
            row.status, row.body = status, json.dumps(result)
        ctx.db.commit()
    except WritesKept as exc:
        if row is not None:
            ctx.db.delete(row)
        ctx.db.commit()
        return service_error(exc)
    except ServiceError as exc:
        ctx.db.rollback()  # nothing written, nothing stored: a retry runs afresh
        return service_error(exc)
    except IntegrityError:  # a concurrent request wrote the same unique thing first
        ctx.db.rollback()
        return service_error(Conflict("Another request changed the same thing at the same "
                                      "time; read it again, then retry if still needed."))
    if ctx.deferred:
        try:
            enqueue_deferred(current_app.extensions["redis"], ctx.deferred)
        except RedisError as exc:  # committed: the sweeper re-drives these
            current_app.logger.warning("%s: wake-up not enqueued (%s)", request.path, exc)
    return _json_answer(status, result)


def route(operation_id: str) -> Callable[[View], View]:
    operation = OPERATIONS[operation_id]

    def register(view: View) -> View:
        def endpoint(**kwargs: Any) -> Response:
            try:
                return _run(operation, view, kwargs)
            except ServiceError as exc:
                return service_error(exc)

        bp.add_url_rule(operation.flask_rule, f"m_{operation_id}", endpoint,
                        methods=[operation.method])
        return view

    return register


# --- JSON forms of the objects ------------------------------------------------------------

def app_json(a: Application) -> Json:
    return {"sdk_app_id": a.sdk_app_id, "name": a.name, "overview": a.overview,
            "tags": list(a.tags), "enabled": a.enabled, "created_at": _when(a.created_at)}


def _limits(a: Application) -> Json:
    return {"mainland": {"alarm_threshold": a.mainland_alarm_threshold,
                         "daily_limit": a.mainland_daily_limit},
            "international": {"alarm_threshold": a.intl_alarm_threshold,
                              "daily_limit": a.intl_daily_limit}}


def _country(c: AllowedCountry) -> Json:
    return {"iso_code": c.iso_code, "alarm_threshold": c.alarm_threshold,
            "daily_limit": c.daily_limit}


def _frequency(a: Application) -> Json:
    return {r: {"enabled": getattr(a, f"freq_{r}_enabled"),
                "limit": getattr(a, f"freq_{r}_limit")} for r in FREQ_RULES}


def _contact(c: AlarmContact) -> Json:
    return {"id": c.id, "name": c.name, "mobile": c.mobile, "email": c.email,
            "slack_user_id": c.slack_user_id, "events": list(c.events),
            "mobile_confirmed": c.mobile_confirmed_at is not None}


def _reviewed(obj: Any) -> Json:
    return {"id": obj.id, "status": obj.status, "revision": obj.revision,
            "reject_reason": obj.reject_reason, "submitted_by": obj.submitted_by,
            "submitted_at": _when(obj.submitted_at), "decided_by": obj.decided_by,
            "decided_at": _when(obj.decided_at)}


def qualification_json(q: Qualification) -> Json:
    return {**_reviewed(q), **{f: getattr(q, f) for f in content.QUALIFICATION_FIELDS}}


def signature_json(s: Signature) -> Json:
    return {**_reviewed(s), "region": s.region, "purpose": s.purpose,
            "qualification_id": s.qualification_id, "sign_type": s.sign_type,
            "content": s.content, "notes": s.notes, "usable": s.usable,
            "has_proof_image": bool(s.proof_image),
            "has_authorization_image": bool(s.authorization_image)}


def template_json(t: Template) -> Json:
    return {**_reviewed(t), "region": t.region, "name": t.name, "sms_type": t.sms_type,
            "content": t.content, "notes": t.notes, "allow_url_params": t.allow_url_params,
            "carrier_template_id": t.carrier_template_id}


def _mute(e: MuteEntry) -> Json:
    return {"id": e.id, "phone_number": e.phone_number, "signature_id": e.signature_id,
            "sms_type": e.sms_type, "created_at": _when(e.created_at)}


def _unsubscribe(u: Unsubscribe) -> Json:
    return {"id": u.id, "phone_number": u.phone_number, "signature_id": u.signature_id,
            "sms_type": u.sms_type, "source": u.source, "created_at": _when(u.created_at)}


def _removal(r: UnsubscribeRemoval) -> Json:
    return {**_reviewed(r), "phone_number": r.phone_number, "signature_id": r.signature_id,
            "sms_type": r.sms_type, "reason": r.reason}


# --- applications -------------------------------------------------------------------------

@route("DescribeAppList")
def _list_apps(ctx: Ctx) -> Json:
    return paged(apps.list_apps(ctx), app_json)


@route("DescribeAppInfo")
def _get_app(ctx: Ctx, sdk_app_id: str) -> Json:
    return app_json(apps.get_app(ctx, sdk_app_id))


@route("ModifyAppInfo")
def _modify_app(ctx: Ctx, b: Body, sdk_app_id: str) -> Json:
    return app_json(apps.update_info(ctx, sdk_app_id, name=b.text("name"),
                                     overview=b.text("overview"), tags=b.texts("tags")))


@route("ModifyAppStatus")
def _app_status(ctx: Ctx, b: Body, sdk_app_id: str) -> Json:
    return app_json(apps.set_enabled(ctx, sdk_app_id, b.flag("enabled", required=True)))


@route("DescribeWarningThreshold")
def _thresholds(ctx: Ctx, sdk_app_id: str) -> Json:
    return _limits(apps.get_app(ctx, sdk_app_id, "DescribeWarningThreshold"))


@route("ModifyWarningThreshold")
def _set_thresholds(ctx: Ctx, b: Body, sdk_app_id: str, region: str) -> Json:
    return _limits(app_config.set_thresholds(
        ctx, sdk_app_id, region, alarm_threshold=b.number("alarm_threshold"),
        daily_limit=b.number("daily_limit")))


@route("DescribeCountryConfig")
def _countries(ctx: Ctx, sdk_app_id: str) -> Json:
    app = apps.get_app(ctx, sdk_app_id, "DescribeCountryConfig")
    return paged(sorted(app.countries, key=lambda c: c.iso_code), _country)


@route("ModifyCountryConfig")
def _set_country(ctx: Ctx, b: Body, sdk_app_id: str, iso_code: str) -> Json:
    app = app_config.set_country(ctx, sdk_app_id, iso_code=iso_code,
                                 alarm_threshold=b.number("alarm_threshold"),
                                 daily_limit=b.number("daily_limit"))
    return next(_country(c) for c in app.countries if c.iso_code == iso_code.upper())


@route("ModifyCountryConfig:import")
def _import_countries(ctx: Ctx, b: Body, sdk_app_id: str) -> Json:
    return {"imported": app_config.import_countries(ctx, sdk_app_id, _file(b).data)}


@route("ModifyCountryConfig:remove")
def _remove_country(ctx: Ctx, _b: Body, sdk_app_id: str, iso_code: str) -> Json:
    app_config.remove_country(ctx, sdk_app_id, iso_code)
    return {"removed": iso_code.upper()}


@route("DescribeFreqRule")
def _frequency_rules(ctx: Ctx, sdk_app_id: str) -> Json:
    return _frequency(apps.get_app(ctx, sdk_app_id, "DescribeFreqRule"))


@route("ModifyFreqRule")
def _set_frequency(ctx: Ctx, b: Body, sdk_app_id: str) -> Json:
    rules: dict[str, tuple[bool | str, Any]] = {}
    for rule in FREQ_RULES:
        one = Body(b.obj(rule))
        rules[rule] = (one.flag("enabled"), one.number("limit", required=True))
    return _frequency(app_config.set_frequency(ctx, sdk_app_id, rules))


@route("DescribeFrequencyWhitelist")
def _allowlist(ctx: Ctx, sdk_app_id: str) -> Json:
    app = apps.get_app(ctx, sdk_app_id, "DescribeFrequencyWhitelist")
    return paged(sorted(app.allowlist, key=lambda e: e.phone_number),
                 lambda e: {"phone_number": e.phone_number, "created_at": _when(e.created_at)})


@route("AddFrequencyWhiteList")
def _add_allowlist(ctx: Ctx, b: Body, sdk_app_id: str) -> Json:
    return {"added": app_config.add_allowlist(ctx, sdk_app_id,
                                              "\n".join(b.texts("phone_numbers")))}


@route("DeleteFrequencyWhiteList")
def _remove_allowlist(ctx: Ctx, b: Body, sdk_app_id: str) -> Json:
    return {"removed": app_config.remove_allowlist(ctx, sdk_app_id, b.texts("phone_numbers"))}


@route("DescribeCallbackInfo")
def _callback(ctx: Ctx, sdk_app_id: str) -> Json:
    app = apps.get_app(ctx, sdk_app_id, "DescribeCallbackInfo")
    return {"status_callback_url": app.status_callback_url}


@route("ModifyCallbackInfo")
def _set_callback(ctx: Ctx, b: Body, sdk_app_id: str) -> Json:
    app = app_config.set_callback(ctx, sdk_app_id, b.text("status_callback_url"))
    return {"status_callback_url": app.status_callback_url}


@route("DescribeNewsReceiver")
def _contacts(ctx: Ctx, sdk_app_id: str) -> Json:
    app = apps.get_app(ctx, sdk_app_id, "DescribeNewsReceiver")
    return paged(sorted(app.contacts, key=lambda c: c.id), _contact)


def _contact_args(b: Body) -> Json:
    return {"name": b.text("name"), "mobile": b.text("mobile"), "email": b.text("email"),
            "slack_user_id": b.text("slack_user_id"), "events": b.texts("events")}


@route("AddNewsReceiver")
def _add_contact(ctx: Ctx, b: Body, sdk_app_id: str) -> Json:
    return _contact(app_config.add_contact(ctx, sdk_app_id, **_contact_args(b)))


@route("ModifyNewsReceiver")
def _modify_contact(ctx: Ctx, b: Body, sdk_app_id: str, contact_id: int) -> Json:
    return _contact(app_config.update_contact(ctx, sdk_app_id, contact_id,
                                              **_contact_args(b)))


@route("ModifyNewsReceiver:send_code")
def _send_code(ctx: Ctx, _b: Body, sdk_app_id: str, contact_id: int) -> Json:
    return _contact(app_config.send_mobile_code(ctx, sdk_app_id, contact_id))


@route("ModifyNewsReceiver:confirm")
def _confirm_mobile(ctx: Ctx, b: Body, sdk_app_id: str, contact_id: int) -> Json:
    problem = app_config.confirm_mobile(ctx, sdk_app_id, contact_id, b.text("code"))
    if problem:
        raise WritesKept({"code": problem})  # a wrong try counts
    app = apps.get_app(ctx, sdk_app_id, "ModifyNewsReceiver")
    return _contact(next(c for c in app.contacts if c.id == contact_id))


@route("DeleteNewsReceiver")
def _delete_contact(ctx: Ctx, _b: Body, sdk_app_id: str, contact_id: int) -> Json:
    app_config.delete_contact(ctx, sdk_app_id, contact_id)
    return {"deleted": contact_id}


# --- content ------------------------------------------------------------------------------------

def _fields(b: Body, names: tuple[str, ...]) -> Json:
    return {n: b.text(n) for n in names if n in b.data}


@route("DescribeQualification")
def _qualifications(ctx: Ctx) -> Json:
    return paged(content.list_qualifications(ctx), qualification_json)


@route("DescribeQualification:one")
def _qualification(ctx: Ctx, qualification_id: int) -> Json:
    return qualification_json(content.get_qualification(ctx, qualification_id))


@route("AddQualification")
def _add_qualification(ctx: Ctx, b: Body) -> Json:
    return qualification_json(content.create_qualification(
        ctx, _fields(b, content.QUALIFICATION_FIELDS)))


@route("ModifyQualification")
def _modify_qualification(ctx: Ctx, b: Body, qualification_id: int) -> Json:
    return qualification_json(content.update_qualification(
        ctx, qualification_id, _fields(b, content.QUALIFICATION_FIELDS)))


@route("DeleteQualification")
def _delete_qualification(ctx: Ctx, _b: Body, qualification_id: int) -> Json:
    unusable = content.delete_qualifications(ctx, [qualification_id])
    return {"deleted": qualification_id, "signatures_made_unusable": [s.id for s in unusable]}


@route("DescribeSmsSignList")
def _signatures(ctx: Ctx) -> Json:
    return paged(content.list_signatures(ctx, _query("region") or "mainland"), signature_json)


@route("DescribeSmsSignList:one")
def _signature(ctx: Ctx, signature_id: int) -> Json:
    return signature_json(content.get_signature(ctx, signature_id))


def _signature_data(b: Body) -> Json:
    data = _fields(b, ("purpose", "sign_type", "content", "notes"))
    qid = b.number("qualification_id")
    data["qualification_id"] = "" if qid is None else str(qid)
    return data


@route("AddSmsSign")
def _add_signature(ctx: Ctx, b: Body) -> Json:
    return signature_json(content.create_signature(
        ctx, b.text("region"), _signature_data(b), proof=b.image("proof_image"),
        authorization=b.image("authorization_image")))


@route("ModifySmsSign")
def _modify_signature(ctx: Ctx, b: Body, signature_id: int) -> Json:
    return signature_json(content.update_signature(
        ctx, signature_id, _signature_data(b), proof=b.image("proof_image"),
        authorization=b.image("authorization_image")))


@route("DeleteSmsSign")
def _delete_signature(ctx: Ctx, _b: Body, signature_id: int) -> Json:
    content.delete_signature(ctx, signature_id)
    return {"deleted": signature_id}


@route("DescribeSmsTemplateList")
def _templates(ctx: Ctx) -> Json:
    return paged(content.list_templates(ctx, _query("region") or "mainland"), template_json)


@route("DescribeSmsTemplateList:one")
def _template(ctx: Ctx, template_id: int) -> Json:
    return template_json(content.get_template(ctx, template_id))


def _template_data(b: Body) -> Json:
    data: Json = _fields(b, ("name", "sms_type", "content", "notes"))
    data["allow_url_params"] = b.flag("allow_url_params")
    return data


@route("AddSmsTemplate")
def _add_template(ctx: Ctx, b: Body) -> Json:
    return template_json(content.create_template(ctx, b.text("region"), _template_data(b)))


@route("ModifySmsTemplate")
def _modify_template(ctx: Ctx, b: Body, template_id: int) -> Json:
    return template_json(content.update_template(ctx, template_id, _template_data(b)))


@route("ModifySmsTemplate:carrier")
def _carrier_template_id(ctx: Ctx, b: Body, template_id: int) -> Json:
    if "carrier_template_id" not in b.data:  # a forgotten field must not clear it
        raise ValidationError({"carrier_template_id": "Required; null clears it."})
    return template_json(content.set_carrier_template_id(ctx, template_id,
                                                         b.text("carrier_template_id")))


@route("DeleteSmsTemplate")
def _delete_template(ctx: Ctx, _b: Body, template_id: int) -> Json:
    content.delete_template(ctx, template_id)
    return {"deleted": template_id}


# --- reviews --------------------------------------------------------------------------------

def _review_item(item: reviews.ReviewItem) -> Json:
    return {"kind": item.kind, **_reviewed(item.obj), "title": item.title,
            "changes": [{"field": f, "before": json.loads(json.dumps(a, default=str)),
                         "now": json.loads(json.dumps(n, default=str))}
                        for f, a, n in item.changes],
            "facts": item.facts}


@route("ReviewContent:queue")
def _queue(ctx: Ctx) -> Json:
    return paged(reviews.queue(ctx), _review_item)


@route("ReviewContent")
def _decide(ctx: Ctx, b: Body, kind: str, object_id: int) -> Json:
    decision, revision = b.text("decision"), b.number("revision", required=True)
    assert revision is not None
    if decision == "approve":
        obj = reviews.approve(ctx, kind, object_id, revision=revision)
    elif decision == "reject":
        obj = reviews.reject(ctx, kind, object_id, b.text("reason"), revision=revision)
    else:
        raise ValidationError({"decision": 'Must be "approve" or "reject".'})
    return {"kind": kind, **_reviewed(obj)}


# --- mute list, unsubscribes ---------------------------------------------------------------

@route("DescribeBlackList")
def _mute_list(ctx: Ctx) -> Json:
    page, size = _page_args()
    found, total = mute.entries_page(ctx, _query("phone_number"), page, size)
    return _listing(found, total, _mute)


@route("AddBlackList")
def _add_mute(ctx: Ctx, b: Body) -> Json:
    sig = b.number("signature_id")
    return _mute(mute.add(ctx, phone_number=b.text("phone_number"),
                          signature_id="" if sig is None else sig,
                          sms_type=b.text("sms_type"), consent=b.flag("consent")))


@route("DeleteBlackList")
def _remove_mute(ctx: Ctx, b: Body) -> Json:
    return {"removed": mute.remove(ctx, b.numbers("ids"))}


@route("DescribeUnsubscribe")
def _unsubscribes(ctx: Ctx) -> Json:
    found = unsubscribes.query(ctx, phone_number=_query("phone_number"),
                               sdk_app_id=_query("sdk_app_id"),
                               signature_id=_query("signature_id"))
    return paged(found, _unsubscribe)


@route("DescribeUnsubscribe:removals")
def _removals(ctx: Ctx) -> Json:
    page, size = _page_args()
    found, total = unsubscribes.requests_page(ctx, page, size)
    return _listing(found, total, _removal)


@route("ModifyUnsubscribe")
def _request_removal(ctx: Ctx, b: Body) -> Json:
    sig = b.number("signature_id")
    return _removal(unsubscribes.request_removal(
        ctx, phone_number=b.text("phone_number"), signature_id="" if sig is None else sig,
        sms_type=b.text("sms_type"), reason=b.text("reason")))


# --- customer groups -------------------------------------------------------------------

def _group(g: CustomerGroup) -> Json:
    return {"id": g.id, "name": g.name, "sms_type": g.sms_type, "numbers": g.member_count,
            "created_by": g.created_by, "created_at": _when(g.created_at)}


def _listing(items: list[Any], total: int, to_json: Callable[[Any], Json]) -> Json:
    page, size = _page_args()
    return {"items": [to_json(i) for i in items], "page": page, "page_size": size,
            "total": total}


@route("DescribeCustomerGroup")
def _groups(ctx: Ctx) -> Json:
    page, size = _page_args()
    found, total = audience.groups(ctx, _query("name"), page, size)
    return _listing(found, total, _group)


@route("DescribeCustomerGroup:one")
def _one_group(ctx: Ctx, group_id: int) -> Json:
    return _group(audience.get_group(ctx, group_id))


@route("DescribeCustomerGroup:numbers")
def _group_numbers(ctx: Ctx, group_id: int) -> Json:
    page, size = _page_args()
    _g, found, total = audience.members(ctx, group_id, _query("prefix"), page, size)
    return _listing(found, total, lambda m: {
        "id": m.id, "phone_number": m.phone_number, "muted": m.muted,
        "unsubscribed": m.unsubscribed, "created_at": _when(m.created_at)})


@route("CreateCustomerGroup")
def _create_group(ctx: Ctx, b: Body) -> Json:
    return _group(audience.create_group(ctx, name=b.text("name"), sms_type=b.text("sms_type")))


@route("ModifyCustomerGroup")
def _rename_group(ctx: Ctx, b: Body, group_id: int) -> Json:
    return _group(audience.rename_group(ctx, group_id, b.text("name")))


@route("DeleteCustomerGroup")
def _delete_group(ctx: Ctx, _b: Body, group_id: int) -> Json:
    audience.delete_group(ctx, group_id, confirm_name=None)
    return {"deleted": group_id}


@route("AddCustomerNumbers")
def _add_numbers(ctx: Ctx, b: Body, group_id: int) -> Json:
    numbers = b.texts("phone_numbers")
    if any("\n" in n or "\r" in n for n in numbers):
        raise ValidationError({"phone_numbers": "One number per item, without line breaks."})
    try:
        result = audience.add_typed(ctx, text="\n".join(numbers), group_id=group_id)
    except audience.BadLines as exc:
        raise ValidationError({f"phone_numbers[{bad.line - 1}]": bad.reason
                               for bad in exc.lines}) from None
    return {"group": _group(result.group), "added": result.added, "merged": result.merged}


@route("AddCustomerNumbers:import")
def _import_numbers(ctx: Ctx, b: Body) -> Json:
    upload = _file(b)
    try:
        result = audience.import_file(
            ctx, io.BytesIO(upload.data), upload.filename, group_id=b.number("group_id"),
            new_name=b.text("name"), sms_type=b.text("sms_type"), max_bytes=_max_file_bytes())
    except audience.BadLines as exc:  # a file's rows: LineError.text holds the column
        raise RowErrors(exc.errors, exc.count, [
            taskfile.RowError(bad.line, bad.text, bad.reason) for bad in exc.lines]) from None
    return {"group": _group(result.group), "added": result.added, "merged": result.merged}


@route("DeleteCustomerNumbers")
def _remove_numbers(ctx: Ctx, b: Body, group_id: int) -> Json:
    return {"removed": audience.remove_numbers(ctx, group_id, b.numbers("ids"))}


# --- bulk send tasks -----------------------------------------------------------------

def _task(t: SendTask, sdk_app_id: str) -> Json:
    return {"id": t.id, "sdk_app_id": sdk_app_id, "name": t.name, "region": t.region,
            "status": t.status, "template_id": t.template_id, "signature_id": t.signature_id,
            "file_name": t.file_name, "send_at": _when(t.send_at), "rate_limit": t.rate_limit,
            "total_rows": t.total_rows, "valid_rows": t.valid_rows, "error_rows": t.error_rows,
            "billed_items": t.billed_items, "failure_reason": t.failure_reason,
            "created_at": _when(t.created_at), "confirmed_at": _when(t.confirmed_at),
            "started_at": _when(t.started_at), "finished_at": _when(t.finished_at)}


def _task_of(ctx: Ctx, task: SendTask) -> Json:
    """A task the service just changed (its check passed: no second policy check, which
    a caller allowed only to act, not to read, would fail after the write)."""
    app = ctx.db.get(Application, task.app_id)
    assert app is not None
    return _task(task, app.sdk_app_id)


def _file(b: Body) -> Upload:
    value = b.obj("file")
    if not value:
        raise ValidationError({"file": "Required: an object with filename and data_base64."})
    upload = Body({"file": value}).image("file")  # the same base64 reading as images
    assert upload is not None
    if not upload.filename.strip():
        raise ValidationError({"file": "Give the file's name (.csv or .xlsx)."})
    return upload


def _draft(b: Body) -> tasks.Draft:
    send_at = None
    if b.text("send_at"):
        try:
            send_at = datetime.fromisoformat(b.text("send_at"))
        except ValueError:
            raise ValidationError({"send_at": "Give an ISO 8601 time with its zone, e.g. "
                                              "2026-12-01T09:00:00+08:00."}) from None
    template_id = b.number("template_id", required=True)
    assert template_id is not None
    return tasks.Draft(b.text("sdk_app_id")[:10], template_id, name=b.text("name")[:200],
                       sign_name=b.text("sign_name") or None, send_at=send_at,
                       rate_limit=b.number("rate_limit"))


def _max_file_bytes() -> int:
    return int(current_app.config.get("TASK_MAX_UPLOAD_MB", 30)) * 1024 * 1024


def _validation(summary: tasks.Summary) -> Json:
    return {**summary.as_dict(), "first_errors": _row_errors(summary.first_errors)}


@route("DescribeSendTasks")
def _tasks(ctx: Ctx) -> Json:
    page, size = _page_args()
    found, total = tasks.list_tasks(ctx, _query("region") or None, page=page, limit=size)
    return _listing(found, total, lambda pair: _task(*pair))


@route("DescribeSendTasks:one")
def _one_task(ctx: Ctx, task_id: int) -> Json:
    task, app = tasks.get_task(ctx, task_id)
    figures = tasks.progress(ctx, task)
    return {"task": _task(task, app.sdk_app_id),
            "progress": {**figures.as_dict(), "rejected": figures.rejected}}


@route("DescribeSendTasks:records")
def _task_records(ctx: Ctx, task_id: int) -> Json:
    page, size = _page_args()
    _t, found, total = tasks.records(ctx, task_id, status=_query("status")[:20],
                                     number=_query("phone_number")[:32], page=page,
                                     limit=size)
    return _listing(found, total, lambda r: {
        "row_no": r.row_no, "phone_number": r.phone_number, "status": r.status,
        "content": r.content, "billed_items": r.fee, "error_code": r.error_code,
        "carrier_code": r.carrier_code, "submitted_at": _when(r.submitted_at),
        "receipt_at": _when(r.receipt_at)})


@route("DescribeSendTasks:receipts")
def _task_receipts(ctx: Ctx, task_id: int) -> Json:
    found = tasks.receipt_analysis(ctx, task_id)
    total = sum(n for _c, n in found.reasons)
    return {"with_receipt": found.with_receipt, "without_receipt": found.without_receipt,
            "delivered": found.delivered, "failed": found.failed,
            "receipt_rate": found.receipt_rate, "delivery_rate": found.delivery_rate,
            "reasons": [{"code": code, "reason": errors.describe(code).reason, "count": n,
                         "share": n / total} for code, n in found.reasons]}


@route("CreateSendTask:validate")
def _validate_task(ctx: Ctx, b: Body) -> Json:
    upload = _file(b)
    return _validation(tasks.validate_file(ctx, _draft(b), io.BytesIO(upload.data),
                                           upload.filename, max_bytes=_max_file_bytes()))


@route("CreateSendTask")
def _create_task(ctx: Ctx, b: Body) -> Json:
    upload = _file(b)
    draft = _draft(b)
    task, summary = tasks.create_task(ctx, draft, io.BytesIO(upload.data), upload.filename,
                                      max_bytes=_max_file_bytes())
    return {"task": _task_of(ctx, task), "validation": _validation(summary)}


@route("CreateSendTask:confirm")
def _confirm_task(ctx: Ctx, b: Body, task_id: int) -> Json:
    return _task_of(ctx, tasks.confirm(ctx, task_id,
                                       acknowledged=b.flag("acknowledged", required=True)))


@route("DescribeSendTasks:errors")
def _task_errors(ctx: Ctx, task_id: int) -> Json:
    page, size = _page_args()
    found, total = tasks.row_errors_page(ctx, task_id, page, size)
    return _listing(found, total, lambda e: {"row": e.row_no, "column": e.column,
                                             "reason": e.reason})


@route("DescribeSmsTemplateList:standard_file")
def _standard_file(ctx: Ctx, template_id: int) -> Json:
    _template, columns, example = tasks.standard_columns(ctx, template_id)
    return {"columns": columns, "example": example}


@route("CreateSendTask:group")
def _send_to_group(ctx: Ctx, b: Body, group_id: int) -> Json:
    params = b.texts("params") if b.data.get("params") is not None else None
    task, summary = audience.send_to_group(ctx, _draft(b), group_id, params=params)
    return {"task": _task_of(ctx, task), "validation": _validation(summary)}


@route("ModifyTaskStatusStop")
def _stop_task(ctx: Ctx, _b: Body, task_id: int) -> Json:
    return _task_of(ctx, tasks.stop(ctx, task_id))


@route("CancelSendSMSTask")
def _cancel_task(ctx: Ctx, _b: Body, task_id: int) -> Json:
    return _task_of(ctx, tasks.cancel(ctx, task_id))


# --- statistics, the SMS log ---------------------------------------------------------

def _whole(name: str) -> int | None:
    raw = _query(name).strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9):
        raise ValidationError({name: "Must be a whole number (an id)."})
    return int(raw)


def _stats_filter() -> stats.StatsFilter:
    return stats.StatsFilter(
        # No default region: figures of one region given for both would mislead.
        region=_query("region")[:16], period=_query("period")[:16] or "today",
        start=_query("start")[:10], end=_query("end")[:10],
        sdk_app_id=_query("sdk_app_id")[:10], signature_id=_whole("signature_id"),
        template_id=_whole("template_id"), iso_code=_query("iso_code")[:2])


def _figures(f: stats.Figures) -> Json:
    return {"requests": f.requests, "success": f.success, "billed": f.billed,
            "success_rate": f.success_rate}


def _shares(found: list[stats.Share]) -> list[Json]:
    return [{"code": s.code, "reason": s.reason, "count": s.count, "share": s.share}
            for s in found]


@route("DescribeStatistics")
def _stats_overview(ctx: Ctx) -> Json:
    found = stats.overview(ctx, _stats_filter())
    return {"start": found.window.first.isoformat(), "end": found.window.last.isoformat(),
            "hourly": found.window.hourly, "total": _figures(found.total),
            "trend": [{"at": at.isoformat(), **_figures(f)} for at, f in found.trend]}


@route("DescribeStatistics:failures")
def _stats_failures(ctx: Ctx) -> Json:
    return paged(_shares(stats.failures(ctx, _stats_filter())), dict)


@route("DescribeStatistics:receipts")
def _stats_receipts(ctx: Ctx) -> Json:
    found = stats.receipts(ctx, _stats_filter())
    return {"with_receipt": found.with_receipt, "without_receipt": found.without_receipt,
            "delivered": found.delivered, "failed": found.failed,
            "receipt_rate": found.receipt_rate, "delivery_rate": found.delivery_rate,
            "reasons": _shares(found.reasons)}


@route("DescribeStatistics:countries")
def _stats_countries(ctx: Ctx) -> Json:
    return paged(stats.countries(ctx, _stats_filter()), lambda r: {
        "iso_code": r.iso_code, "calling_code": r.calling_code, **_figures(r.figures),
        "share": r.share, "unit_price": r.unit_price})


@route("DescribeStatistics:verification")
def _stats_verification(ctx: Ctx) -> Json:
    page, size = _page_args()
    found, total = stats.verification_page(ctx, _stats_filter(), page, size)
    return _listing(found, total, lambda h: {
        "sdk_app_id": h.sdk_app_id, "app_name": h.app_name, "hour": h.hour.isoformat(),
        "requests": h.requests, "success": h.success, "success_rate": h.success_rate,
        "yesterday": h.yesterday, "growth": h.growth})


@route("DescribeSendSmsRecord")
def _sms_log(ctx: Ctx) -> Json:
    page, size = _page_args()
    found, total = sending.log(ctx, sending.LogFilter(
        sdk_app_id=_query("sdk_app_id")[:10], phone_number=_query("phone_number")[:32],
        status=_query("status")[:20], period=_query("period")[:20] or "7d", page=page,
        page_size=size, region=_query("region")[:16], start=_query("start")[:10],
        end=_query("end")[:10], template_id=_whole("template_id"),
        signature_id=_whole("signature_id"), iso_code=_query("iso_code")[:2]))
    return _listing(found, total, lambda pair: _log_record(*pair))


def _log_record(m: Message, sdk_app_id: str) -> Json:
    """A row of the SMS log, with what the page shows (SPEC.md §7)."""
    return {
        "id": m.id, "serial_no": m.serial_no, "sdk_app_id": sdk_app_id,
        "phone_number": m.phone_number, "region": m.region, "iso_code": m.iso_code,
        "sms_type": m.sms_type, "status": m.status, "content": m.content,
        "characters": len(m.content), "parts": parts_of(m.content, m.region),
        "billed_items": outcomes.billed_items(m),
        "error_code": m.error_code,
        "reason": errors.describe(m.error_code).reason if m.error_code else None,
        "carrier_code": m.carrier_code, "task_id": m.task_id,
        "template_id": m.template_id, "signature_id": m.signature_id,
        "created_at": _when(m.created_at), "submitted_at": _when(m.submitted_at),
        "receipt_at": _when(m.receipt_at)}


@route("DescribeSendSmsRecord:replies")
def _replies(ctx: Ctx) -> Json:
    page, size = _page_args()
    number = _query("phone_number")[:32]
    found, total = replies.replies_page(ctx, number, page, size)
    return _listing(found, total, lambda pair: {
        "id": pair[0].id, "phone_number": pair[0].phone_number, "text": pair[0].text,
        "sdk_app_id": pair[1], "unsubscribed": pair[0].unsubscribed,
        "received_at": _when(pair[0].received_at)})


# --- alarms ---------------------------------------------------------------------------

def _alarm(a: Alarm) -> Json:
    figures = a.figures or {}
    return {"id": a.id, "event": a.event, "label": alarms.EVENTS[a.event].label
            if a.event in alarms.EVENTS else a.event, "sdk_app_id": figures.get("sdk_app_id"),
            "subject": a.subject, "body": a.body, "created_at": _when(a.created_at),
            "acknowledged_by": a.acknowledged_by, "acknowledged_at": _when(a.acknowledged_at)}


@route("DescribeAlarms")
def _alarms(ctx: Ctx) -> Json:
    page, size = _page_args()
    filters = alarms.parse_filters(_query("sdk_app_id")[:20], _query("event")[:40],
                                   _query("since")[:20], _query("until")[:20],
                                   unacknowledged=_query("unacknowledged"))
    found, total = alarms.history(ctx, filters, page, size)
    return _listing(found, total, _alarm)


@route("ModifyAlarms")
def _acknowledge(ctx: Ctx, _b: Body, alarm_id: int) -> Json:
    return _alarm(alarms.acknowledge(ctx, alarm_id))
