"""Email delivery: to a real SMTP server on loopback (aiosmtpd), to the outbox
folder when no SMTP host is set, and through a real RQ worker."""

from __future__ import annotations

import email
import email.policy
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
from app.models.notifications import FAILED, REFUSED, SENT
from app.notify import Channels, Message
from app.notify.email import EmailChannel, read_outbox
from app.queue import enqueue_deferred
from app.services import notifications
from app.sms import alarm_texts
from jobs import worker
from tests.conftest import Backend
from tests.helpers import root_ctx


class Inbox(MessageHandler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list = []

    def handle_message(self, message) -> None:  # type: ignore[no-untyped-def]
        self.messages.append(message)


def plain_text(message) -> str:  # type: ignore[no-untyped-def]
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    return parsed.get_body(("plain",)).get_content()


def html_text(message) -> str:  # type: ignore[no-untyped-def]
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    return parsed.get_body(("html",)).get_content()


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
    assert "effective" in plain_text(inbox.messages[0])
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
    limit = alarm_texts.render("limit", app="1400000001", region="mainland")
    channel.send(Message("13800000000", "Shop <b>reached</b> its limit", limit))
    assert sent[0].phone_number == "+8613800000000"
    assert sent[0].text == f"【smsops】{limit}"  # the subject (user text) is not texted
    code = alarm_texts.render("confirm", code="012345", minutes=10)
    channel.send(Message("+14155550100", "Code", code))
    assert sent[1].text == f"[smsops] {code}"
    with pytest.raises(DeliveryError, match="MK:0012"):
        channel.send(Message("+8613900000002", "x", limit))
    with pytest.raises(DeliveryError, match="SMS:"):
        channel.send(Message("12", "x", limit))
    with pytest.raises(DeliveryError, match="catalogue") as refused:
        channel.send(Message("+8613800000000", "x", limit + " Shop Rejected-Name"))
    assert refused.value.permanent and len(sent) == 3


def _smtp_app(backend: Backend, instance_dir: Path, port: int):  # type: ignore[no-untyped-def]
    return create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                       "INSTANCE_DIR": str(instance_dir), "SECRET_KEY": "x",
                       "SMTP_HOST": "127.0.0.1", "SMTP_PORT": port, "SMTP_STARTTLS": False,
                       "SMTP_FROM": "smsops@example.com"})


def test_one_poisoned_notification_does_not_stop_the_batch(backend: Backend, session: Session,
                                                            smtp, instance_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """A row whose header cannot be built (here: one stored before creation-time
    checks existed) fails alone; the others in the same job are delivered."""
    inbox, port = smtp
    app = _smtp_app(backend, instance_dir, port)
    c = root_ctx(session)
    first = notifications.notify(c, "review", [("email", "a@example.com")], "First", "one")
    poisoned = Notification(account_id=c.actor.account_id, event="review", channel="email",
                            recipient="b@example.com", subject="Hi\r\nBcc: evil@example.com",
                            body="two")
    session.add(poisoned)
    session.flush()
    last = notifications.notify(c, "review", [("email", "c@example.com")], "Last", "three")
    session.commit()
    ids = [first[0].id, poisoned.id, last[0].id]
    enqueue_deferred(app.extensions["redis"], [("jobs.notify.deliver", (ids,))])
    assert worker.run(app, burst=True)
    session.expire_all()
    rows = {n.id: n for n in session.scalars(select(Notification))}
    assert sorted(m["To"] for m in inbox.messages) == ["a@example.com", "c@example.com"]
    assert all("evil" not in str(m) for m in inbox.messages)
    assert rows[first[0].id].status == SENT and rows[last[0].id].status == SENT
    assert rows[poisoned.id].status == REFUSED  # permanent: not retried
    assert "line break" in (rows[poisoned.id].error or "")


@pytest.mark.parametrize(("recipient", "subject", "delivered"), [
    ("b@example.com\r\nBcc: evil@example.com", "Fine", ["a@example.com"]),
    ("Evil <b@example.com>, evil@example.com", "Fine", ["a@example.com"]),
    ("b@example.com", "Approved\nBcc: evil@example.com", []),
])
def test_header_injection_is_refused_when_notifications_are_created(
        backend: Backend, session: Session, smtp, instance_dir: Path,  # type: ignore[no-untyped-def]
        recipient: str, subject: str, delivered: list[str]) -> None:
    inbox, port = smtp
    app = _smtp_app(backend, instance_dir, port)
    c = root_ctx(session)
    rows = notifications.notify(c, "review", [("email", "a@example.com"), ("email", recipient)],
                                subject, "body")
    assert len(rows) == 2  # every notification is recorded, refused ones too
    session.commit()
    assert bool(c.deferred) == bool(delivered)  # nothing to deliver: no job at all
    enqueue_deferred(app.extensions["redis"], c.deferred)
    worker.run(app, burst=True)
    session.expire_all()
    stored = list(session.scalars(select(Notification)))
    refused = [n for n in stored if n.status == REFUSED]
    assert len(refused) == 2 - len(delivered) and all(n.attempts == 0 for n in refused)
    assert all(n.error and n.error.startswith("Refused:") for n in refused)
    assert sorted(m["To"] for m in inbox.messages) == delivered
    assert all("evil" not in str(m) for m in inbox.messages)


def test_email_html_part_escapes_user_text(session: Session, smtp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inbox, port = smtp
    c = root_ctx(session)
    rows = notifications.notify(c, "review", [("email", "a@example.com")], "Rejected",
                                "Template <script>alert(1)</script> & <b>bold</b>")
    channels = Channels()
    channels.add(EmailChannel({"SMTP_HOST": "127.0.0.1", "SMTP_PORT": port,
                               "SMTP_STARTTLS": False, "INSTANCE_DIR": str(tmp_path)}))
    assert notifications.deliver(session, [r.id for r in rows], channels) == 0
    html = html_text(inbox.messages[0])
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script>alert(1)</script>" in plain_text(inbox.messages[0])  # plain text as is


def test_ids_in_alarm_texts_have_no_separators() -> None:
    """Seen as a test error once SQLite's ids reached 1,000: approving template #1000
    rendered "#1,000", which the catalogue's id pattern refuses (a ValueError, a 500)."""
    assert alarm_texts.render("review", kind="template", id=1000, outcome="approved") == (
        "Review result: template #1000 is approved. Details in the console.")
    assert "12,345 billed items" in alarm_texts.render(
        "threshold", app="1400000001", region="mainland", used=12345)
