"""After acceptance: batches submitted by a real RQ worker, receipts, callbacks."""

from __future__ import annotations

import hashlib
import hmac
import json
import multiprocessing
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app
from app.models import CallbackAttempt, Message
from app.queue import enqueue_deferred
from app.services import app_config
from app.services.limits import Check, Limiter
from jobs import worker
from tests.conftest import Backend
from tests.sending.conftest import Shop


@pytest.fixture
def runner(backend: Backend, session: Session, tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "SIMULATOR_RECEIPT_DELAY_S": 0, "ALLOW_PRIVATE_CALLBACKS": True})
    yield app
    app.extensions["db"].engine.dispose()


def _run(shop: Shop, session: Session, app: Flask) -> None:
    session.commit()
    enqueue_deferred(app.extensions["redis"], shop.ctx.deferred)
    assert worker.run(app, burst=True)
    session.expire_all()


def _status(session: Session, serial: str) -> tuple[str, str | None, str | None]:
    m = session.scalar(select(Message).where(Message.serial_no == serial))
    return m.status, m.error_code, m.carrier_code


def test_simulator_outcomes_through_a_real_worker(shop: Shop, session: Session,
                                                  runner: Flask) -> None:
    results = shop.send(["+14155550101", "+14155550102", "+14155550103", "+14155550104"])
    _run(shop, session, runner)
    assert [_status(session, r.serial_no) for r in results] == [
        ("delivered", None, "DELIVRD"),
        ("failed", "FailedOperation.GatewayRejected", "MK:0012"),
        ("failed", "FailedOperation.Undelivered", "UNDELIV"),
        ("submitted", None, None),
    ]


def test_a_retried_job_never_submits_twice(shop: Shop, session: Session,
                                           runner: Flask) -> None:
    from jobs import runtime
    from jobs import sending as sending_job

    [r] = shop.send(["+14155550104"])
    session.commit()
    runtime.use(runner)
    ids = list(session.scalars(select(Message.id)))
    sending_job.submit(ids)
    session.expire_all()
    first = session.scalar(select(Message.gateway_message_id))
    sending_job.submit(ids)  # as if RQ ran the job again
    session.expire_all()
    assert session.scalar(select(Message.gateway_message_id)) == first
    assert _status(session, r.serial_no)[0] == "submitted"


class Receiver:
    """A customer's callback endpoint on loopback."""

    def __init__(self, status: int = 200) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(outer.status)
                if outer.status == 302:
                    self.send_header("Location", "http://169.254.169.254/latest")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/receipts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_receipts_are_posted_signed_with_the_app_key(shop: Shop, session: Session,
                                                     runner: Flask) -> None:
    receiver = Receiver()
    app_config.set_callback(shop.ctx.__class__(shop.ctx.db, shop.ctx.actor,
                                               shop.ctx.settings.__class__(
                                                   allow_private_callbacks=True)),
                            shop.app.sdk_app_id, receiver.url)
    [r] = shop.send(["+14155550101"], session_context="order-42")
    _run(shop, session, runner)
    [(headers, body)] = receiver.requests
    signed = headers["x-sms-timestamp"].encode() + b"\n" + body
    expected = hmac.new(shop.app.app_key.encode(), signed, hashlib.sha256).hexdigest()
    assert headers["x-sms-signature"] == expected and headers["x-sms-appid"] == shop.app.sdk_app_id
    assert abs(int(headers["x-sms-timestamp"]) - time.time()) < 60
    payload = json.loads(body)
    assert payload["serial_no"] == r.serial_no and payload["status"] == "delivered"
    assert payload["session_context"] == "order-42" and payload["carrier_code"] == "DELIVRD"
    attempt = session.scalar(select(CallbackAttempt))
    assert (attempt.attempt, attempt.status_code, attempt.error) == (1, 200, None)
    receiver.server.shutdown()


