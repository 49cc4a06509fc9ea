"""POST /api/v1/sms/send and GET /api/v1/sms/messages/<serial_no>: the contract."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import io
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app import create_app
from app.api import PATH_SAFE, fastpath
from app.services.limits import NONCES_SINCE_KEY, nonces_began
from tests.conftest import Backend
from tests.sending.conftest import Shop


@pytest.fixture
def api(backend: Backend, session: Session, tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x"})
    yield app
    app.extensions["db"].engine.dispose()


def signed(key: str, body: bytes, *, method: str = "POST", target: str = "/api/v1/sms/send",
           ts: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """The headers of a request signed as README says: method, path?query as sent,
    timestamp, nonce and raw body, one per line."""
    ts_text = str(ts if ts is not None else int(time.time()))
    nonce = nonce or uuid.uuid4().hex
    message = "\n".join([method, target, ts_text, nonce]).encode() + b"\n" + body
    digest = hmac.new(key.encode(), message, hashlib.sha256).hexdigest()
    return {"X-SMS-Timestamp": ts_text, "X-SMS-Nonce": nonce, "X-SMS-Signature": digest,
            "Content-Type": "application/json"}


def as_signed(target: str) -> str:
    """The path?query a request sent to `target` is signed with (README: the path
    decoded, then percent-encoded one way; the query as sent; no empty "?", no
    fragment): what a client that escapes more than it must signs."""
    path, _, query = target.partition("#")[0].partition("?")
    return quote(unquote_to_bytes(path), safe=PATH_SAFE) + (f"?{query}" if query else "")


class Caller:
    def __init__(self, client: FlaskClient, shop: Shop) -> None:
        self.client, self.shop = client, shop

    def send(self, payload: object, **kw: object):  # type: ignore[no-untyped-def]
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = signed(self.shop.app.app_key, body, **kw)  # type: ignore[arg-type]
        headers["X-SMS-AppId"] = self.shop.app.sdk_app_id
        return self.client.post("/api/v1/sms/send", data=body, headers=headers)

    def get(self, serial: str, query: str = ""):  # type: ignore[no-untyped-def]
        target = f"/api/v1/sms/messages/{serial}" + (f"?{query}" if query else "")
        headers = signed(self.shop.app.app_key, b"", method="GET", target=target)
        headers["X-SMS-AppId"] = self.shop.app.sdk_app_id
        return self.client.get(target, headers=headers)


@pytest.fixture
def caller(api: Flask, shop: Shop, session: Session) -> Caller:
    session.commit()
    return Caller(api.test_client(), shop)


def test_send_and_read_back(caller: Caller) -> None:
    resp = caller.send({"phone_numbers": ["+14155550101", "+999"],
                        "template_id": caller.shop.templates["international"],
                        "template_params": ["4321"], "session_context": "ctx-1"})
    assert resp.status_code == 200
    body = resp.get_json()
    assert len(body["request_id"]) == 32
    ok, bad = body["send_status"]
    assert (ok["code"], ok["phone_number"], ok["fee"], ok["iso_code"]) == (
        "Ok", "+14155550101", 1, "US")
    assert bad["code"] == "InvalidParameterValue.IncorrectPhoneNumber" and bad["fee"] == 0
    state = caller.get(ok["serial_no"]).get_json()
    assert (state["status"], state["session_context"]) == ("accepted", "ctx-1")
    assert caller.get("nope").status_code == 404


def test_a_request_replayed_after_redis_lost_its_nonces_is_refused(caller: Caller) -> None:
    """Nonces live in Redis: restarted empty, it had forgotten them, and a captured
    request still inside the clock skew was taken again (sent twice). Requests signed
    before the current Redis data began are refused, even in the second before it (a
    grace of 2 s let those be taken again); those signed after, taken."""
    payload = json.dumps({"phone_numbers": ["+14155550101"],
                          "template_id": caller.shop.templates["international"],
                          "template_params": ["1"]}).encode()
    key, app_id = caller.shop.app.app_key, caller.shop.app.sdk_app_id
    sent = {**signed(key, payload, ts=int(time.time()) - 1), "X-SMS-AppId": app_id}
    target = "/api/v1/sms/messages/nope"
    read = {**signed(key, b"", method="GET", target=target, ts=int(time.time()) - 1),
            "X-SMS-AppId": app_id}
    assert caller.client.post("/api/v1/sms/send", data=payload, headers=sent).status_code \
        == 200
    assert caller.client.get(target, headers=read).status_code == 404
    redis_conn = caller.client.application.extensions["redis"]
    redis_conn.flushdb()  # what a restart of a Redis that keeps nothing on disk does
    again = caller.client.post("/api/v1/sms/send", data=payload, headers=sent)
    assert (again.status_code, again.get_json()["error"]["code"]) == (
        401, "AuthFailure.TimestampSkew")
    assert "sign" in again.get_json()["error"]["message"].lower()
    assert caller.client.get(target, headers=read).status_code == 401
    # Signed after the restart's second: taken, once.
    fresh = {**signed(key, payload, ts=int(time.time()) + 1), "X-SMS-AppId": app_id}
    assert caller.client.post("/api/v1/sms/send", data=payload, headers=fresh).status_code \
        == 200
    assert caller.client.post("/api/v1/sms/send", data=payload, headers=fresh).get_json()[
        "error"]["code"] == "AuthFailure.ReplayedNonce"


def test_replayed_nonce_stale_timestamp_and_bad_signature(caller: Caller) -> None:
    payload = {"phone_numbers": ["+14155550101"],
               "template_id": caller.shop.templates["international"],
               "template_params": ["1"]}
    assert caller.send(payload, nonce="nonce-12345").status_code == 200
    replay = caller.send(payload, nonce="nonce-12345")
    assert replay.status_code == 401
    assert replay.get_json()["error"]["code"] == "AuthFailure.ReplayedNonce"
    stale = caller.send(payload, ts=int(time.time()) - 301)
    assert stale.get_json()["error"]["code"] == "AuthFailure.TimestampSkew"
    # Digits int() does not read ('²' passes isdigit; thousands of digits pass too):
    # the same answer, not a 500 with a stack trace in the log.
    for odd in ("\u00b2", "1" * 5000):
        headers = signed("irrelevant", b"{}")
        headers.update({"X-SMS-AppId": caller.shop.app.sdk_app_id, "X-SMS-Timestamp": odd})
        answer = caller.client.post("/api/v1/sms/send", data=b"{}", headers=headers)
        assert (answer.status_code, answer.get_json()["error"]["code"]) == (
            401, "AuthFailure.TimestampSkew"), odd
    body = json.dumps(payload).encode()
    headers = signed("not-the-key", body)
    headers["X-SMS-AppId"] = caller.shop.app.sdk_app_id
    forged = caller.client.post("/api/v1/sms/send", data=body, headers=headers)
    assert forged.status_code == 401
    assert forged.get_json()["error"]["code"] == "AuthFailure.SignatureFailure"
    short = caller.send(payload, nonce="short")
    assert short.get_json()["error"]["code"] == "AuthFailure.BadNonce"
    bare = caller.client.post("/api/v1/sms/send", data=body)
    assert bare.status_code == 401 and "X-SMS-AppId" in bare.get_json()["error"]["message"]


@pytest.mark.parametrize(("body", "code"), [
    (b"{not json", "InvalidParameter.Body"),
    (b"[]", "InvalidParameter"),
    (json.dumps({"phone_numbers": ["1"] * 201, "template_id": 1}).encode(),
     "InvalidParameter.phone_numbers"),
    (json.dumps({"phone_numbers": ["1"], "template_id": "x"}).encode(),
     "InvalidParameter.template_id"),
    ("\udcff".encode("utf-8", "surrogatepass"), "InvalidParameter.Body"),
    # Valid JSON, but half a surrogate pair is no character: it once reached the insert
    # and answered 503 "database unavailable" (PostgreSQL) after reserving the limits.
    (json.dumps({"phone_numbers": ["+14155550101"], "template_id": 1,
                 "template_params": ["ab\ud800cd"]}).encode(), "InvalidParameter.Body"),
    (json.dumps({"phone_numbers": ["+14155550101"], "template_id": 1,
                 "session_context": "x\udfff"}).encode(), "InvalidParameter.Body"),
    # No template has 201 variables (content is under 500 characters).
    (json.dumps({"phone_numbers": ["+14155550101"], "template_id": 1,
                 "template_params": ["x"] * 201}).encode(), "InvalidParameter.template_params"),
])
def test_bad_bodies_are_400_with_a_code(caller: Caller, body: bytes, code: str) -> None:
    resp = caller.send(body)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == code


def test_refused_parameters_are_not_stored_with_every_number(caller: Caller,
                                                              session: Session) -> None:
    """Found from outside: every row of a request kept the whole parameter list, even
    when the parameters were what got it refused: a 1 MB body of 200 numbers and 2,000
    parameters of 490 characters wrote ~200 MB."""
    from sqlalchemy import select

    from app.models import Message

    resp = caller.send({"phone_numbers": [f"+1415555{i:04d}" for i in range(100, 300)],
                        "template_id": caller.shop.templates["international"],
                        "template_params": ["x" * 490] * 200})
    assert resp.status_code == 200
    assert {s["code"] for s in resp.get_json()["send_status"]} == {
        "InvalidParameterValue.TemplateParameterCountMismatch"}
    kept = session.scalars(select(Message.template_params)).all()
    assert len(kept) == 200 and set(map(str, kept)) == {"None"}


def test_a_rotated_key_stops_working(caller: Caller, session: Session) -> None:
    from app.services import apps

    old = caller.shop.app.app_key
    apps.rotate_key(caller.shop.ctx, caller.shop.app.sdk_app_id)
    session.commit()
    body = json.dumps({"phone_numbers": ["+14155550101"], "template_id": 1}).encode()
    headers = signed(old, body)
    headers["X-SMS-AppId"] = caller.shop.app.sdk_app_id
    assert caller.client.post("/api/v1/sms/send", data=body, headers=headers).status_code == 401


def test_openapi_document_is_served_and_valid(caller: Caller) -> None:
    doc = caller.client.get("/api/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.")
    assert {"/api/v1/sms/send", "/api/v1/sms/messages/{serial_no}"} <= set(doc["paths"])
    from openapi_spec_validator import validate

    validate(doc)
    # Found from outside: the message's states lacked unknown and no_receipt, which the
    # API returns; a client generated from the document refused such answers.
    from app.models.sending import STATUSES

    found = [s["enum"] for s in _schemas(doc) if set(s.get("enum", ())) & {"submitting"}]
    assert found and all(set(e) == set(STATUSES) for e in found)


def _schemas(node: Any) -> Iterator[dict[str, Any]]:
    """Every schema object in a document, however deep."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from _schemas(value)


