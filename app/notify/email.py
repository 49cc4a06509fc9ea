"""Email: SMTP when SMSOPS_SMTP_HOST is set, else .eml files in an outbox folder."""

from __future__ import annotations

import html
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from app.notify import DeliveryError, Message


class EmailChannel:
    name = "email"

    def __init__(self, config: dict[str, Any]) -> None:
        self.host = config.get("SMTP_HOST") or ""
        self.port = int(config.get("SMTP_PORT") or 587)
        self.user = config.get("SMTP_USER") or ""
        self.password = config.get("SMTP_PASSWORD") or ""
        self.starttls = bool(config.get("SMTP_STARTTLS", True))
        self.sender = config.get("SMTP_FROM") or "smsops@localhost"
        self.outbox = Path(config["INSTANCE_DIR"]) / "outbox"

    def _build(self, message: Message) -> EmailMessage:
        if any(c in field for field in (message.recipient, message.subject) for c in "\r\n"):
            # Header injection: refused here too, whatever stored the row.
            raise DeliveryError("Refused: a line break in the To or Subject header.",
                                permanent=True)
        email = EmailMessage()
        try:
            email["From"] = self.sender
            email["To"] = message.recipient
            email["Subject"] = message.subject
        except (ValueError, IndexError) as exc:  # e.g. an address the parser rejects
            raise DeliveryError(f"Refused: a header could not be built ({exc})"[:480],
                                permanent=True) from None
        email["Date"] = format_datetime(datetime.now(UTC))
        email["Message-ID"] = make_msgid(domain="smsops")
        email.set_content(message.body)
        # The same words as HTML, every piece of user text escaped.
        paragraphs = "".join(f"<p>{html.escape(line)}</p>"
                             for line in message.body.splitlines() if line.strip())
        email.add_alternative(f"<!doctype html><html><body>{paragraphs}</body></html>",
                              subtype="html")
        return email

    def send(self, message: Message) -> None:
        email = self._build(message)
        if not self.host:
            self.outbox.mkdir(parents=True, exist_ok=True)
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
            (self.outbox / f"{stamp}.eml").write_bytes(email.as_bytes())
            return
        try:
            with smtplib.SMTP(self.host, self.port, timeout=20) as smtp:
                if self.starttls and smtp.has_extn("starttls"):
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password)
                smtp.send_message(email)
        except (OSError, smtplib.SMTPException) as exc:
            # The class and the server's words, never the credentials.
            raise DeliveryError(f"SMTP {type(exc).__name__}: {exc}"[:480]) from None


def read_outbox(config: dict[str, Any], limit: int = 100) -> list[dict[str, Any]]:
    """The newest messages written to the outbox, for the notifications page."""
    from email import policy
    from email.parser import BytesParser

    folder = Path(config["INSTANCE_DIR"]) / "outbox"
    files = sorted(folder.glob("*.eml"), reverse=True)[:limit] if folder.exists() else []
    out = []
    for f in files:
        msg = BytesParser(policy=policy.default).parsebytes(f.read_bytes())
        body = msg.get_body(preferencelist=("plain",))
        date = getattr(msg["Date"], "datetime", None)  # aware; pages show it in the account zone
        out.append({"file": f.name, "to": str(msg["To"]), "subject": str(msg["Subject"]),
                    "date": date, "body": body.get_content() if body else ""})
    return out
