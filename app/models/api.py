"""Management API credentials (SecretId/SecretKey pairs) and stored idempotent replies
(of management writes and of sends)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow
from app.encryption import EncryptedText


class ApiKey(Base):
    """A SecretId/SecretKey pair acting as its user. The SecretKey is encrypted at
    rest like an AppKey (not hashed): verifying an HMAC signature needs the key."""

    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"),
                                         index=True)
    secret_id: Mapped[str] = mapped_column(String(40), unique=True)
    secret_key: Mapped[str] = mapped_column(EncryptedText())
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]


class IdempotentReply(Base):
    """The answer to a write sent with an Idempotency-Key, stored in the same
    transaction as the write, so a retry replays it instead of writing twice."""

    __tablename__ = "api_idempotency"
    __table_args__ = (UniqueConstraint("user_id", "key"),
                      Index("ix_api_idempotency_created", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of method, target, body
    status: Mapped[int] = mapped_column(default=200)
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SendReply(Base):
    """The answer to a send request made with an Idempotency-Key, written in the same
    transaction as its messages (app/services/sending.py `settle`): a retry with the
    key gets these results back instead of sending again. Keyed per application."""

    __tablename__ = "api_send_reply"
    __table_args__ = (UniqueConstraint("app_id", "key"),
                      Index("ix_api_send_reply_created", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(128))
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the body
    request_id: Mapped[str] = mapped_column(String(32))
    results: Mapped[str] = mapped_column(Text)  # JSON: the SendStatus fields, in order
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