def test_the_signature_covers_method_path_and_query(caller: Caller) -> None:
    [r] = caller.send({"phone_numbers": ["+14155550101"], "template_id":
                       caller.shop.templates["international"],
                       "template_params": ["1"]}).get_json()["send_status"]
    assert caller.get(r["serial_no"], query="x=1").status_code == 200
    key, app_id = caller.shop.app.app_key, caller.shop.app.sdk_app_id

    def code(method: str, signed_for: str, sent_to: str, signed_method: str = "") -> str:
        headers = signed(key, b"", method=signed_method or method, target=signed_for)
        resp = caller.client.open(sent_to, method=method, headers=headers | {
            "X-SMS-AppId": app_id})
        return str(resp.get_json()["error"]["code"]) if resp.status_code != 200 else "ok"

    serial = r["serial_no"]
    path = f"/api/v1/sms/messages/{serial}"
    assert code("GET", path, path) == "ok"
    assert code("GET", "/api/v1/sms/messages/other", path) == "AuthFailure.SignatureFailure"
    assert code("GET", path + "?a=1", path + "?a=2") == "AuthFailure.SignatureFailure"
    assert code("GET", path, path + "?a=1") == "AuthFailure.SignatureFailure"
    assert code("GET", path, path, signed_method="POST") == "AuthFailure.SignatureFailure"
    # The old form (timestamp, nonce, body only) is no longer accepted.
    ts, nonce = str(int(time.time())), uuid.uuid4().hex
    old = hmac.new(key.encode(), f"{ts}\n{nonce}\n".encode(), hashlib.sha256).hexdigest()
    resp = caller.client.get(path, headers={"X-SMS-AppId": app_id, "X-SMS-Timestamp": ts,
                                            "X-SMS-Nonce": nonce, "X-SMS-Signature": old})
    assert resp.get_json()["error"]["code"] == "AuthFailure.SignatureFailure"


