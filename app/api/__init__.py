"""The HTTP API: sending, message state, and its OpenAPI document.

Requests are signed with the application's AppKey:
X-SMS-Signature = hex(HMAC-SHA256(AppKey, method + "\\n" + path?query + "\\n" +
timestamp + "\\n" + nonce + "\\n" + raw body)), where path?query is the request
target exactly as sent in the request line; with X-SMS-AppId, X-SMS-Timestamp (unix
seconds, within 300 s) and X-SMS-Nonce (8-64 characters, single use). Bodies are
capped (API_MAX_BODY_BYTES, 1 MB) before they are read, and JSON nesting is limited.
"""

from __future__ import annotations

import hmac
import json
import re
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from flask import Blueprint, current_app, g, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Response

from app import safejson
from app.encryption import EncryptionKeyError
from app.queue import enqueue_deferred
from app.services import sending
from app.services.access import Actor, Statement
from app.services.context import Ctx, Settings
from app.services.errors import NotFound, PermissionDenied, ServiceError, ValidationError
from app.services.limits import Limiter
from app.services.sendconfig import TOKEN_KEY, AppSnap, ConfigCache, Snapshots

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_SKEW_S = 300
NONCE = re.compile(r"^[A-Za-z0-9_\-.~]{8,64}$")
OPENAPI = Path(__file__).with_name("openapi.json")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> tuple[Response, int]:
    return jsonify(error={"code": code, "message": message}), status


def _body_limit() -> int:
    endpoint = request.endpoint or ""
    operation = manage_spec.OPERATIONS.get(endpoint.removeprefix("api.m_"))
    upload = operation.upload if operation and endpoint.startswith("api.m_") else ""
    if upload == "image":  # base64 images of up to 5 MB, and the fields
        return 8 * 1024 * 1024
    if upload == "file":  # a base64 CSV/XLSX file (TASK_MAX_UPLOAD_MB)
        return int(current_app.config.get("TASK_MAX_UPLOAD_MB", 30)) * 1024 * 1024 * 4 // 3 \
            + 64 * 1024
    return int(current_app.config.get("API_MAX_BODY_BYTES") or 1024 * 1024)


def _too_large() -> ApiError:
    return ApiError(413, "RequestTooLarge",
                    f"The request body is larger than {_body_limit()} bytes.")


@bp.before_request
def _cap_body() -> None:
    """Refuse an oversized body before anything reads (or hashes) it."""
    if (request.content_length or 0) > _body_limit():
        raise _too_large()
    # A body without Content-Length (chunked) is read at most one byte past the limit,
    # enough for _body to tell it is too large.
    request.max_content_length = _body_limit() + 1


def _body() -> bytes:
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise _too_large() from None
    if len(data) > _body_limit():
        raise _too_large()
    return data


def _request_target() -> bytes:
    """path?query as the client sent it in the request line (what it signed)."""
    env = request.environ
    raw = env.get("RAW_URI") or env.get("REQUEST_URI")  # gunicorn / waitress, werkzeug
    if raw:
        try:
            target = raw.encode("latin-1")  # WSGI strings carry the bytes as latin-1
        except UnicodeEncodeError:
            target = raw.encode()
        if not target.startswith(b"/"):  # absolute form: http://host/path?query
            parts = urlsplit(target)
            target = (parts.path or b"/") + (b"?" + parts.query if parts.query else b"")
        return target
    path = (env.get("SCRIPT_NAME", "") + env.get("PATH_INFO", "")).encode("latin-1")
    query = env.get("QUERY_STRING", "")
    return quote(path, safe="/:@!$&'()*+,;=-._~").encode() + (
        b"?" + query.encode("latin-1") if query else b"")


T = TypeVar("T")


Lookup = Callable[[str], "tuple[T, str] | None"]


