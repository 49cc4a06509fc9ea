"""What is POSTed to a customer's status callback, and the record of each attempt."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Application, CallbackAttempt, Message
from app.services.sending import as_dict


def sign(key: str, body: bytes) -> str:
    """X-SMS-Signature: lowercase hex HMAC-SHA256 of the raw body with the AppKey."""
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def status_payload(db: Session, message_id: int) -> tuple[Application, bytes] | None:
    msg = db.get(Message, message_id)
    if msg is None:
        return None
    app = db.get(Application, msg.app_id)
    if app is None or not app.status_callback_url:
        return None
    body = json.dumps(as_dict(msg, app.sdk_app_id), ensure_ascii=False, sort_keys=True)
    return app, body.encode()


def record_attempt(db: Session, app: Application, message_id: int, url: str, body: bytes,
                   status_code: int | None, error: str | None) -> int:
    """Log one attempt; returns its number (1 for the first)."""
    attempt = (db.scalar(select(func.count()).where(CallbackAttempt.message_id == message_id,
                                                    CallbackAttempt.kind == "status")) or 0) + 1
    payload: dict[str, Any] = json.loads(body)
    db.add(CallbackAttempt(account_id=app.account_id, message_id=message_id, kind="status",
                           url=url, attempt=attempt, status_code=status_code,
                           error=error[:300] if error else None, payload=payload))
    return attempt
