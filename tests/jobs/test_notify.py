"""Email delivery: to a real SMTP server on loopback (aiosmtpd), to the outbox
folder when no SMTP host is set, and through a real RQ worker."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message as MessageHandler
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app
from app.models import Notification
from app.models.notifications import FAILED, SENT
from app.notify import Channels, Message
from app.notify.email import EmailChannel, read_outbox
from app.queue import enqueue_deferred
from app.services import notifications
from jobs import worker
from tests.conftest import Backend
from tests.helpers import root_ctx


class Inbox(MessageHandler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list = []

    def handle_message(self, message) -> None:  # type: ignore[no-untyped-def]
        self.messages.append(message)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def test_smtp_delivery_and_logged_result(session: Session, smtp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inbox, port = smtp
    c = root_ctx(session)
    rows = notifications.notify(c, "review", [("email", "ana@example.com"),
                                              ("email", "ana@example.com"),
                                              ("carrier-pigeon", "coop 7")],
                                "Template approved", "Your template “Code” is effective.")
    assert len(rows) == 2  # duplicates collapse
    channels = Channels()
    channels.add(EmailChannel({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": port,
                               "SMTP_FROM": "smsops@example.com",
                               "INSTANCE_DIR": str(tmp_path)}))
    failed = notifications.deliver(session, [r.id for r in rows], channels)
    assert failed == 1
    assert [m["To"] for m in inbox.messages] == ["ana@example.com"]
    assert inbox.messages[0]["Subject"] == "Template approved"
    assert "effective" in inbox.messages[0].get_payload(decode=True).decode()
    by_channel = {r.channel: r for r in rows}
    assert by_channel["email"].status == SENT and by_channel["email"].attempts == 1
    assert by_channel["carrier-pigeon"].status == FAILED
    assert "no carrier-pigeon channel" in by_channel["carrier-pigeon"].error
    # A retry sends only what has not been sent.
    notifications.deliver(session, [r.id for r in rows], channels)
    assert len(inbox.messages) == 1 and by_channel["carrier-pigeon"].attempts == 2


def test_smtp_failure_is_logged_not_raised(tmp_path: Path) -> None:
    from app.notify import DeliveryError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    channel = EmailChannel({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": closed_port,
                            "SMTP_PASSWORD": "hunter2", "INSTANCE_DIR": str(tmp_path)})
    with pytest.raises(DeliveryError) as exc:
        channel.send(Message("a@example.com", "s", "b"))
    assert "ConnectionRefusedError" in str(exc.value) and "hunter2" not in str(exc.value)


def test_worker_delivers_to_the_outbox(backend: Backend, session: Session,
                                       instance_dir: Path) -> None:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(instance_dir), "SECRET_KEY": "x"})
    c = root_ctx(session)
    notifications.notify(c, "review", [("email", "ops@example.com")], "Hello", "Body text")
    session.commit()
    enqueue_deferred(app.extensions["redis"], c.deferred)
    assert worker.run(app, burst=True)
    session.expire_all()
    row = session.scalars(select(Notification)).one()
    assert row.status == SENT
    [mail] = read_outbox(app.config)
    assert (mail["to"], mail["subject"], mail["body"].strip()) == ("ops@example.com", "Hello",
                                                                   "Body text")


def test_sms_channel_uses_the_gateway_with_a_system_signature() -> None:
    from app.gateways.base import Outbound, SubmitResult
    from app.notify import DeliveryError
    from app.notify.sms import SmsChannel

    sent: list[Outbound] = []

    class Carrier:
        name = "recording"

        def register_signature(self, region: str, content: str) -> bool:
            return True

        def submit(self, batch: list[Outbound]) -> list[SubmitResult]:
            sent.extend(batch)
            ok = batch[0].phone_number != "+8613900000002"
            return [SubmitResult(0, ok, "g1", carrier_code=None if ok else "MK:0012")]

    channel = SmsChannel(Carrier())
    channel.send(Message("13800000000", "Daily limit reached", "Shop sent 1,000"))
    assert sent[0].phone_number == "+8613800000000"
    assert sent[0].text == "【smsops】Daily limit reached. Shop sent 1,000"
    channel.send(Message("+14155550100", "Threshold", "80%"))
    assert sent[1].text == "[smsops] Threshold. 80%"
    with pytest.raises(DeliveryError, match="MK:0012"):
        channel.send(Message("+8613900000002", "x", "y"))
    with pytest.raises(DeliveryError, match="SMS:"):
        channel.send(Message("12", "x", "y"))
