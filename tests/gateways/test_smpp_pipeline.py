"""With SMSOPS_GATEWAY=smpp: a message goes out through a real RQ worker to the
SMSC, its receipt comes back on the listener's bind, and a reply unsubscribes."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import create_app
from app.gateways.base import GatewayUnavailable
from app.models import Message, Reply, Unsubscribe
from app.models.sending import MessagePart
from app.queue import DRAIN_JOB, enqueue_deferred, wake
from jobs import runtime, worker
from jobs.listeners import smpp_listener
from jobs.sending import drain, sweep_once
from tests.conftest import Backend
from tests.sending.conftest import Shop
from tests.smsc import SMSC, taken_per_destination


@pytest.fixture
def smsc() -> Iterator[SMSC]:
    server = SMSC()
    yield server
    server.close()


@pytest.fixture
def smpp_app(backend: Backend, session: Session, tmp_path: Path, smsc: SMSC) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x", "GATEWAY": "smpp",
                      "SMPP_PORT": smsc.port, "SMPP_SYSTEM_ID": "smsops"})
    yield app
    app.extensions["db"].engine.dispose()


def test_send_receipt_and_reply_over_smpp(shop: Shop, session: Session, smpp_app: Flask,
                                          smsc: SMSC) -> None:
    listener = smpp_listener(smpp_app)
    threading.Thread(target=listener.run, daemon=True).start()
    smsc.wait_for(lambda: smsc.receivers)
    [ok, refused] = shop.send(["+14155550101", "+14155550199"])
    smsc.refuse.add("+14155550199")
    session.commit()
    enqueue_deferred(smpp_app.extensions["redis"], shop.ctx.deferred)
    assert worker.run(smpp_app, burst=True)  # submits; the SMSC answers with receipts
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        worker.run(smpp_app, burst=True)  # the receipts job the listener enqueued
        session.expire_all()
        status = session.scalar(select(Message.status).where(
            Message.serial_no == ok.serial_no))
        if status == "delivered":
            break
        time.sleep(0.05)
    assert status == "delivered"
    failed = session.scalar(select(Message).where(Message.serial_no == refused.serial_no))
    assert (failed.status, failed.carrier_code) == ("failed", "ESME:0x0b")
    smsc.mo("+14155550101", "STOP")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and session.scalar(select(Unsubscribe.id)) is None:
        time.sleep(0.05)
        session.expire_all()
    assert session.scalar(select(Unsubscribe.sms_type)) == "verification"
    listener.stop()


# --- issue 9: the SMPP findings, end to end (real RQ worker, real database) -------

def _app(backend: Backend, tmp_path: Path, smsc: SMSC, **kw: object) -> Flask:
    return create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                       "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x", "GATEWAY": "smpp",
                       "SMPP_PORT": smsc.port, "SMPP_SYSTEM_ID": "smsops", **kw})


def _accept(session: Session, shop: Shop, numbers: list[str], content: str) -> list[int]:
    """Accepted messages, as the API writes them."""
    rows = [Message(account_id=shop.app.account_id, app_id=shop.app.id,
                    serial_no=uuid.uuid4().hex, request_id="r", region="international",
                    phone_number=n, iso_code="US", content=content, encoding="GSM", fee=1,
                    status="accepted") for n in numbers]
    session.add_all(rows)
    session.commit()
    return [m.id for m in rows]


def _run_until(app: Flask, session: Session, done: Callable[[dict[str, int]], bool],
               timeout: float = 60) -> dict[str, int]:
    """Work as a worker and its sweeper do until `done(status counts)`."""
    wake(app.extensions["redis"], DRAIN_JOB)
    deadline = time.monotonic() + timeout
    while True:
        worker.run(app, burst=True)
        sweep_once(app)
        session.rollback()
        counts = dict(session.execute(  # type: ignore[arg-type]
            select(Message.status, func.count()).group_by(Message.status)).all())
        if done(counts):
            return counts
        assert time.monotonic() < deadline, f"not settled: {counts}"
        time.sleep(0.05)


@pytest.fixture
def listening(smsc: SMSC) -> Iterator[Callable[[Flask], None]]:
    started = []

    def start(app: Flask) -> None:
        listener = smpp_listener(app)
        started.append(listener)
        threading.Thread(target=listener.run, daemon=True).start()
        smsc.wait_for(lambda: smsc.receivers)

    yield start
    for listener in started:
        listener.stop()


NUMBERS = [f"+1415555{i:04d}" for i in range(200)]


def test_intermediate_receipts_then_delivered(shop: Shop, session: Session, smsc: SMSC,
                                              backend: Backend, tmp_path: Path,
                                              listening: Any) -> None:
    app = _app(backend, tmp_path, smsc)
    listening(app)
    smsc.intermediate = [6]  # ACCEPTD first, as the open-source gateway sends it
    _accept(session, shop, NUMBERS[:20], "[Shop] Your code is 1")
    counts = _run_until(app, session, lambda c: c.get("delivered") == 20)
    assert counts == {"delivered": 20}
    app.extensions["db"].engine.dispose()


def test_receipts_as_data_sm_settle_messages(shop: Shop, session: Session, smsc: SMSC,
                                             backend: Backend, tmp_path: Path,
                                             listening: Any) -> None:
    app = _app(backend, tmp_path, smsc)
    listening(app)
    smsc.receipts_as_data_sm = True
    smsc.undeliverable.add(NUMBERS[0])
    _accept(session, shop, NUMBERS[:10], "[Shop] Your code is 1")
    counts = _run_until(app, session, lambda c: c.get("delivered") == 9)
    assert counts == {"delivered": 9, "failed": 1}
    app.extensions["db"].engine.dispose()


def test_link_drop_mid_batch_resends_only_what_never_left(
        shop: Shop, session: Session, smsc: SMSC, backend: Backend, tmp_path: Path,
        listening: Any) -> None:
    app = _app(backend, tmp_path, smsc, SMPP_WINDOW=10)
    listening(app)
    smsc.drop_after_submits = 7
    _accept(session, shop, NUMBERS[:118], "[Shop] Your code is 1")
    counts = _run_until(app, session, lambda c: set(c) <= {"delivered", "unknown"})
    # Only the in-flight window is in doubt; everything never written went out later.
    assert 1 <= counts["unknown"] <= 10 and counts["delivered"] == 118 - counts["unknown"]
    assert set(taken_per_destination(smsc).values()) == {1}  # nothing sent twice
    unknown = set(session.scalars(select(Message.phone_number)
                                  .where(Message.status == "unknown")))
    assert {s.destination for s in smsc.submitted} >= set(NUMBERS[:118]) - unknown
    app.extensions["db"].engine.dispose()


def test_throttling_carrier_gets_everything_once(shop: Shop, session: Session, smsc: SMSC,
                                                 backend: Backend, tmp_path: Path,
                                                 listening: Any) -> None:
    app = _app(backend, tmp_path, smsc, SMPP_BATCH_BUDGET_S=1)
    listening(app)
    smsc.max_per_s, smsc.tokens = 50, 0.0  # the open-source gateway's cap in the trial
    _accept(session, shop, NUMBERS[:100], "[Shop] Your code is 1")
    counts = _run_until(app, session, lambda c: c.get("delivered") == 100)
    assert counts == {"delivered": 100} and smsc.throttled > 0
    assert len(smsc.submitted) == 100 and set(taken_per_destination(smsc).values()) == {1}
    app.extensions["db"].engine.dispose()


LONG = "[Shop] " + "Your order has shipped and will arrive on Tuesday. " * 7  # 3 parts


def test_a_later_part_failing_fails_the_message(shop: Shop, session: Session, smsc: SMSC,
                                                backend: Backend, tmp_path: Path,
                                                listening: Any) -> None:
    app = _app(backend, tmp_path, smsc)
    listening(app)
    smsc.last_part_fails.add(NUMBERS[1])
    smsc.receipt_delay_s = 0.05  # receipts after the submissions are recorded, mostly
    ok, bad = _accept(session, shop, NUMBERS[:2], LONG)
    counts = _run_until(app, session, lambda c: c.get("submitted", 0) == 0
                        and c.get("delivered") == 1)
    assert counts == {"delivered": 1, "failed": 1}
    failed = session.get(Message, bad)
    assert failed is not None and failed.carrier_code == "UNDELIV"
    parts = session.execute(select(MessagePart.message_id, MessagePart.part,
                                   MessagePart.state).order_by(MessagePart.id)).all()
    assert [(p.message_id, p.part) for p in parts] == [(ok, 1), (ok, 2), (ok, 3),
                                                       (bad, 1), (bad, 2), (bad, 3)]
    assert [p.state for p in parts] == ["delivered"] * 5 + ["failed"]
    assert len(smsc.submitted) == 6
    app.extensions["db"].engine.dispose()


def test_no_receipt_ends_no_receipt_after_the_validity(shop: Shop, session: Session,
                                                       smsc: SMSC, backend: Backend,
                                                       tmp_path: Path, listening: Any) -> None:
    app = _app(backend, tmp_path, smsc, RECEIPT_VALIDITY_S=1)
    listening(app)
    smsc.silent.add(NUMBERS[0])
    _accept(session, shop, NUMBERS[:3], "[Shop] Your code is 1")
    # (Under load a receipt may come after the short validity: it still applies.)
    _run_until(app, session, lambda c: c == {"delivered": 2, "no_receipt": 1})
    silent = session.scalar(select(Message).where(Message.phone_number == NUMBERS[0]))
    assert silent is not None and silent.status == "no_receipt"
    app.extensions["db"].engine.dispose()


def test_a_multi_part_reply_is_one_reply(shop: Shop, session: Session, smsc: SMSC,
                                         backend: Backend, tmp_path: Path,
                                         listening: Any) -> None:
    app = _app(backend, tmp_path, smsc)
    listening(app)
    text = "Please stop sending me these messages. " * 4 + "STOP"
    smsc.mo_parts("+14155550101", text, how="udh8", order=[3, 1, 2])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not session.scalars(select(Reply.text)).all():
        session.rollback()  # no read transaction held open while the listener writes
        time.sleep(0.05)
    assert session.scalars(select(Reply.text)).all() == [text]
    app.extensions["db"].engine.dispose()


def test_a_section_sign_goes_out_in_gsm7_with_the_rest_of_its_batch(
        shop: Shop, session: Session, smsc: SMSC, backend: Backend, tmp_path: Path) -> None:
    """'§' is GSM-7 (0x5F) to our segmenter; smpplib's table lacks it, and encoding the
    batch raised before anything was written: every message of the batch (every
    account's) ended `unknown` once the lease ran out, none sent."""
    app = _app(backend, tmp_path, smsc, LEASE_S=2)
    _accept(session, shop, [f"+1415555{i:04d}" for i in range(5)], "[Shop] Your code is 1")
    _accept(session, shop, ["+14155559999"], "[Shop] Terms §3 apply")
    counts = _run_until(app, session, lambda c: not ({"accepted", "submitting"} & set(c)))
    assert counts.get("unknown", 0) == 0, counts
    assert len(smsc.submitted) == 6
    sign = next(s for s in smsc.submitted if s.destination == "+14155559999")
    assert sign.data_coding == 0 and b"\x5f3" in sign.short_message  # § is 0x5F, then '3'
    app.extensions["db"].engine.dispose()


def test_a_bind_that_outlasts_the_lease_leaves_the_batch_to_send_again(
        shop: Shop, session: Session, backend: Backend, tmp_path: Path) -> None:
    """An SMSC that takes the connection and never answers the bind: the binds take
    longer than the lease, the sweeper marks the batch `unknown` meanwhile, then the
    gateway says nothing was sent: the batch goes back to `accepted`, not left
    `unknown` (nothing was written)."""
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(16)  # the kernel accepts; nobody ever answers
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x", "GATEWAY": "smpp",
                      "SMPP_PORT": mute.getsockname()[1], "SMPP_SYSTEM_ID": "smsops",
                      "SMPP_TIMEOUT_S": 1, "LEASE_S": 2})
    runtime.use(app)
    _accept(session, shop, [f"+1415555{i:04d}" for i in range(5)], "[Shop] Your code is 1")
    errors: list[BaseException] = []

    def work() -> None:
        try:
            drain()
        except BaseException as exc:  # the test reads it
            errors.append(exc)
    t = threading.Thread(target=work)
    t.start()
    swept = 0
    while t.is_alive():  # what every worker's sweeper thread does
        t.join(0.5)
        sweep_once(app)
        swept += 1
    session.rollback()
    counts = dict(session.execute(select(Message.status, func.count())  # type: ignore[arg-type]
                                  .group_by(Message.status)).all())
    mute.close()
    app.extensions["db"].engine.dispose()
    assert errors and isinstance(errors[0], GatewayUnavailable)
    assert swept >= 4  # the lease (2 s) ran out while the binds were tried
    assert counts == {"accepted": 5}
