"""The HTTP API: sending, message state, and its OpenAPI document.

Requests are signed with the application's AppKey:
X-SMS-Signature = hex(HMAC-SHA256(AppKey, method + "\\n" + path?query + "\\n" +
timestamp + "\\n" + nonce + "\\n" + raw body)), where path?query is the request
target as every server passes it on (the rule above `_request_target`); with
X-SMS-AppId, X-SMS-Timestamp (unix seconds, within 300 s) and X-SMS-Nonce (8-64
characters, single use). Bodies are capped (API_MAX_BODY_BYTES, 1 MB) before they
are read, and JSON nesting is limited.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlsplit

from flask import Blueprint, current_app, g, jsonify, request
from redis.exceptions import RedisError
from sqlalchemy.orm import Session
from werkzeug.exceptions import (
    ClientDisconnected,
    HTTPException,
    MethodNotAllowed,
    RequestEntityTooLarge,
)
from werkzeug.exceptions import NotFound as NoRoute
from werkzeug.wrappers import Response

from app import safejson
from app.api import groupcommit
from app.api.groupcommit import GroupCommit
from app.encryption import EncryptionKeyError
from app.services import sending
from app.services.access import Actor, Statement
from app.services.context import Ctx, Settings
from app.services.errors import NotFound, PermissionDenied, ServiceError, ValidationError
from app.services.limits import Guard, Limiter, Replayed, SignedTooEarly, Stale
from app.services.sendconfig import TOKEN_KEY, AppSnap, ConfigCache, Snapshots

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_SKEW_S = 300
NONCE = re.compile(r"[A-Za-z0-9_\-.~]{8,64}")  # fullmatch: `$` would take a final "\n"
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,128}")  # fullmatch: printable ASCII
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
    limit = _body_limit()
    if (request.content_length or 0) > limit:
        raise _too_large()
    # A body without Content-Length (chunked) is read at most one byte past the limit,
    # enough for _body to tell it is too large.
    request.max_content_length = limit + 1


def _body() -> bytes:
    try:
        data = request.get_data(cache=True)
    except RequestEntityTooLarge:
        raise _too_large() from None
    except HTTPException:
        raise
    except Exception:  # werkzeug answers OSError and ValueError so; gunicorn also raises
        raise ClientDisconnected() from None  # its parse errors (a chunk size not in hex)
    if len(data) > _body_limit():
        raise _too_large()
    return data


# The request target a signature covers — one rule, whichever server is in front.
#
# granian hands the app no raw request target, only the decoded path (PATH_INFO) and the
# query as sent (QUERY_STRING); gunicorn and waitress pass the raw target too, and
# waitress even reads `//x` as `/x`. So the signed target is built from those two alone,
# the same way on every server: the path, percent-decoded, percent-encoded again with
# upper-case hex for every byte but RFC 3986's unreserved characters, sub-delims, ":",
# "@" and "/"; then, when the query is not empty, "?" and the query exactly as sent.
# What no server passes on is not signed: a "?" with nothing after it, a "#fragment",
# an escape of a character that needs none ("%73" is "s", "%2F" is "/"), the scheme and
# host of an absolute-form target (`POST http://host/path`). This is exactly what
# routing and the views read, so a signature verifies only for requests the app reads
# as the one signed. What some server refuses or reads differently is refused before
# routing, on every server (`target_problem`, a 400): a method not in upper case, an
# empty path segment, a character RFC 3986 does not allow in a target, a path that is
# not ASCII once decoded (no endpoint has one).
PATH_SAFE = "/:@!$&'()*+,;=-._~"
URI_CHARS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*")  # fullmatch
SLASHES = re.compile(r"//+")


def _request_target(env: dict[str, Any]) -> bytes:
    """path?query as signed: rebuilt from PATH_INFO and QUERY_STRING (the rule above)."""
    path = env.get("SCRIPT_NAME", "") + env.get("PATH_INFO", "")
    query = env.get("QUERY_STRING", "")
    try:  # WSGI strings carry the bytes as latin-1
        raw_path, raw_query = path.encode("latin-1"), query.encode("latin-1")
    except UnicodeEncodeError:
        raw_path, raw_query = path.encode(), query.encode()
    return quote(raw_path, safe=PATH_SAFE).encode() + (b"?" + raw_query if raw_query else b"")


def is_api_target(env: dict[str, Any]) -> bool:
    """Whether the request is for the API, empty path segments aside."""
    path: str = env.get("PATH_INFO", "")
    return under_api(SLASHES.sub("/", path) if "//" in path else path)


def target_problem(env: dict[str, Any]) -> ApiError | None:
    """Why this request's method or target would not be read alike on every server
    (see the rule above `_request_target`), or None."""
    method: str = env.get("REQUEST_METHOD", "")
    if method != method.upper():  # gunicorn and waitress refuse these themselves
        return ApiError(400, "InvalidRequest.Method", "HTTP methods are case-sensitive: "
                        f"send {method.upper()[:16]!r}, not {method[:16]!r}.")
    path: str = env.get("SCRIPT_NAME", "") + env.get("PATH_INFO", "")
    query: str = env.get("QUERY_STRING", "")
    raw: str | None = env.get("RAW_URI") or env.get("REQUEST_URI")  # gunicorn, waitress
    if not URI_CHARS.fullmatch(query) or (raw is not None and not URI_CHARS.fullmatch(raw)):
        return ApiError(400, "InvalidRequest.Target", "The request target holds a character "
                        "that must be percent-encoded (RFC 3986).")
    raw_path = ""
    if raw is not None:
        raw_path = raw.partition("#")[0].partition("?")[0]
        if not raw_path.startswith("/"):  # absolute form: http://host/path?query
            raw_path = urlsplit(raw_path).path
    if "//" in path or "//" in raw_path:
        return ApiError(400, "InvalidRequest.Target",
                        "The path has an empty segment (//); send it without.")
    if not path.isascii():
        return ApiError(400, "InvalidRequest.Target",
                        "No API path holds a character outside ASCII.")
    return None


T = TypeVar("T")


Lookup = Callable[[str], "tuple[T, str] | None"]


@dataclass(frozen=True)
class Signed:
    """A request's signing headers, checked for form and clock skew."""

    caller_id: str
    nonce: str
    ts: int  # X-SMS-Timestamp, unix seconds
    message: bytes  # what the caller signed
    signature: str
    body: bytes  # the raw body (read once, within the size limit)