class CountingStream(io.RawIOBase):
    """A request body that counts what the server read of it."""

    def __init__(self, size: int) -> None:
        self.left, self.read_bytes = size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), self.left)
        buf[:n] = b"{" * n
        self.left -= n
        self.read_bytes += n
        return n


def test_an_oversized_body_is_413_before_it_is_read(caller: Caller) -> None:
    size = 30 * 1024 * 1024
    # Unauthenticated: the signature is wrong, yet the size is what is refused.
    headers = signed("not-the-key", b"") | {"X-SMS-AppId": caller.shop.app.sdk_app_id}
    body = CountingStream(size)
    resp = caller.client.post("/api/v1/sms/send", headers=headers,
                              environ_overrides={"wsgi.input": body,
                                                 "CONTENT_LENGTH": str(size)})
    assert resp.status_code == 413
    assert resp.get_json()["error"]["code"] == "RequestTooLarge"
    assert body.read_bytes == 0
    # Chunked, as gunicorn hands it over (no Content-Length): the read stops at the limit.
    body = CountingStream(size)
    resp = caller.client.post("/api/v1/sms/send", headers=headers,
                              environ_overrides={"wsgi.input": body,
                                                 "HTTP_TRANSFER_ENCODING": "chunked",
                                                 "wsgi.input_terminated": True})
    assert resp.status_code == 413, (body.read_bytes, resp.get_json())
    assert resp.get_json()["error"]["code"] == "RequestTooLarge"
    assert body.read_bytes <= 1024 * 1024 + 64 * 1024