def test_every_final_state_is_posted(shop: Shop, session: Session, runner: Flask) -> None:
    """Found from outside: a message the carrier refused at submission (a final state:
    failed) was never posted to the status callback; only receipts were."""
    receiver = Receiver()
    shop.app.status_callback_url = receiver.url
    sent = shop.send(["+14155550101", "+14155550102", "+14155550103"])
    _run(shop, session, runner)
    posted = {json.loads(body)["serial_no"]: json.loads(body)["status"]
              for _h, body in receiver.requests}
    assert posted == {sent[0].serial_no: "delivered", sent[1].serial_no: "failed",
                      sent[2].serial_no: "failed"}
    receiver.server.shutdown()


def test_a_disabled_application_sends_nothing_it_accepted_before(
        shop: Shop, session: Session, runner: Flask) -> None:
    """Found from outside: messages accepted before their application was disabled
    still went out. SPEC.md: a disabled application sends nothing. They end failed
    (AppDisabled), posted to the status callback, and nothing reaches the carrier."""
    from app.services import apps, sending
    from jobs import runtime
    from jobs import sending as sending_job

    receiver = Receiver()
    shop.app.status_callback_url = receiver.url
    app_config.set_frequency(shop.ctx, shop.app.sdk_app_id, {
        "30s": (False, 1), "hour": (True, 1), "day": (False, 10)})
    sent = shop.send(["+14155550101", "+14155550103"])
    other, _key = apps.create_app(shop.ctx, name="Other")  # in the same batch, still sent
    [kept] = sending.send(shop.ctx, shop.limiter, other.sdk_app_id, sending.SendRequest(
        ["+14155550101"], shop.templates["international"], ["123456"]))[1]
    apps.set_enabled(shop.ctx, shop.app.sdk_app_id, False)
    session.commit()
    _run(shop, session, runner)
    assert [_status(session, r.serial_no) for r in sent] == [
        ("failed", "FailedOperation.AppDisabled", None)] * 2
    assert _status(session, kept.serial_no)[0] == "delivered"
    assert session.scalars(select(Message.gateway_message_id).where(
        Message.app_id == shop.app.id)).all() == [None, None]  # never reached the carrier
    assert {json.loads(body)["serial_no"]: json.loads(body)["status"]
            for _h, body in receiver.requests} == dict.fromkeys(
        [r.serial_no for r in sent], "failed")
    apps.set_enabled(shop.ctx, shop.app.sdk_app_id, True)  # enabling again sends nothing old
    session.commit()
    runtime.use(runner)
    assert sending_job.drain() == 0
    # Never billed: their units came back (the hour's one send per number is free again).
    assert shop.codes(["+14155550101"]) == ["Ok"]
    receiver.server.shutdown()


def test_a_message_the_carrier_refuses_gives_back_what_it_reserved(
        shop: Shop, session: Session, runner: Flask) -> None:
    """Found from outside: a message the carrier refused at submission (never billed:
    SPEC.md §7 bills what the carrier accepted) kept its credit, its daily-limit units
    and its frequency units, so the limit alarm said "50 of 50" with 49 billed, and the
    customer paid for nothing. They come back once the refusal is recorded."""
    from datetime import timedelta

    from app.db import utcnow
    from app.models import Account, CreditPackage
    from app.services import sending

    session.add(CreditPackage(account_id=shop.app.account_id, name="p", size=10,
                              remaining=10, expires_at=utcnow() + timedelta(days=30)))
    app_config.set_thresholds(shop.ctx, shop.app.sdk_app_id, "mainland", alarm_threshold=None,
                              daily_limit=5)
    app_config.set_frequency(shop.ctx, shop.app.sdk_app_id, {
        "30s": (False, 1), "hour": (True, 1), "day": (False, 10)})
    sent = shop.send(["+8613900000001", "+8613900000002"], template="mainland",
                     params=["1000"])  # delivered; refused by the carrier (MK:0012)
    assert [r.code for r in sent] == ["Ok", "Ok"]
    _run(shop, session, runner)
    assert [_status(session, r.serial_no)[:2] for r in sent] == [
        ("delivered", None), ("failed", "FailedOperation.GatewayRejected")]
    session.expire_all()
    assert session.scalar(select(CreditPackage.remaining)) == 9  # one billed item, paid once
    day, _local = sending._local_day(session.get(Account, shop.app.account_id), utcnow())
    assert shop.limiter.used(sending.app_day_key(shop.app.id, "mainland", day)) == 1
    # The refused number may be sent to again within the hour; the delivered one not.
    again = shop.send(["+8613900000002", "+8613900000001"], template="mainland",
                      params=["1001"])
    assert [r.code for r in again] == ["Ok", "LimitExceeded.PhoneNumberOneHourLimit"]