def signed_request(id_header: str) -> Signed:
    """The headers of the scheme both APIs share: present, the clock skew, the nonce's
    form; and the bytes the caller must have signed."""
    return signed_from(request.environ, id_header, _body)


def signed_from(env: dict[str, Any], id_header: str, read_body: Callable[[], bytes]) -> Signed:
    """signed_request on a WSGI environ (app/api/fastpath.py has no Flask request);
    the body is read once the headers pass."""
    # Straight from the WSGI environ (what request.headers reads, with a proxy lookup
    # and a key translation per call).
    caller_id = env.get("HTTP_" + id_header.upper().replace("-", "_"), "")
    ts = env.get("HTTP_X_SMS_TIMESTAMP", "")
    nonce = env.get("HTTP_X_SMS_NONCE", "")
    signature = env.get("HTTP_X_SMS_SIGNATURE", "")
    if not (caller_id and ts and nonce and signature):
        raise ApiError(401, "AuthFailure.MissingHeaders", f"Send {id_header}, X-SMS-Timestamp, "
                       "X-SMS-Nonce and X-SMS-Signature.")
    # ASCII digits only: isdigit() also takes '²' and other scripts' digits, which
    # int() refuses (a 500), and a few thousand digits int() will not read at all.
    if not (ts.isascii() and ts.isdigit() and len(ts) <= 12) \
            or abs(time.time() - int(ts)) > MAX_SKEW_S:
        raise ApiError(401, "AuthFailure.TimestampSkew",
                       f"X-SMS-Timestamp must be unix seconds within {MAX_SKEW_S} s of now.")
    if not NONCE.fullmatch(nonce):
        raise ApiError(401, "AuthFailure.BadNonce",
                       "X-SMS-Nonce must be 8 to 64 letters, digits or -_.~")
    body = read_body()
    message = b"\n".join([env["REQUEST_METHOD"].encode(), _request_target(env), ts.encode(),
                          nonce.encode(), body])
    return Signed(caller_id, nonce, int(ts), message, signature, body)