def verify_signed(id_header: str, lookup: Lookup[T], nonce_scope: str, *,
                  read_too: str | None = None,
                  recheck: Callable[[Any], Lookup[T] | None] | None = None) -> T:
    """The scheme both APIs share: check the headers, the clock skew, the nonce's form,
    the HMAC-SHA256 signature with the key `lookup` finds for the id in `id_header`
    (None: unknown), then use the nonce up. Returns what `lookup` found with the key.
    `read_too`: a Redis key read in the nonce's round trip and given to `recheck`,
    which returns a fresher lookup when what `lookup` used is out of date (the
    signature is then checked again with what it finds), else None."""
    caller_id = request.headers.get(id_header, "")
    ts = request.headers.get("X-SMS-Timestamp", "")
    nonce = request.headers.get("X-SMS-Nonce", "")
    signature = request.headers.get("X-SMS-Signature", "")
    if not (caller_id and ts and nonce and signature):
        raise ApiError(401, "AuthFailure.MissingHeaders", f"Send {id_header}, X-SMS-Timestamp, "
                       "X-SMS-Nonce and X-SMS-Signature.")
    if not ts.isdigit() or abs(time.time() - int(ts)) > MAX_SKEW_S:
        raise ApiError(401, "AuthFailure.TimestampSkew",
                       f"X-SMS-Timestamp must be unix seconds within {MAX_SKEW_S} s of now.")
    if not NONCE.match(nonce):
        raise ApiError(401, "AuthFailure.BadNonce",
                       "X-SMS-Nonce must be 8 to 64 letters, digits or -_.~")
    message = b"\n".join([request.method.encode(), _request_target(), ts.encode(),
                          nonce.encode(), _body()])
    found = _signed_by(lookup, caller_id, message, signature)
    # Single use, remembered for longer than the accepted skew.
    pipe = current_app.extensions["redis"].pipeline(transaction=False)
    pipe.set(f"smsops:nonce:{nonce_scope}{caller_id}:{nonce}", 1, nx=True,
             ex=2 * MAX_SKEW_S + 60)
    if read_too is not None:
        pipe.get(read_too)
    replies = pipe.execute()
    if not replies[0]:
        raise ApiError(401, "AuthFailure.ReplayedNonce", "This nonce was used already.")
    fresher = recheck(replies[1] if read_too is not None else None) if recheck else None
    if fresher is not None:
        found = _signed_by(fresher, caller_id, message, signature)
    return found[0]


def _signed_by(lookup: Lookup[T], caller_id: str, message: bytes,
               signature: str) -> tuple[T, str]:
    found = lookup(caller_id) if len(caller_id) <= 64 else None
    expected = found[1] if found else "no-such-caller"  # same work either way
    digest = hmac.new(expected.encode(), message, "sha256").hexdigest()
    if found is None or not hmac.compare_digest(digest, signature.lower()):
        raise ApiError(401, "AuthFailure.SignatureFailure",
                       "The signature does not match; sign method, path?query, timestamp, "
                       "nonce and body, one per line, with your key.")
    return found


def _session() -> Session:
    """One session (one pool checkout, one transaction) for the whole request:
    authentication and the service share it."""
    session: Session | None = g.get("api_session")
    if session is None:
        session = g.api_session = current_app.extensions["db"].sessions()
    return session


def _snapshots() -> Snapshots:
    """This request's view of the configuration cache (app/services/sendconfig.py),
    checked against the token _authenticate read with the nonce."""
    snaps: Snapshots | None = g.get("api_snapshots")
    if snaps is None:
        snaps = g.api_snapshots = current_app.extensions["send_config"].current()
    return snaps


def _authenticate() -> tuple[AppSnap, Actor]:
    """The application whose AppKey signed this request, as the actor. The signature
    is checked with the cached key first; the cache's token comes back with the
    nonce (one round trip), and if it changed, the key is read again and the
    signature checked again: a rotated key or a deleted app is refused at once."""
    cache: ConfigCache = current_app.extensions["send_config"]
    session = _session()
    last = cache.last_view()

    def recheck(token: Any) -> Lookup[AppSnap] | None:
        snaps = g.api_snapshots = cache.current(token)
        return None if snaps.same_generation(last) else partial(_app_key, snaps, session)

    try:
        app = verify_signed("X-SMS-AppId", partial(_app_key, last, session), "",
                            read_too=TOKEN_KEY, recheck=recheck)
    except ApiError as exc:
        # Signed with a key the cache does not know yet (just rotated, say): if the
        # token moved on, check once more with what is current. The nonce is unused.
        if exc.code != "AuthFailure.SignatureFailure":
            raise
        snaps = g.api_snapshots = cache.current()
        if snaps.same_generation(last):
            raise
        app = verify_signed("X-SMS-AppId", partial(_app_key, snaps, session), "")
    rights = (Statement("allow", ("sms:SendSms", "sms:DescribeSendSmsRecord"),
                        (f"sms:app/{app.sdk_app_id}",)),)
    return app, Actor(account_id=app.account_id, label=f"api:{app.sdk_app_id}",
                      statements=rights)


def _app_key(snaps: Snapshots, session: Session, app_id: str) -> tuple[AppSnap, str] | None:
    app = snaps.app(session, app_id)
    return (app, app.app_key) if app else None


