"""Every notification sent (or tried), with its result."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow

PENDING, SENT, FAILED = "pending", "sent", "failed"
REFUSED = "refused"  # never tried: it could not be sent safely (the error says why)


class Notification(Base):
    __tablename__ = "notification"
    __table_args__ = (Index("ix_notification_account_created", "account_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(32))  # review, threshold, frequency, …
    channel: Mapped[str] = mapped_column(String(16))  # email, slack, sms
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    error: Mapped[str | None] = mapped_column(String(500))
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