def test_the_body_limit_is_a_setting(caller: Caller, api: Flask) -> None:
    api.config["API_MAX_BODY_BYTES"] = 100
    payload = {"phone_numbers": ["+14155550101"] * 20, "template_id": 1}
    resp = caller.send(payload)
    assert resp.status_code == 413 and "100 bytes" in resp.get_json()["error"]["message"]


def test_deeply_nested_json_is_400_not_500(caller: Caller) -> None:
    resp = caller.send(b"[" * 100_000 + b"]" * 100_000)
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] == "InvalidParameter.Body" and "32 levels" in error["message"]


def test_body_cap_on_a_real_server(api: Flask, caller: Caller) -> None:
    """The same through werkzeug's HTTP server: a 30 MB Content-Length is answered
    before the body is sent; a chunked body is cut at the limit."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, api, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    headers = signed("not-the-key", b"") | {"X-SMS-AppId": caller.shop.app.sdk_app_id}
    try:
        with socket.create_connection(("127.0.0.1", server.server_port), timeout=10) as s:
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            s.sendall(f"POST /api/v1/sms/send HTTP/1.1\r\nHost: t\r\n{head}"
                      f"Content-Length: {30 * 1024 * 1024}\r\n\r\n".encode() + b"{" * 1024)
            assert s.recv(100).startswith(b"HTTP/1.1 413")

        def chunks() -> Iterator[bytes]:
            for _ in range(48):  # 3 MB
                yield b"[" * 65536

        conn = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        conn.request("POST", "/api/v1/sms/send", body=chunks(), headers=headers,
                     encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 413
        assert json.loads(resp.read())["error"]["code"] == "RequestTooLarge"
        conn.close()
    finally:
        server.shutdown()
def test_numbers_are_parsed_as_everywhere_else(caller: Caller) -> None:
    """Issue #8: the send API gives the parser's own message for a bad number."""
    from tests.number_cases import BAD, GOOD

    for region in ("mainland", "international"):
        wanted = [(r, e) for r, e in GOOD if e.startswith("+86") == (region == "mainland")]
        resp = caller.send({"phone_numbers": [r for r, _ in wanted] + [r for r, _ in BAD],
                            "template_id": caller.shop.templates[region],
                            "template_params": ["4321"]})
        results = resp.get_json()["send_status"]
        assert [(s["code"], s["phone_number"]) for s in results[:len(wanted)]] == [
            ("Ok", e) for _, e in wanted]
        assert [(s["code"], s["message"]) for s in results[len(wanted):]] == [
            ("InvalidParameterValue.IncorrectPhoneNumber", m) for _, m in BAD]


def test_the_sweeper_starts_the_nonce_record_of_a_restarted_redis(caller: Caller) -> None:
    """After a restart the record of used nonces begins at the sweeper's next pass,
    not at the first request (which was refused in its own second otherwise), and
    once begun it stays where it began."""
    redis_conn = caller.client.application.extensions["redis"]
    redis_conn.flushdb()
    nonces_began(redis_conn)
    began = int(redis_conn.get(NONCES_SINCE_KEY))
    assert began == int(redis_conn.time()[0]) + 1 or began == int(redis_conn.time()[0])
    redis_conn.set(NONCES_SINCE_KEY, began - 100)  # time passes
    nonces_began(redis_conn)
    assert int(redis_conn.get(NONCES_SINCE_KEY)) == began - 100
    ok = caller.send({"phone_numbers": ["+14155550101"],
                      "template_id": caller.shop.templates["international"],
                      "template_params": ["1"]})
    assert ok.status_code == 200


