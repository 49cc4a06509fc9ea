"""Purging old send records (SPEC.md §7: records older than two months, a setting).

Messages, their parts and replies older than the retention go in small batches,
each its own short transaction, so the table is never locked for long; the
statistics rollups stay (they hold no message ids), so old figures remain. The send
API's stored answers (Idempotency-Key) go a day after they were written.
"""

from __future__ import annotations

from datetime import datetime

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
    ids = list(db.scalars(select(Message.id).where(Message.created_at < cutoff)
                          .order_by(Message.id).limit(batch)))
    gone = 0
    if ids:
        db.execute(delete(MessagePart).where(MessagePart.message_id.in_(ids)))
        db.execute(delete(CallbackAttempt).where(CallbackAttempt.message_id.in_(ids)))
        gone += db.execute(delete(Message).where(Message.id.in_(ids))  # type: ignore[attr-defined]
                           .execution_options(synchronize_session=False)).rowcount
    replies = list(db.scalars(select(Reply.id).where(Reply.received_at < cutoff)
                              .order_by(Reply.id).limit(batch)))
    if replies:
        gone += db.execute(delete(Reply).where(Reply.id.in_(replies))  # type: ignore[attr-defined]
                           .execution_options(synchronize_session=False)).rowcount
    return int(gone)


def purge_send_replies(db: Session, now: datetime, batch: int = PURGE_BATCH) -> int:
    """Delete up to `batch` stored send answers older than REPLY_KEPT (no retry is
    answered from them any more); returns how many went. The caller commits."""
    ids = list(db.scalars(select(SendReply.id).where(SendReply.created_at < now - REPLY_KEPT)
                          .order_by(SendReply.id).limit(batch)))
    if not ids:
        return 0
    return int(db.execute(delete(SendReply).where(SendReply.id.in_(ids))  # type: ignore[attr-defined]
                          .execution_options(synchronize_session=False)).rowcount)
