"""With SMSOPS_GATEWAY=smpp: a message goes out through a real RQ worker to the
SMSC, its receipt comes back on the listener's bind, and a reply unsubscribes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app
from app.models import Message, Unsubscribe
from app.queue import enqueue_deferred
from jobs import worker
from jobs.listeners import smpp_listener
from tests.conftest import Backend
from tests.sending.conftest import Shop
from tests.smsc import SMSC


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
