"""POST /api/v1/sms/send and GET /api/v1/sms/messages/<serial_no>: the contract."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app import create_app
from tests.conftest import Backend
from tests.sending.conftest import Shop


@pytest.fixture
def api(backend: Backend, session: Session, tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x"})
    yield app
    app.extensions["db"].engine.dispose()


def signed(key: str, body: bytes, *, ts: int | None = None,
           nonce: str | None = None) -> dict[str, str]:
    ts_text = str(ts if ts is not None else int(time.time()))
    nonce = nonce or uuid.uuid4().hex
    digest = hmac.new(key.encode(), ts_text.encode() + b"\n" + nonce.encode() + b"\n" + body,
                      hashlib.sha256).hexdigest()
    return {"X-SMS-Timestamp": ts_text, "X-SMS-Nonce": nonce, "X-SMS-Signature": digest,
            "Content-Type": "application/json"}


class Caller:
    def __init__(self, client: FlaskClient, shop: Shop) -> None:
        self.client, self.shop = client, shop

    def send(self, payload: object, **kw: object):  # type: ignore[no-untyped-def]
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = signed(self.shop.app.app_key, body, **kw)  # type: ignore[arg-type]
        headers["X-SMS-AppId"] = self.shop.app.sdk_app_id
        return self.client.post("/api/v1/sms/send", data=body, headers=headers)

    def get(self, serial: str):  # type: ignore[no-untyped-def]
        headers = signed(self.shop.app.app_key, b"")
        headers["X-SMS-AppId"] = self.shop.app.sdk_app_id
        return self.client.get(f"/api/v1/sms/messages/{serial}", headers=headers)


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
])
def test_bad_bodies_are_400_with_a_code(caller: Caller, body: bytes, code: str) -> None:
    resp = caller.send(body)
    assert resp.status_code == 400 and resp.get_json()["error"]["code"] == code


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
    assert set(doc["paths"]) == {"/api/v1/sms/send", "/api/v1/sms/messages/{serial_no}"}
    from openapi_spec_validator import validate

    validate(doc)


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