def nonce_key(scope: str, signed: Signed) -> str:
    return f"smsops:nonce:{scope}{signed.caller_id}:{signed.nonce}"


NONCE_TTL_S = 2 * MAX_SKEW_S + 60  # single use, remembered for longer than the skew


def verify_signed(id_header: str, lookup: Lookup[T], nonce_scope: str, *,
                  read_too: str | None = None,
                  recheck: Callable[[Any], Lookup[T] | None] | None = None) -> T:
    """The scheme both APIs share: check the headers, the clock skew, the nonce's form,
    the HMAC-SHA256 signature with the key `lookup` finds for the id in `id_header`
    (None: unknown), then use the nonce up. Returns what `lookup` found with the key.
    `read_too`: a Redis key read in the nonce's round trip and given to `recheck`,
    which returns a fresher lookup when what `lookup` used is out of date (the
    signature is then checked again with what it finds), else None."""
    signed = signed_request(id_header)
    found = _signed_by(lookup, signed.caller_id, signed.message, signed.signature)
    try:
        read = _limiter().use_nonce(nonce_key(nonce_scope, signed), NONCE_TTL_S, signed.ts,
                                    read_too)
    except Replayed:
        raise _replayed() from None
    except SignedTooEarly:
        raise _too_early() from None
    fresher = recheck(read) if recheck else None
    if fresher is not None:
        found = _signed_by(fresher, signed.caller_id, signed.message, signed.signature)
    return found[0]


def _replayed() -> ApiError:
    return ApiError(401, "AuthFailure.ReplayedNonce", "This nonce was used already.")


def _too_early() -> ApiError:
    return ApiError(401, "AuthFailure.TimestampSkew", "Sign the request again with the "
                    "current time: it was signed before the server's record of used "
                    "nonces began (it restarted), so it cannot be told from a replay.")


def _signed_by(lookup: Lookup[T], caller_id: str, message: bytes,
               signature: str) -> tuple[T, str]:
    # An id holding NUL is no caller's (PostgreSQL refuses it in a query), and
    # compare_digest raises on non-ASCII text (a header byte 0xE9 arrives as 'é').
    found = lookup(caller_id) if len(caller_id) <= 64 and "\x00" not in caller_id else None
    expected = found[1] if found else "no-such-caller"  # same work either way
    digest = hmac.new(expected.encode(), message, "sha256").hexdigest()
    if found is None or not hmac.compare_digest(
            digest.encode(), signature.lower().encode("utf-8", "surrogatepass")):
        raise ApiError(401, "AuthFailure.SignatureFailure",
                       "The signature does not match; sign method, path?query, timestamp, "
                       "nonce and body, one per line, with your key. This request's method "
                       f"and path?query as signed: {_signed_line(message)}.")
    return found


def _signed_line(message: bytes) -> str:
    method, target = message.split(b"\n", 2)[:2]
    line = f"{method.decode('latin-1')} {target.decode('latin-1')}"
    return line if len(line) <= 300 else line[:300] + "..."


class _LazySession:
    """A session opened on first use: a send request whose configuration is cached
    never needs one (its rows are written by the group commit's own)."""

    def __init__(self, factory: Callable[[], Session]) -> None:
        self._factory = factory
        self._session: Session | None = None

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            self._session = self._factory()
        return getattr(self._session, name)

    def close(self) -> None:
        if self._session is not None:
            self._session.close()


