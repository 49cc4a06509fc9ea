"""Where the bot posted a review request, so any decision can update it in place."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class ReviewMessage(Base):
    __tablename__ = "review_message"
    __table_args__ = (UniqueConstraint("kind", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    # qualification | signature | template | unsubscribe_removal
    kind: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[int]
    channel: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str] = mapped_column(String(32))  # Slack's message id within the channel
    revision: Mapped[int | None]  # the revision the message shows
    # Still shows Approve / Reject: superseded by an edit, it must be updated.
    has_buttons: Mapped[bool] = mapped_column(default=True, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