# --- app/api/fastpath.py: the send endpoint outside Flask -------------------------

FAST_PATH = "/api/v1/sms/send"


def _call(wsgi: Any, caller: Caller, body: bytes, **environ: Any
          ) -> tuple[str, dict[str, str], bytes]:
    """A request straight through a WSGI callable, as a server makes it."""
    headers = signed(caller.shop.app.app_key, body) | {"X-SMS-AppId": caller.shop.app.sdk_app_id}
    env = {"REQUEST_METHOD": "POST", "PATH_INFO": FAST_PATH, "RAW_URI": FAST_PATH,
           "SCRIPT_NAME": "", "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80",
           "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
           "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
           "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json",
           **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()
              if k != "Content-Type"}, **environ}
    got: list[Any] = []
    out = b"".join(wsgi(env, lambda status, hdrs, *a: got.append((status, hdrs))))
    status, hdrs = got[0]
    return status, dict(hdrs), out


def _flask_only(api: Flask) -> Any:
    """The Flask app behind the fast path (as any other path reaches it)."""
    wsgi = api.wsgi_app
    assert isinstance(wsgi, fastpath.SendFastPath)
    return wsgi.inner


def _payload(caller: Caller, **kw: Any) -> bytes:
    return json.dumps({"phone_numbers": ["+14155550101"],
                       "template_id": caller.shop.templates["international"],
                       "template_params": ["4321"], **kw}).encode()


def test_send_is_answered_outside_flask_as_flask_answers_it(caller: Caller, api: Flask) -> None:
    """Flask's hooks never run for it, and the answer has the same status, headers and
    JSON form as the Flask route's (compared on an error, whose body is fixed, and on
    a success, field by field)."""
    ran: list[str] = []
    api.before_request_funcs.setdefault(None, []).insert(0, lambda: ran.append("flask"))
    ok = caller.send(json.loads(_payload(caller)))
    assert ok.status_code == 200 and not ran
    wrong = json.dumps({"template_id": caller.shop.templates["international"]}).encode()
    fast = _call(api.wsgi_app, caller, wrong)
    slow = _call(_flask_only(api), caller, wrong)
    assert ran == ["flask"]  # the second went through Flask
    assert fast[0] == slow[0] == "400 BAD REQUEST"
    assert fast[2] == slow[2] and b'"code":"InvalidParameter' in fast[2]
    assert {k.lower(): v for k, v in fast[1].items()} == {
        k.lower(): v for k, v in slow[1].items()}
    good_fast = _call(api.wsgi_app, caller, _payload(caller))
    good_slow = _call(_flask_only(api), caller, _payload(caller))
    assert good_fast[0] == good_slow[0] == "200 OK"
    assert {k.lower() for k in good_fast[1]} == {k.lower() for k in good_slow[1]}
    shape = [sorted(json.loads(b)["send_status"][0]) for b in (good_fast[2], good_slow[2])]
    assert shape[0] == shape[1] and good_fast[2].endswith(b"\n")
    assert good_fast[2].index(b'"request_id"') < good_fast[2].index(b'"send_status"')


@pytest.mark.parametrize("length", ["9" * 5000, "-1", "1e3", "١٢"])
def test_a_content_length_it_cannot_read_goes_to_flask_not_a_500(
        caller: Caller, api: Flask, length: str) -> None:
    status, _h, body = _call(api.wsgi_app, caller, _payload(caller), CONTENT_LENGTH=length)
    assert not status.startswith("500"), body
    assert json.loads(body)["error"]["code"]


def test_a_body_shorter_than_its_length_is_400(caller: Caller, api: Flask) -> None:
    body = _payload(caller)
    status, _h, out = _call(api.wsgi_app, caller, body, CONTENT_LENGTH=str(len(body) + 10))
    assert status.startswith("400")
    assert json.loads(out)["error"]["code"] == "InvalidRequest"