def _ctx(actor: Actor) -> Ctx:
    ext = current_app.extensions
    settings = ext.get("api_settings")
    if settings is None:  # read once per process: the configuration does not change
        settings = ext["api_settings"] = Settings.from_config(current_app.config)
    return Ctx(_session(), actor, settings, gateway=ext["gateway"])


def _limiter() -> Limiter:
    limiter: Limiter | None = current_app.extensions.get("api_limiter")
    if limiter is None:
        limiter = current_app.extensions["api_limiter"] = Limiter(
            current_app.extensions["redis"])
    return limiter


@bp.teardown_request
def _close(_exc: BaseException | None) -> None:
    session = g.pop("api_session", None)
    if session is not None:
        session.close()


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError) -> tuple[Response, int]:
    return _error(exc.status, exc.code, exc.message)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> tuple[Response, int]:
    return _error(exc.code or 400, "InvalidRequest", exc.description or exc.name)


@bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> tuple[Response, int]:
    current_app.logger.exception("API error on %s", request.path)
    return _error(500, "InternalError", "Something went wrong on our side. It has been logged.")


@bp.errorhandler(EncryptionKeyError)
def _encryption_key(exc: EncryptionKeyError) -> tuple[Response, int]:
    current_app.logger.error("%s", exc)  # a setup fault: said plainly, no stack trace
    return _error(503, "InternalError.EncryptionKey",
                  "This server cannot read its stored keys; the operator has been told why.")


@bp.errorhandler(ServiceError)
def _service_error(exc: ServiceError) -> tuple[Response, int]:
    status = {PermissionDenied: 403, NotFound: 404}.get(type(exc), 400)
    return _error(status, exc.code, exc.message)


@bp.post("/sms/send")
def send() -> tuple[Response, int] | Response:
    _app, actor = _authenticate()
    try:
        body = safejson.loads(_body() or b"null")
    except safejson.TooDeep as exc:
        raise ApiError(400, "InvalidParameter.Body", f"The body is not accepted: {exc}.") \
            from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "InvalidParameter.Body", "The body is not valid JSON.") from None
    try:
        req = sending.validate_request(body)
    except ValidationError as exc:
        field, message = next(iter(exc.errors.items()))
        raise ApiError(400, "InvalidParameter" + (f".{field}" if field else ""),
                       message) from None
    ctx = _ctx(actor)
    request_id, results = sending.send(ctx, _limiter(), _app.sdk_app_id, req, _snapshots())
    ctx.db.commit()
    try:
        enqueue_deferred(current_app.extensions["redis"], ctx.deferred)
    except RedisError as exc:  # committed: the sweeper re-drives these rows
        current_app.logger.warning("send %s: wake-up not enqueued (%s)", request_id, exc)
    return jsonify(request_id=request_id, send_status=[
        {"serial_no": r.serial_no, "phone_number": r.phone_number, "code": r.code,
         "message": r.message, "fee": r.fee, "iso_code": r.iso_code} for r in results])


@bp.get("/sms/messages/<serial_no>")
def message(serial_no: str) -> Response:
    app, actor = _authenticate()
    msg = sending.get_message(_ctx(actor), app.sdk_app_id, serial_no)
    return jsonify(sending.as_dict(msg, app.sdk_app_id))


@bp.route("/<path:_unknown>", methods=["GET", "POST", "PUT", "PATCH", "DELETE"])
def unknown(_unknown: str) -> tuple[Response, int]:
    """A path no endpoint has (e.g. a letter where an id goes): JSON, like every answer
    under /api/v1, not the console's HTML error page."""
    return _error(404, "NotFound", "No such endpoint; see /api/v1/openapi.json.")


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(document())


def document() -> dict[str, Any]:
    """Both APIs: the send API's file, and the management API's operation table."""
    doc: dict[str, Any] = json.loads(OPENAPI.read_text())
    paths, schemas = manage_spec.document_part()
    doc["paths"].update(paths)
    doc["components"]["schemas"].update(schemas)
    doc["info"]["description"] += MANAGE_INTRO
    return doc


MANAGE_INTRO = (
    " The management API (/api/v1/apps, /templates, /reviews, ...) is signed the same way "
    "with a user's SecretKey, sending X-SMS-SecretId instead of X-SMS-AppId; it acts as that "
    "user, with that user's policies. Lists take page and page_size; writes accept an "
    "Idempotency-Key header.")

from app.api import manage, manage_spec  # noqa: E402, F401 - registers the routes
