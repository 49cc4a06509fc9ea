"""Purging old send records (SPEC.md §7: records older than two months, a setting).

Messages, their parts and replies older than the retention go in small batches,
each its own short transaction, so the table is never locked for long; the
statistics rollups stay (they hold no message ids), so old figures remain. The send
API's stored answers (Idempotency-Key) go a day after they were written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import Message, Reply, SendReply
from app.models.sending import CallbackAttempt, MessagePart
from app.services.sending import REPLY_KEPT

PURGE_BATCH = 2000


def purge_batch(db: Session, cutoff: datetime, batch: int = PURGE_BATCH) -> int:
    """Delete up to `batch` messages made before `cutoff` (oldest first, by the primary
    key: old rows have the low ids, so the scan stops early) and up to `batch`
    replies; returns how many rows went. The caller commits."""
    gone = 0
    ids = _oldest(db, Message.id, Message.created_at, cutoff, batch)
    if ids:
        db.execute(delete(MessagePart).where(MessagePart.message_id.in_(ids)))
        db.execute(delete(CallbackAttempt).where(CallbackAttempt.message_id.in_(ids)))
        gone += _delete(db, Message.id, ids)
    return gone + _delete(db, Reply.id, _oldest(db, Reply.id, Reply.received_at, cutoff, batch))


def purge_send_replies(db: Session, now: datetime, batch: int = PURGE_BATCH) -> int:
    """Delete up to `batch` stored send answers older than REPLY_KEPT (no retry is
    answered from them any more); returns how many went. The caller commits."""
    return _delete(db, SendReply.id, _oldest(db, SendReply.id, SendReply.created_at,
                                             now - REPLY_KEPT, batch))


def _oldest(db: Session, id_column: Any, at: Any, cutoff: datetime, batch: int) -> list[int]:
    return list(db.scalars(select(id_column).where(at < cutoff).order_by(id_column)
                           .limit(batch)))


def _delete(db: Session, id_column: Any, ids: list[int]) -> int:
    if not ids:
        return 0
    return int(db.execute(delete(id_column.class_).where(id_column.in_(ids))  # type: ignore[attr-defined]
                          .execution_options(synchronize_session=False)).rowcount)