def test_an_unexpected_error_is_a_logged_500_without_a_trace(
        caller: Caller, api: Flask, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    def broken(*_a: Any, **_k: Any) -> None:
        raise RuntimeError("secret detail")
    monkeypatch.setattr(fastpath, "send_core", broken)
    with caplog.at_level(logging.ERROR):
        status, headers, out = _call(api.wsgi_app, caller, _payload(caller))
    assert status.startswith("500") and headers["Content-Type"] == "application/json"
    assert json.loads(out)["error"]["code"] == "InternalError"
    assert b"secret detail" not in out and "secret detail" in caplog.text


class _Reset(io.RawIOBase):
    """A request body whose client went away mid-way (gunicorn raises from read)."""

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        raise ConnectionResetError("connection reset by peer")


def test_a_client_gone_mid_body_is_400_on_both_paths(caller: Caller, api: Flask,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The fast path answered it 500 and logged a stack trace (anyone could fill the
    log: the body is read before the signature is checked); Flask's route, 400."""
    with caplog.at_level(logging.ERROR):
        fast, slow = (_call(wsgi, caller, _payload(caller), **{"wsgi.input": _Reset()})
                      for wsgi in (api.wsgi_app, _flask_only(api)))
    assert fast == slow and fast[0] == "400 BAD REQUEST", (fast, slow)
    assert "Traceback" not in caplog.text


def test_headers_the_signature_check_cannot_use_are_401_not_500(
        caller: Caller, api: Flask, caplog: pytest.LogCaptureFixture) -> None:
    """A non-ASCII X-SMS-Signature (gunicorn hands header bytes over as latin-1, so one
    byte 0xE9 is 'é') made hmac.compare_digest raise TypeError, and an X-SMS-AppId or
    X-SMS-SecretId holding NUL reached the query, which PostgreSQL refuses: both were a
    500 with a stack trace in the log, for anyone, before any key was known. On the
    fast path, the Flask route and the management API alike."""
    odd = ({"HTTP_X_SMS_SIGNATURE": "\u00e9" * 64}, {"HTTP_X_SMS_APPID": "a\x00b"})
    with caplog.at_level(logging.ERROR):
        for wsgi in (api.wsgi_app, _flask_only(api)):
            for env in odd:
                status, _h, out = _call(wsgi, caller, _payload(caller), **env)
                assert (status, json.loads(out)["error"]["code"]) == (
                    "401 UNAUTHORIZED", "AuthFailure.SignatureFailure"), (env, out)
        for header, value in (("X-SMS-Signature", "\u00e9" * 64), ("X-SMS-SecretId", "a\x00b")):
            headers = signed("irrelevant", b"", method="GET", target="/api/v1/apps")
            resp = caller.client.get("/api/v1/apps", headers=headers | {
                "X-SMS-SecretId": "AKIDnope", header: value})
            assert (resp.status_code, resp.get_json()["error"]["code"]) == (
                401, "AuthFailure.SignatureFailure"), header
    assert "Traceback" not in caplog.text and not caplog.records


def test_a_serial_number_holding_nul_is_404_not_500(caller: Caller,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """GET /api/v1/sms/messages/%00abc (servers decode the path) reached the query,
    which PostgreSQL refuses: a 500 with a stack trace, under gunicorn and granian."""
    with caplog.at_level(logging.ERROR):
        resp = caller.get("%00abc")
    assert (resp.status_code, resp.get_json()["error"]["code"]) == (404, "NotFound")
    assert not caplog.records


def test_a_nonce_ending_in_a_line_break_is_refused(caller: Caller, api: Flask) -> None:
    """The nonce's pattern ended in `$`, which also matches before a final line break,
    so "n0nce-123\\n" passed as a nonce of its own. The signed text joins its parts with
    line breaks, so a request whose body began with one could be sent again with that
    line break moved from the body into the nonce: the same signature, a nonce never
    used. (gunicorn and granian strip header values; the WSGI layer must not rely on it.)"""
    body = b"\n" + _payload(caller)
    headers = signed(caller.shop.app.app_key, body, nonce="n0nce-123") | {
        "X-SMS-AppId": caller.shop.app.sdk_app_id}
    assert caller.client.post(FAST_PATH, data=body, headers=headers).status_code == 200
    env = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()
           if k != "Content-Type"} | {"HTTP_X_SMS_NONCE": "n0nce-123\n"}
    for wsgi in (api.wsgi_app, _flask_only(api)):
        status, _h, out = _call(wsgi, caller, body[1:], **env)
        assert (status, json.loads(out).get("error", {}).get("code")) == (
            "401 UNAUTHORIZED", "AuthFailure.BadNonce"), out  # was 200: sent again