def _session() -> Session:
    """One session (one pool checkout, one transaction) for the whole request:
    authentication and the service share it. Opened when first used."""
    session: Session | None = g.get("api_session")
    if session is None:
        session = g.api_session = cast(Session, _LazySession(
            current_app.extensions["db"].sessions))
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
    return app, _app_actor(app)


def _app_actor(app: AppSnap) -> Actor:
    """What an AppKey may do: send with its application, and read what it sent."""
    rights = (Statement("allow", ("sms:SendSms", "sms:DescribeSendSmsRecord"),
                        (f"sms:app/{app.sdk_app_id}",)),)
    return Actor(account_id=app.account_id, label=f"api:{app.sdk_app_id}", statements=rights)


def _app_key(snaps: Snapshots, session: Session, app_id: str) -> tuple[AppSnap, str] | None:
    app = snaps.app(session, app_id)
    return (app, app.app_key) if app else None


def _ctx(actor: Actor) -> Ctx:
    return ctx_in(current_app, _session(), actor)


def ctx_in(flask_app: Any, session: Session, actor: Actor) -> Ctx:
    return Ctx(session, actor, _settings(flask_app), gateway=flask_app.extensions["gateway"])


def _settings(flask_app: Any) -> Settings:
    settings: Settings | None = flask_app.extensions.get("api_settings")
    if settings is None:  # read once per process: the configuration does not change
        settings = flask_app.extensions["api_settings"] = Settings.from_config(flask_app.config)
    return settings


def _limiter() -> Limiter:
    return limiter_of(current_app.extensions)


def limiter_of(ext: dict[str, Any]) -> Limiter:
    limiter: Limiter | None = ext.get("api_limiter")
    if limiter is None:
        limiter = ext["api_limiter"] = Limiter(ext["redis"])
    return limiter


def group_commit_of(flask_app: Any) -> GroupCommit:
    ext = flask_app.extensions
    writer: GroupCommit | None = ext.get("api_group_commit")
    if writer is None:
        writer = ext["api_group_commit"] = GroupCommit(
            ext["db"], ext["redis"], _settings(flask_app), limiter_of(ext), ext["gateway"])
    return writer


@bp.teardown_request
def _close(_exc: BaseException | None) -> None:
    session = g.pop("api_session", None)
    if session is not None:
        session.close()


def answer_for(exc: Exception, logger: logging.Logger, path: str) -> tuple[int, str, str]:
    """The status, code and message of the answer to a request that raised `exc`."""
    if isinstance(exc, ApiError):
        return exc.status, exc.code, exc.message
    if isinstance(exc, EncryptionKeyError):
        logger.error("%s", exc)  # a setup fault: said plainly, no stack trace
        return (503, "InternalError.EncryptionKey",
                "This server cannot read its stored keys; the operator has been told why.")
    if isinstance(exc, ServiceError):
        return {PermissionDenied: 403, NotFound: 404}.get(type(exc), 400), exc.code, exc.message
    if isinstance(exc, HTTPException):
        return exc.code or 400, "InvalidRequest", exc.description or exc.name
    if isinstance(exc, RedisError):
        # A send's checks (nonce, limits) run in Redis before anything is written, and
        # a failed wake-up after a commit is answered as a success (the sweeper's job).
        logger.warning("Redis unavailable on %r: %s", path, type(exc).__name__)
        return (503, "InternalError.Unavailable",
                "A service this server needs is unavailable. Sign the request again (a "
                "new nonce) and send it in a moment.")
    logger.exception("API error on %r", path)  # repr: a path cannot forge log lines
    return 500, "InternalError", "Something went wrong on our side. It has been logged."


def _api_error(exc: Exception) -> tuple[Response, int]:
    return _error(*answer_for(exc, current_app.logger, request.path))


