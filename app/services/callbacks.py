"""What is POSTed to a customer's status callback, and the record of each attempt."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Account, Application, CallbackAttempt, Message, Reply
from app.services.sending import as_dict


def sign(key: str, timestamp: str, body: bytes) -> str:
    """X-SMS-Signature: lowercase hex HMAC-SHA256 with the AppKey of
    `X-SMS-Timestamp + "\n" + raw body`. The timestamp is signed so a receiver can
    refuse a stale (replayed) request: see README, *Callbacks*."""
    return hmac.new(key.encode(), timestamp.encode() + b"\n" + body,
                    hashlib.sha256).hexdigest()


def status_payload(db: Session, message_id: int) -> tuple[Application, bytes] | None:
    msg = db.get(Message, message_id)
    if msg is None:
        return None
    app = db.get(Application, msg.app_id)
    if app is None or not app.status_callback_url:
        return None
    body = json.dumps(as_dict(msg, app.sdk_app_id), ensure_ascii=False, sort_keys=True)
    return app, body.encode()


def reply_payload(db: Session, reply_id: int) -> tuple[Application, str, bytes] | None:
    """A reply for the account's reply callback, signed with the AppKey of the
    application whose message it answers. One that answers no message of the account
    (SPEC.md §3 posts every reply; found from outside: these were kept, never posted)
    has "sdk_app_id": null and is signed with the AppKey of the account's first
    application, which X-SMS-AppId names as for any callback."""
    reply = db.get(Reply, reply_id)
    if reply is None:
        return None
    account = db.get(Account, reply.account_id)
    app = db.get(Application, reply.app_id) if reply.app_id is not None else db.scalar(
        select(Application).where(Application.account_id == reply.account_id)
        .order_by(Application.id).limit(1))
    if account is None or app is None or not (account.reply_callback_enabled
                                              and account.reply_callback_url):
        return None
    msg = db.get(Message, reply.message_id) if reply.message_id else None
    body = json.dumps({
        "sdk_app_id": app.sdk_app_id if reply.app_id is not None else None,
        "phone_number": reply.phone_number, "text": reply.text,
        "received_at": reply.received_at.isoformat(), "unsubscribed": reply.unsubscribed,
        "serial_no": msg.serial_no if msg else None,
        "session_context": msg.session_context if msg else None,
    }, ensure_ascii=False, sort_keys=True)
    return app, account.reply_callback_url, body.encode()


def record_attempt(db: Session, app: Application, kind: str, ref: int, url: str, body: bytes,
                   status_code: int | None, error: str | None) -> int:
    """Log one attempt; returns its number (1 for the first). `ref` is the message id
    for receipts and the reply id for replies."""
    attempt = (db.scalar(select(func.count()).where(CallbackAttempt.message_id == ref,
                                                    CallbackAttempt.kind == kind)) or 0) + 1
    payload: dict[str, Any] = json.loads(body)
    db.add(CallbackAttempt(account_id=app.account_id, message_id=ref, kind=kind,
                           url=url, attempt=attempt, status_code=status_code,
                           error=error[:300] if error else None, payload=payload))
    return attempt
