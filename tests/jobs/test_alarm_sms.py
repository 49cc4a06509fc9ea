"""Alarm SMS end to end (issue #8, finding 1): a real RQ worker delivers through the
simulator gateway (counting what reaches it) and a loopback SMTP server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app
from app.gateways.base import Outbound, SubmitResult
from app.gateways.simulator import SimulatorGateway
from app.models import Notification, User
from app.models.notifications import REFUSED, SENT
from app.queue import enqueue_deferred
from app.services import app_config, content, mute, notifications, reviews
from app.services.accounts import actor_for
from app.services.context import Ctx, Settings
from jobs import worker
from tests.conftest import Backend
from tests.jobs import test_notify
from tests.jobs.test_notify import html_text
from tests.sending import conftest as sending
from tests.sending.conftest import Shop

shop = sending.shop  # the fixture: an application with effective content
smtp = test_notify.smtp  # the fixture: a loopback SMTP server

NUMBER = "+8613900000001"  # the simulator delivers to it


class CountingSimulator(SimulatorGateway):
    """The simulator, writing down every message that reaches it (the worker's
    work horse is another process, so the record is a file)."""

    def __init__(self, path: Path) -> None:
        super().__init__({})
        self.path = path

    def submit(self, batch: list[Outbound]) -> list[SubmitResult]:
        with self.path.open("a") as f:
            for m in batch:
                f.write(json.dumps([m.phone_number, m.text]) + "\n")
        return super().submit(batch)

    def received(self) -> list[tuple[str, str]]:
        if not self.path.exists():
            return []
        return [tuple(json.loads(line)) for line in self.path.read_text().splitlines()]


def _run(app: Flask, session: Session, *ctxs: Ctx) -> None:
    session.commit()
    for c in ctxs:
        enqueue_deferred(app.extensions["redis"], c.deferred)
    worker.run(app, burst=True)
    session.expire_all()


def _ctx(session: Session, app: Flask, email: str) -> Ctx:
    user = session.scalars(select(User).where(User.email == email)).one()
    return Ctx(session, actor_for(user), Settings.from_config(app.config),
               gateway=app.extensions["gateway"])


def test_alarm_sms_is_confirmed_catalogued_and_muted(backend: Backend, session: Session,
                                                     shop: Shop, smtp: Any,
                                                     instance_dir: Path) -> None:
    inbox, port = smtp
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(instance_dir), "SECRET_KEY": "x",
                      "SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SMTP_STARTTLS": False})
    gateway = CountingSimulator(instance_dir / "simulator.jsonl")
    app.extensions["gateway"] = gateway
    sid = shop.app.sdk_app_id
    session.commit()
    root = _ctx(session, app, "root@example.com")
    reviewer = _ctx(session, app, "rev@example.com")
    contact = app_config.add_contact(root, sid, name="Ops", mobile=NUMBER,
                                     email="ops@example.com", events=["review", "threshold"])

    def reject(name: str) -> int:
        t = content.create_template(root, "international", {
            "name": name, "sms_type": "notification", "content": "Order {1} shipped"})
        reviews.reject(reviewer, "template", t.id, "Call 4006 <b>now</b>",
                       revision=reviews.load(reviewer, "template", t.id).revision)
        return t.id

    # 1. Unconfirmed: nothing reaches the phone; the email carries the details, escaped.
    reject("WIN <b>cash</b>")
    _run(app, session, root, reviewer)
    assert gateway.received() == []
    mail = [m for m in inbox.messages if m["To"] == "ops@example.com"]
    assert len(mail) == 1 and "WIN &lt;b&gt;cash&lt;/b&gt;" in html_text(mail[0])

    # 2. The code goes to the phone through the gateway; only the phone keeps it.
    root.deferred.clear()
    app_config.send_mobile_code(root, sid, contact.id)
    _run(app, session, root)
    [(to, text)] = gateway.received()
    assert to == NUMBER and text.startswith("【smsops】Your alarm contact confirmation code is ")
    code = text.split("code is ")[1][:6]
    row = session.scalars(select(Notification).where(
        Notification.event == notifications.CONFIRM_EVENT)).one()
    assert row.status == SENT and code not in row.body
    assert app_config.confirm_mobile(root, sid, contact.id, code) is None

    # 3. Confirmed: a review result arrives in catalogue words, no name, no reason.
    tid = reject("Jackpot 888")
    _run(app, session, root, reviewer)
    received = gateway.received()
    assert received[1:] == [
        (NUMBER, f"【smsops】Review result: template #{tid} is rejected. Details in the console.")]

    # 4. On the mute list: the SMS is held back and logged; the email still goes.
    mute.add(root, phone_number=NUMBER, signature_id=shop.signatures["mainland"], sms_type="",
             consent=True)
    tid = reject("Muted one")
    _run(app, session, root, reviewer)
    assert len(gateway.received()) == 2  # nothing more reached the gateway
    sms = session.scalars(select(Notification).where(
        Notification.channel == "sms", Notification.subject.contains("Muted one"))).one()
    assert sms.status == REFUSED and "mute list" in (sms.error or "")
    assert sum(m["To"] == "ops@example.com" for m in inbox.messages) == 3
    assert all("Jackpot" not in t and "4006" not in t for _, t in gateway.received())