# Each kind by name: Flask takes an app-wide handler of the exact class (the console's
# for EncryptionKeyError and HTTP errors) before a blueprint's for a base class.
for _kind in (ApiError, ServiceError, EncryptionKeyError, HTTPException, Exception):
    bp.register_error_handler(_kind, _api_error)


REPLAYED_HEADER = ("Idempotent-Replayed", "true")  # on an answer given from a stored reply


@bp.post("/sms/send")
def send() -> Response:
    """Requests with a Content-Length never get here: app/api/fastpath.py answers them
    without Flask (a third of a request's CPU). This route takes the rest (a chunked
    body) and gives the endpoint its place in routing (405s, the OpenAPI document)."""
    payload, replayed = send_core(current_app._get_current_object(),  # type: ignore[attr-defined]
                                  request.environ, _body)
    resp = jsonify(payload)
    if replayed:
        resp.headers[REPLAYED_HEADER[0]] = REPLAYED_HEADER[1]
    return resp


def send_core(flask_app: Any, env: dict[str, Any], read_body: Callable[[], bytes]
              ) -> tuple[dict[str, Any], bool]:
    """One Redis round trip and no database work of its own when the configuration is
    cached: the signature is checked with the cached key; the nonce, the cache's
    freshness and every limit go in one Redis call (`sending.prepare`'s guard); the
    rows are written by this process's group commit (app/api/groupcommit.py). A stale
    cache is read again and the request checked again with it (signature included).
    Returns the answer, and whether it is a stored one (an Idempotency-Key's retry).
    Raises ApiError and the services' errors (see `answer_for`)."""
    ext = flask_app.extensions
    signed = signed_from(env, "X-SMS-AppId", read_body)
    key = env.get("HTTP_IDEMPOTENCY_KEY")
    cache: ConfigCache = ext["send_config"]
    session = cast(Session, _LazySession(ext["db"].sessions))
    try:
        prepared = _prepare(flask_app, cache, signed, session, key)
    finally:
        session.close()  # nothing more to read; the rows are written by the group commit
    outcome = group_commit_of(flask_app).write(prepared)
    if outcome == groupcommit.WRITTEN and prepared.replayed is not None:
        return _replay(prepared.replayed, signed), True  # its key was answered already
    if outcome == groupcommit.FAILED:
        raise ApiError(503, "InternalError.Unavailable",
                       "Nothing was sent: the database is unavailable. Sign the request "
                       "again (a new nonce: this one is used) and send it.")
    if outcome == groupcommit.UNKNOWN:
        serials = ", ".join(m.serial_no for m in prepared.messages)
        raise ApiError(503, "InternalError.OutcomeUnknown",
                       "The database stopped answering while these messages were being "
                       f"recorded; look them up before sending again: {serials}.")
    return _answer(prepared.request_id, prepared.results), False


def _answer(request_id: str, results: list[sending.SendStatus]) -> dict[str, Any]:
    return {"request_id": request_id, "send_status": [
        {"serial_no": r.serial_no, "phone_number": r.phone_number, "code": r.code,
         "message": r.message, "fee": r.fee, "iso_code": r.iso_code} for r in results]}


def _replay(stored: sending.StoredReply, signed: Signed) -> dict[str, Any]:
    """The first answer to a request sent again with its Idempotency-Key, if the body is
    the same one."""
    if stored.fingerprint != _fingerprint(signed):
        raise ApiError(422, "IdempotencyKeyReused",
                       "This Idempotency-Key was used with a different request.")
    return _answer(stored.request_id, stored.results)


def _fingerprint(signed: Signed) -> str:
    return hashlib.sha256(signed.body).hexdigest()  # one endpoint: the body is the request


