"""The send API's group commit (app/api/groupcommit.py): requests that arrive while a
transaction is being written are written together in the next one; one request that
cannot be written fails alone, with its reservations given back; an answer always
matches what committed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from app.models import Message
from app.services import app_config
from tests.api.test_send_api import Caller, signed
from tests.conftest import Backend
from tests.sending.conftest import Shop

POISON = "+14155550666"  # a number the database refuses to store (a trigger, below)


def _until(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def callers(api: Flask, shop: Shop, session: Session) -> Iterator[list[Caller]]:
    session.commit()
    yield [Caller(api.test_client(), shop) for _ in range(6)]


class WriterHeld:
    """Holds the message table locked from another connection, so the group commit's
    writer stops at its INSERT and the requests behind it queue up (a real lock in the
    real database, not a stand-in)."""

    def __init__(self, backend: Backend) -> None:
        self.conn = backend.db.engine.connect()
        self.backend = backend

    def __enter__(self) -> WriterHeld:
        if self.backend.name == "postgresql":
            self.conn.execute(text("LOCK TABLE message IN EXCLUSIVE MODE"))
        else:
            self.conn.exec_driver_sql("BEGIN IMMEDIATE")  # SQLite's one writer
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.rollback()
        self.conn.close()


def _body(shop: Shop, number: str) -> dict[str, Any]:
    return {"phone_numbers": [number], "template_id": shop.templates["international"],
            "template_params": ["4321"]}


def _send_held(api: Flask, backend: Backend, callers: list[Caller],
               numbers: list[str]) -> list[Any]:
    """The first number's request is taken by the writer, which then waits at the lock;
    the others queue behind it; then the lock goes. Returns the answers in order."""
    out: list[Any] = [None] * len(numbers)

    def one(i: int) -> None:
        out[i] = callers[i].send(_body(callers[i].shop, numbers[i]))
    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(numbers))]
    queue = api.extensions["api_group_commit"]._queue
    with WriterHeld(backend):
        threads[0].start()
        _until(lambda: api.extensions["api_group_commit"]._pending == 1, "the first taken")
        for t in threads[1:]:
            t.start()
        _until(lambda: queue.qsize() == len(numbers) - 1, "the others queued")
    for t in threads:
        t.join(30)
    return out


def test_requests_waiting_for_a_transaction_share_the_next_one(
        api: Flask, backend: Backend, callers: list[Caller], session: Session) -> None:
    assert callers[0].send(_body(callers[0].shop, "+14155550100")).status_code == 200
    commits: list[int] = []
    event.listen(api.extensions["db"].engine, "commit", lambda conn: commits.append(1))
    numbers = [f"+1415555010{i}" for i in range(1, 7)]
    out = _send_held(api, backend, callers, numbers)
    assert [r.status_code for r in out] == [200] * 6
    assert [r.get_json()["send_status"][0]["code"] for r in out] == ["Ok"] * 6
    assert len(commits) == 2  # the held one, then the five together
    session.expire_all()
    stored = set(session.scalars(select(Message.phone_number)))
    assert stored == {"+14155550100", *numbers}
    answered = {r.get_json()["send_status"][0]["serial_no"] for r in out}
    assert answered <= set(session.scalars(select(Message.serial_no)))


@pytest.fixture
def poisoned(backend: Backend, session: Session) -> Iterator[None]:
    """The database refuses to store one number: a write that fails in the database
    itself, as a full disk or a constraint would."""
    with backend.db.engine.begin() as conn:
        if backend.name == "postgresql":
            conn.execute(text(
                "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.phone_number = '{POISON}' THEN RAISE EXCEPTION 'refused'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER poison BEFORE INSERT ON message FOR EACH ROW "
                              "EXECUTE FUNCTION refuse_poison()"))
        else:
            conn.execute(text(
                "CREATE TRIGGER poison BEFORE INSERT ON message FOR EACH ROW WHEN "
                f"NEW.phone_number = '{POISON}' BEGIN SELECT RAISE(ABORT, 'refused'); END"))
    yield
    session.rollback()  # its reads hold a lock the DROP needs
    with backend.db.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER poison" + (" ON message" if backend.name ==
                                                   "postgresql" else "")))
        if backend.name == "postgresql":
            conn.execute(text("DROP FUNCTION refuse_poison()"))


def test_a_request_that_cannot_be_written_fails_alone_and_gives_its_limits_back(
        api: Flask, backend: Backend, callers: list[Caller], shop: Shop, session: Session,
        poisoned: None) -> None:
    app_config.set_thresholds(shop.ctx, shop.app.sdk_app_id, "international",
                              alarm_threshold=None, daily_limit=50)
    session.commit()
    assert callers[0].send(_body(shop, "+14155550100")).status_code == 200
    out = _send_held(api, backend, callers, ["+14155550101", "+14155550102", POISON,
                                             "+14155550103", "+14155550104", "+14155550105"])
    codes = [(r.status_code, (r.get_json().get("error") or {}).get("code")) for r in out]
    assert codes[2] == (503, "InternalError.Unavailable")
    assert [c for i, c in enumerate(codes) if i != 2] == [(200, None)] * 5
    session.expire_all()
    assert POISON not in set(session.scalars(select(Message.phone_number)))
    assert session.scalar(select(func.count()).select_from(Message)) == 6
    # Six messages of one billed item each are counted against the day; the refused
    # request's reservation was given back.
    day = next(iter(backend.redis.scan_iter("smsops:day:app:*:international:*")))
    assert int(backend.redis.get(day) or 0) == 6


def test_the_answer_lists_what_was_stored(api: Flask, callers: list[Caller], shop: Shop,
                                          session: Session) -> None:
    resp = callers[0].send({"phone_numbers": ["+14155550101", "+999", "+14155550101"],
                            "template_id": shop.templates["international"],
                            "template_params": ["4321"]})
    assert resp.status_code == 200
    answered = {s["serial_no"]: s["code"] for s in resp.get_json()["send_status"]}
    session.expire_all()
    stored = {m.serial_no: m.error_code or "Ok" for m in session.scalars(select(Message))}
    assert answered == stored
    assert sorted(answered.values()) == ["InvalidParameterValue.IncorrectPhoneNumber"] * 2 \
        + ["Ok"]


def test_web_and_slack_sends_settle_in_their_own_transaction(shop: Shop,
                                                             session: Session) -> None:
    """`sending.send` is prepare + settle in the caller's transaction: nothing is
    written until the caller commits."""
    other = shop.ctx.db.get_bind()
    [r] = shop.send(["+14155550101"])
    assert r.code == "Ok"
    with Session(other) as outside:
        assert outside.scalar(select(func.count()).select_from(Message)) == 0
    session.commit()
    with Session(other) as outside:
        assert outside.scalar(select(Message.serial_no)) == r.serial_no


def test_a_request_not_written_is_told_to_be_signed_again(
        api: Flask, callers: list[Caller], shop: Shop, poisoned: None) -> None:
    """The 503 said "Nothing was sent ... Try again.", but its nonce is used up (it
    must be: a captured copy must not be sent later): the same request again was
    refused as "This nonce was used already.", which reads as if it had been sent.
    The answer says to sign it again."""
    body = json.dumps(_body(shop, POISON)).encode()
    headers = signed(shop.app.app_key, body) | {"X-SMS-AppId": shop.app.sdk_app_id}
    first = callers[0].client.post("/api/v1/sms/send", data=body, headers=headers)
    error = first.get_json()["error"]
    assert (first.status_code, error["code"]) == (503, "InternalError.Unavailable")
    assert "sign" in error["message"].lower() and "nonce" in error["message"].lower(), error
    again = callers[0].client.post("/api/v1/sms/send", data=body, headers=headers)
    assert again.get_json()["error"]["code"] == "AuthFailure.ReplayedNonce"