@pytest.mark.parametrize("status", [500, 302])
def test_failed_callbacks_are_logged_and_retried(shop: Shop, session: Session, runner: Flask,
                                                 status: int,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    """The log names the callback's host only: found from outside, a token in its path or
    query (the usual webhook secret) was written to the log at every failed try."""
    import logging

    from rq import Queue

    from jobs import callbacks as callback_jobs
    from jobs import runtime

    receiver = Receiver(status)
    shop.app.status_callback_url = receiver.url.rstrip("/") + "/hook/p4th-s3cret?token=SECRET123"
    shop.send(["+14155550101"])
    _run(shop, session, runner)
    attempt = session.scalar(select(CallbackAttempt))
    assert attempt.status_code == status and attempt.error == f"HTTP {status}"
    assert len(receiver.requests) == 1  # a redirect is never followed
    queue = Queue("default", connection=runner.extensions["redis"])
    assert len(queue.scheduled_job_registry.get_job_ids()) == 1  # the retry, with back-off
    # The job again, in this process, to read what it logs and raises.
    runtime.use(runner)
    with caplog.at_level(logging.WARNING), pytest.raises(callback_jobs.CallbackFailed) as e:
        callback_jobs.status(attempt.message_id)
    assert f"status callback http://127.0.0.1:{receiver.server.server_port}/… " in caplog.text
    said = caplog.text + str(e.value)
    assert "s3cret" not in said and "SECRET123" not in said
    receiver.server.shutdown()


def test_callback_to_a_private_address_is_refused_at_send_time(
    shop: Shop, session: Session, runner: Flask
) -> None:
    runner.config["ALLOW_PRIVATE_CALLBACKS"] = False
    receiver = Receiver()
    shop.app.status_callback_url = receiver.url  # saved when it was allowed
    shop.send(["+14155550101"])
    _run(shop, session, runner)
    assert receiver.requests == []
    attempt = session.scalar(select(CallbackAttempt))
    assert attempt.status_code is None and attempt.error.startswith("refused: 127.0.0.1")
    receiver.server.shutdown()


def _race(url: str, key: str, tries: int, out: Any) -> None:
    limiter = Limiter(redis.Redis.from_url(url))
    won = 0
    for n in range(tries):
        check = Check(key, "c", 30, 1, 60_000, "LimitExceeded.PhoneNumberDailyLimit")
        window = Check(key + ":w", "w", 25, 1, 60_000, "LimitExceeded.PhoneNumberOneHourLimit",
                       member=f"{multiprocessing.current_process().pid}-{n}")
        if limiter.reserve([check, window], 1_000) is None:
            won += 1
    out.put(won)


def test_two_processes_racing_cannot_overshoot(backend: Backend) -> None:
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    racers = [ctx.Process(target=_race, args=(backend.redis_url, "smsops:test:race", 40, out))
              for _ in range(2)]
    for p in racers:
        p.start()
    for p in racers:
        p.join(timeout=60)
    assert out.get(timeout=5) + out.get(timeout=5) == 25  # the tighter of the two limits


def test_replies_are_posted_to_the_reply_callback(shop: Shop, session: Session,
                                                  runner: Flask) -> None:
    from app.models import Account
    from app.services import replies

    receiver = Receiver()
    account = session.get(Account, shop.app.account_id)
    account.reply_callback_url, account.reply_callback_enabled = receiver.url, True
    [r] = shop.send(["+14155550101"], session_context="order-7")
    _run(shop, session, runner)  # delivered
    shop.ctx.deferred.clear()
    replies.receive(shop.ctx, "+14155550101", "TD")
    _run(shop, session, runner)
    [(headers, body)] = receiver.requests
    payload = json.loads(body)
    assert payload == {"sdk_app_id": shop.app.sdk_app_id, "phone_number": "+14155550101",
                       "text": "TD", "unsubscribed": True, "serial_no": r.serial_no,
                       "session_context": "order-7", "received_at": payload["received_at"]}
    signed = headers["x-sms-timestamp"].encode() + b"\n" + body
    expected = hmac.new(shop.app.app_key.encode(), signed, hashlib.sha256).hexdigest()
    assert headers["x-sms-signature"] == expected
    # Found from outside: a reply from a number the account never sent to was kept and
    # never posted. It is, with no application, signed as the header says.
    shop.ctx.deferred.clear()
    replies.receive(shop.ctx, "+14155559999", "who is this?")
    _run(shop, session, runner)
    headers, body = receiver.requests[1]
    payload = json.loads(body)
    assert (payload["sdk_app_id"], payload["text"], payload["serial_no"]) == (
        None, "who is this?", None)
    assert headers["x-sms-appid"] == shop.app.sdk_app_id
    signed = headers["x-sms-timestamp"].encode() + b"\n" + body
    assert headers["x-sms-signature"] == hmac.new(shop.app.app_key.encode(), signed,
                                                  hashlib.sha256).hexdigest()
    receiver.server.shutdown()


def test_a_refused_message_s_credit_goes_back_to_the_package_it_was_taken_from(
        shop: Shop, session: Session, runner: Flask) -> None:
    """Found from outside: the credit of a message the carrier refused went back to the
    earliest-expiring package with room, not to the one that paid: a package that was
    empty at the send (so a later one paid) gained an item, and the later one lost it
    for good when the earlier expired. Nor may a message sent while nothing was metered
    put an item into a package bought afterwards."""
    from datetime import timedelta

    from app.db import utcnow
    from app.models import CreditPackage

    soon = CreditPackage(account_id=shop.app.account_id, name="soon", size=10, remaining=0,
                         expires_at=utcnow() + timedelta(days=5))
    later = CreditPackage(account_id=shop.app.account_id, name="later", size=10,
                          remaining=10, expires_at=utcnow() + timedelta(days=30))
    session.add_all([soon, later])
    session.flush()
    sent = shop.send(["+8613900000002"], template="mainland", params=["1000"])
    assert [r.code for r in sent] == ["Ok"]
    _run(shop, session, runner)
    assert _status(session, sent[0].serial_no)[:2] == (
        "failed", "FailedOperation.GatewayRejected")
    assert (session.get(CreditPackage, soon.id).remaining,
            session.get(CreditPackage, later.id).remaining) == (0, 10)


def test_a_message_sent_unmetered_puts_nothing_into_a_package_bought_later(
        shop: Shop, session: Session, runner: Flask) -> None:
    from datetime import timedelta

    from app.db import utcnow
    from app.models import CreditPackage

    sent = shop.send(["+8613900000002"], template="mainland", params=["1000"])
    assert [r.code for r in sent] == ["Ok"]
    bought = CreditPackage(account_id=shop.app.account_id, name="new", size=10, remaining=5,
                           expires_at=utcnow() + timedelta(days=30))
    session.add(bought)
    _run(shop, session, runner)
    assert _status(session, sent[0].serial_no)[0] == "failed"
    assert session.get(CreditPackage, bought.id).remaining == 5