def _prepare(flask_app: Any, cache: ConfigCache, signed: Signed, session: Session,
             key: str | None = None) -> sending.Prepared:
    snaps = cache.last_view()
    if snaps.entries is None:  # this process's first request, or Redis lost the token
        snaps = cache.current()
    try:
        app = _app_signed(snaps, signed, session)
    except ApiError:
        # Signed with a key the cache may not know yet (rotated a moment ago): if the
        # configuration moved on, check once more with what is current.
        fresh = cache.current()
        if snaps.entries is None or fresh.same_generation(snaps):
            raise
        snaps = fresh
        app = _app_signed(snaps, signed, session)
    req = _send_request(signed.body)
    limiter = limiter_of(flask_app.extensions)
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise ApiError(400, "InvalidParameter.IdempotencyKey",
                       "Idempotency-Key must be 1 to 128 printable ASCII characters.")
    # A key's stored answer is looked up by the group commit, one query a batch (a
    # query here cost a pool connection a request: 4-5x the CPU, bench/README).
    for _attempt in range(3):
        guard = Guard(TOKEN_KEY, snaps.token, nonce_key("", signed), NONCE_TTL_S, signed.ts)
        try:
            prepared = sending.prepare(ctx_in(flask_app, session, _app_actor(app)), limiter,
                                       app.sdk_app_id, req, snaps, guard)
            if key is not None:
                prepared.idempotency = (key, _fingerprint(signed))
            return prepared
        except Stale as exc:  # changed since it was cached: read it again, check again
            snaps = cache.current(exc.token)
            app = _app_signed(snaps, signed, session)
        except Replayed:
            raise _replayed() from None
        except SignedTooEarly:
            raise _too_early() from None
    raise ApiError(503, "InternalError.Unavailable",
                   "The configuration kept changing; nothing was sent. Try again.")


def _app_signed(snaps: Snapshots, signed: Signed, session: Session) -> AppSnap:
    """The application whose key (as `snaps` knows it) signed the request."""
    app, _key = _signed_by(partial(_app_key, snaps, session), signed.caller_id,
                           signed.message, signed.signature)
    return app


def _send_request(raw: bytes) -> sending.SendRequest:
    try:
        body = safejson.loads(raw or b"null")
    except safejson.Refused as exc:
        raise ApiError(400, "InvalidParameter.Body", f"The body is not accepted: {exc}.") \
            from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "InvalidParameter.Body", "The body is not valid JSON.") from None
    try:
        return sending.validate_request(body)
    except ValidationError as exc:
        field, message = next(iter(exc.errors.items()))
        raise ApiError(400, "InvalidParameter" + (f".{field}" if field else ""),
                       message) from None


@bp.get("/sms/messages/<serial_no>")
def message(serial_no: str) -> Response:
    app, actor = _authenticate()
    # Servers decode %00 in the path; PostgreSQL refuses NUL in a query (a 500).
    msg = sending.get_message(_ctx(actor), app.sdk_app_id, serial_no.replace("\x00", "\ufffd"))
    return jsonify(sending.as_dict(msg, app.sdk_app_id))


def under_api(path: str) -> bool:
    return path == bp.url_prefix or path.startswith(f"{bp.url_prefix}/")


@bp.before_app_request
def _routing_error() -> tuple[Response, int] | None:
    """A path under /api/v1 no endpoint has (e.g. a letter where an id goes), or a method
    its endpoint does not take: JSON like every answer here, not the console's HTML
    error page. Blueprint error handlers never see these (routing failed, so no
    blueprint was chosen); routing answers before authentication."""
    exc = request.routing_exception
    if exc is None or not under_api(request.path):
        return None
    if isinstance(exc, MethodNotAllowed):
        allowed = sorted(exc.valid_methods or ())
        real = [m for m in allowed if m not in ("HEAD", "OPTIONS")] or allowed
        resp, status = _error(405, "MethodNotAllowed",
                              f"This path does not take {request.method[:16]}; it takes "
                              f"{' or '.join(real)}. See /api/v1/openapi.json.")
        resp.headers["Allow"] = ", ".join(allowed)
        return resp, status
    if isinstance(exc, NoRoute):
        return _error(404, "NotFound", "No such endpoint; see /api/v1/openapi.json.")
    return None  # a redirect (a slash to add or drop) is followed as usual


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
