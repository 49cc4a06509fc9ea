"""The send API's Idempotency-Key: a client that timed out and sends again must not
send twice. The header was accepted and ignored, so a retry (signed again, with a new
nonce, as it must be) sent every number a second time."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.api import group_commit_of
from app.db import utcnow
from app.models import Message, SendReply
from app.services import app_config, apps, retention
from tests.api.test_group_commit import WriterHeld, _until
from tests.api.test_send_api import Caller, signed
from tests.conftest import Backend
from tests.sending.conftest import Shop


def _body(shop: Shop, *numbers: str) -> dict[str, Any]:
    return {"phone_numbers": list(numbers), "template_id": shop.templates["international"],
            "template_params": ["4321"]}


def _send(caller: Caller, payload: dict[str, Any], key: str | None, *,
          shop: Shop | None = None) -> Any:
    shop = shop or caller.shop
    body = json.dumps(payload).encode()
    headers = signed(shop.app.app_key, body) | {"X-SMS-AppId": shop.app.sdk_app_id}
    if key is not None:
        headers["Idempotency-Key"] = key
    return caller.client.post("/api/v1/sms/send", data=body, headers=headers)


def _count(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Message)) or 0


def test_a_retry_with_the_same_key_gets_the_first_answer_and_sends_nothing(
        caller: Caller, session: Session) -> None:
    payload = _body(caller.shop, "+14155550101", "+14155550102", "+999")
    first = _send(caller, payload, "order-1234")
    assert first.status_code == 200
    assert "Idempotent-Replayed" not in first.headers
    again = _send(caller, payload, "order-1234")
    assert again.status_code == 200
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert again.get_json() == first.get_json()  # the same serial numbers, codes, fees
    assert _count(session) == 3
    # Without a key each request sends, as before.
    assert _send(caller, payload, None).status_code == 200
    assert _count(session) == 6


def test_the_same_key_with_another_body_is_refused(caller: Caller, session: Session) -> None:
    assert _send(caller, _body(caller.shop, "+14155550101"), "k-1").status_code == 200
    other = _send(caller, _body(caller.shop, "+14155550199"), "k-1")
    assert other.status_code == 422
    assert other.get_json()["error"]["code"] == "IdempotencyKeyReused"
    assert _count(session) == 1


@pytest.mark.parametrize("key", ["", "x" * 129, "caf\u00e9", "a b"])
def test_a_malformed_key_is_400_and_sends_nothing(caller: Caller, session: Session,
                                                  key: str) -> None:
    payload = json.dumps(_body(caller.shop, "+14155550101")).encode()
    headers = signed(caller.shop.app.app_key, payload) | {
        "X-SMS-AppId": caller.shop.app.sdk_app_id,
        "Idempotency-Key": key.encode("utf-8").decode("latin-1")}
    resp = caller.client.post("/api/v1/sms/send", data=payload, headers=headers)
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["error"]["code"] == "InvalidParameter.IdempotencyKey"
    assert _count(session) == 0


def test_a_replay_still_needs_a_valid_signature_and_uses_its_nonce(
        caller: Caller, session: Session) -> None:
    payload = _body(caller.shop, "+14155550101")
    assert _send(caller, payload, "k-2").status_code == 200
    body = json.dumps(payload).encode()
    headers = signed(caller.shop.app.app_key, body) | {
        "X-SMS-AppId": caller.shop.app.sdk_app_id, "Idempotency-Key": "k-2"}
    forged = dict(headers, **{"X-SMS-Signature": "0" * 64})
    resp = caller.client.post("/api/v1/sms/send", data=body, headers=forged)
    assert resp.status_code == 401
    assert caller.client.post("/api/v1/sms/send", data=body, headers=headers).status_code == 200
    replayed = caller.client.post("/api/v1/sms/send", data=body, headers=headers)
    assert replayed.get_json()["error"]["code"] == "AuthFailure.ReplayedNonce"


def test_keys_belong_to_one_application(caller: Caller, shop: Shop, session: Session) -> None:
    other_app, _key = apps.create_app(shop.ctx, name="Other")
    other = Shop(shop.ctx, other_app, shop.limiter, shop.templates, shop.signatures)
    session.commit()
    assert _send(caller, _body(shop, "+14155550101"), "same").status_code == 200
    resp = _send(caller, _body(other, "+14155550101"), "same", shop=other)
    assert resp.status_code == 200 and "Idempotent-Replayed" not in resp.headers
    assert _count(session) == 2


def test_a_key_is_kept_a_day_then_forgotten(caller: Caller, session: Session) -> None:
    payload = _body(caller.shop, "+14155550101")
    assert _send(caller, payload, "k-3").status_code == 200
    session.execute(update(SendReply).values(created_at=utcnow() - timedelta(hours=25)))
    session.commit()
    again = _send(caller, payload, "k-3")
    assert again.status_code == 200 and "Idempotent-Replayed" not in again.headers
    assert _count(session) == 2
    session.execute(update(SendReply).values(created_at=utcnow() - timedelta(hours=25)))
    session.commit()
    assert retention.purge_send_replies(session, utcnow()) == 1
    session.commit()
    assert session.scalar(select(func.count()).select_from(SendReply)) == 0


@pytest.mark.parametrize("first_key", ["racing", "another"])
def test_concurrent_retries_with_one_key_send_once(api: Flask, backend: Backend,
                                                   caller: Caller, session: Session,
                                                   first_key: str) -> None:
    """Requests with one key that arrive together: the writer is held on a first request
    (of the same key, or another), and the rest wait for the next transaction. Only one
    request of the key writes; the others are answered with what it wrote, their
    reservations given back."""
    app_config.set_thresholds(caller.shop.ctx, caller.shop.app.sdk_app_id, "international",
                              alarm_threshold=None, daily_limit=50)
    session.commit()
    payload = _body(caller.shop, "+14155550101", "+14155550102")
    callers = [Caller(api.test_client(), caller.shop) for _ in range(3)]
    out: list[Any] = [None] * 3

    def one(i: int) -> None:
        if i == 0 and first_key != "racing":
            out[i] = _send(callers[i], _body(caller.shop, "+14155550109"), first_key)
        else:
            out[i] = _send(callers[i], payload, "racing")
    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    writer = group_commit_of(api)
    with WriterHeld(backend):
        threads[0].start()
        _until(lambda: writer._pending == 1, "the first taken")
        for t in threads[1:]:
            t.start()
        _until(lambda: writer._queue.qsize() == 2, "the others queued")
    for t in threads:
        t.join(30)
    assert [r.status_code for r in out] == [200, 200, 200]
    keyed = out if first_key == "racing" else out[1:]
    answers = [r.get_json() for r in keyed]
    assert all(a == answers[0] for a in answers)
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in keyed) == \
        len(keyed) - 1
    extra = 0 if first_key == "racing" else 1
    assert _count(session) == 2 + extra
    # The others' frequency and daily reservations went back: each number counted once.
    day = next(iter(backend.redis.scan_iter("smsops:day:app:*:international:*")))
    assert int(backend.redis.get(day) or 0) == 2 + extra


def test_one_key_racing_in_two_processes_is_answered_from_the_first(
        api: Flask, backend: Backend, caller: Caller, session: Session, tmp_path: Any) -> None:
    """Two web processes (two apps, each with its own group commit) settle one key at
    once: neither sees the other's uncommitted answer, and the unique key makes the
    second wait, then refuses it. The second is settled again and answered from the
    first's stored reply; it was a 503 "nothing was sent"."""
    if backend.name != "postgresql":
        pytest.skip("two writers at once: SQLite has one")
    from app import create_app

    other = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                        "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x"})
    try:
        payload = _body(caller.shop, "+14155550101")
        first, second = Caller(api.test_client(), caller.shop), \
            Caller(other.test_client(), caller.shop)
        out: list[Any] = [None, None]
        writers = [group_commit_of(api), group_commit_of(other)]

        def one(i: int) -> None:
            out[i] = _send([first, second][i], payload, "racing")
        threads = [threading.Thread(target=one, args=(i,)) for i in range(2)]
        with WriterHeld(backend):
            for i, t in enumerate(threads):
                t.start()
                _until(lambda i=i: writers[i]._pending == 1, f"writer {i} busy")
        for t in threads:
            t.join(30)
        assert [r.status_code for r in out] == [200, 200], [r.get_json() for r in out]
        assert out[1].get_json() == out[0].get_json()
        assert out[1].headers.get("Idempotent-Replayed") == "true"
        assert _count(session) == 1
    finally:
        other.extensions["db"].engine.dispose()
