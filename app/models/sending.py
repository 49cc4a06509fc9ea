"""Messages and everything consulted before one leaves (SPEC.md §3, §5, §6)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, utcnow
from app.models.content import Reviewed, Signature

# A message's life. Each change is a conditional update from the state before it.
ACCEPTED = "accepted"  # passed every check, waiting for a worker
SUBMITTING = "submitting"  # claimed by a worker; never submitted twice
SUBMITTED = "submitted"  # the carrier took it
DELIVERED = "delivered"
FAILED = "failed"  # the carrier refused it or could not deliver it
REJECTED = "rejected"  # refused by a check before leaving; never billed
UNKNOWN = "unknown"  # may or may not have left (link lost mid-write): never resent blindly
NO_RECEIPT = "no_receipt"  # submitted, but no receipt within the validity period
STATUSES = (ACCEPTED, SUBMITTING, SUBMITTED, DELIVERED, FAILED, REJECTED, UNKNOWN, NO_RECEIPT)
FINAL = (DELIVERED, FAILED, REJECTED, UNKNOWN, NO_RECEIPT)


class Message(Base):
    __tablename__ = "message"
    __table_args__ = (
        # The SMS log's filters, newest first (migration 0023): one application and
        # status; a status across applications (and the pipeline's queue, in id order).
        Index("ix_message_app_status", "app_id", "status", "id"),
        Index("ix_message_status_id", "status", "id"),
        # A number (equality) or a prefix (LIKE 'prefix%', text_pattern_ops) over a
        # period; the log counts and pages a prefix from this index alone.
        Index("ix_message_phone", "phone_number", "created_at",
              postgresql_ops={"phone_number": "text_pattern_ops"},
              postgresql_include=["account_id", "app_id", "id"]),
        # Partial (0025): a row enters these only once it has a carrier id / comes from
        # a bulk task, so an API message's insert and claim write neither.
        Index("ix_message_gateway_id", "gateway_message_id",
              postgresql_where=text("gateway_message_id IS NOT NULL"),
              sqlite_where=text("gateway_message_id IS NOT NULL")),
        Index("ix_message_task_status", "task_id", "status",
              postgresql_where=text("task_id IS NOT NULL"),
              sqlite_where=text("task_id IS NOT NULL")),
        # The drainer's queue (0026): accepted rows in id order, and nothing else, so
        # the claim finds the oldest waiting rows at once even behind millions of
        # older ones (by ix_message_status_id the planner chose the primary key and
        # walked the table's past: 0.44-0.77 s per batch with 200,000 waiting).
        Index("ix_message_accepted", "id", postgresql_where=text("status = 'accepted'"),
              sqlite_where=text("status = 'accepted'")),
        # Unknown rows by submission (0027): the sweeper asks Tencent Cloud about the
        # recent ones only (pipeline.ask_carrier); older ones stay unknown for good.
        Index("ix_message_unknown", "submitted_at",
              postgresql_where=text("status = 'unknown'"),
              sqlite_where=text("status = 'unknown'")),
    )

    # BIGINT on PostgreSQL; SQLite only auto-increments an INTEGER primary key.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    app_id: Mapped[int] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"))
    serial_no: Mapped[str] = mapped_column(String(40), unique=True)
    request_id: Mapped[str] = mapped_column(String(40))
    region: Mapped[str] = mapped_column(String(16))
    phone_number: Mapped[str] = mapped_column(String(20))  # E.164 (or as given if invalid)
    iso_code: Mapped[str] = mapped_column(String(2), default="")
    signature_id: Mapped[int | None]
    template_id: Mapped[int | None]
    sms_type: Mapped[str] = mapped_column(String(16), default="")
    content: Mapped[str] = mapped_column(Text, default="")  # exactly what leaves
    encoding: Mapped[str] = mapped_column(String(8), default="")
    fee: Mapped[int] = mapped_column(default=0)  # billed items
    # The credit package that paid for them (one per message; none when the account had
    # no package, so mainland sending was not metered): a refused message's credit goes
    # back there, and nowhere else.
    package_id: Mapped[int | None]
    session_context: Mapped[str | None] = mapped_column(String(512))
    template_params: Mapped[list[str] | None]  # for carriers that send by template
    status: Mapped[str] = mapped_column(String(16), default=ACCEPTED)
    error_code: Mapped[str | None] = mapped_column(String(64))
    carrier_code: Mapped[str | None] = mapped_column(String(64))
    gateway_message_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    receipt_at: Mapped[datetime | None]
    # The claim that moved it to `submitting` (see app/services/pipeline.py): results
    # are recorded only under the same attempt, and an expired lease is resolved.
    attempt_id: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[datetime | None]
    task_id: Mapped[int | None]  # the bulk send task it came from (app/models/tasks.py)


class ReceiptInbox(Base):
    """Delivery reports as they arrived, kept until applied to their message."""

    __tablename__ = "receipt_inbox"
    __table_args__ = (Index("ix_receipt_inbox_due", "due_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True)
    message_id: Mapped[int | None] = mapped_column(BigInteger())
    gateway_id: Mapped[str | None] = mapped_column(String(64))
    delivered: Mapped[bool]
    carrier_code: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[datetime | None]  # when the carrier says it happened
    due_at: Mapped[datetime] = mapped_column(default=utcnow)  # not applied before
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SubmitAttempt(Base):
    """Whether an attempt's batch was handed to the gateway (app/services/pipeline.py):
    written by the worker, committed, just before the call (`handed`), or by the
    sweeper once the attempt's lease ran out with no such row (`handed` false: the
    attempt is fenced and its messages are sent again). The primary key makes the
    two exclusive: a batch the sweeper fenced is never handed over afterwards."""

    __tablename__ = "submit_attempt"
    __table_args__ = (Index("ix_submit_attempt_created", "created_at"),)

    attempt_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    handed: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MessagePart(Base):
    """Each part of a message that went out in several (SMPP): receipts come per part.
    The message is delivered once every part is, failed as soon as one part fails."""

    __tablename__ = "message_part"
    __table_args__ = (Index("ix_message_part_gateway_id", "gateway_id"),
                      Index("ix_message_part_message", "message_id"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger())
    part: Mapped[int]  # 1-based
    gateway_id: Mapped[str] = mapped_column(String(64))
    state: Mapped[str | None] = mapped_column(String(16))  # delivered | failed | None: waiting
    carrier_code: Mapped[str | None] = mapped_column(String(64))


class MuteEntry(Base):
    """Do-not-disturb: a number + signature + SMS type (None: every type)."""

    __tablename__ = "mute_entry"
    __table_args__ = (
        UniqueConstraint("account_id", "phone_number", "signature_id", "sms_type"),
        # NULLs never collide in the key above: "every type" needs its own (0024).
        Index("uq_mute_entry_every_type", "account_id", "phone_number", "signature_id",
              unique=True, sqlite_where=text("sms_type IS NULL"),
              postgresql_where=text("sms_type IS NULL")),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    phone_number: Mapped[str] = mapped_column(String(20))
    signature_id: Mapped[int] = mapped_column(ForeignKey("signature.id", ondelete="CASCADE"))
    sms_type: Mapped[str | None] = mapped_column(String(16))
    consent_confirmed_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Unsubscribe(Base):
    """A number that opted out of one signature's SMS type."""

    __tablename__ = "unsubscribe"
    __table_args__ = (UniqueConstraint("account_id", "phone_number", "signature_id", "sms_type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    phone_number: Mapped[str] = mapped_column(String(20))
    signature_id: Mapped[int] = mapped_column(ForeignKey("signature.id", ondelete="CASCADE"))
    sms_type: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16), default="reply")  # reply | manual
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UnsubscribeRemoval(Reviewed, Base):
    """A request to send to an unsubscribed number again; reviewed like content."""

    __tablename__ = "unsubscribe_removal"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused: see Reviewed

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    phone_number: Mapped[str] = mapped_column(String(20))
    signature_id: Mapped[int] = mapped_column(ForeignKey("signature.id", ondelete="CASCADE"))
    sms_type: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(500))

    # Shown to the reviewer: the number hears from this signature again.
    signature: Mapped[Signature] = relationship(lazy="joined")


class Reply(Base):
    """A message a recipient sent back."""

    __tablename__ = "reply"
    __table_args__ = (Index("ix_reply_account_received", "account_id", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    app_id: Mapped[int | None] = mapped_column(ForeignKey("application.id", ondelete="SET NULL"))
    message_id: Mapped[int | None]  # the latest message sent to that number, if any
    phone_number: Mapped[str] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(String(1000))
    unsubscribed: Mapped[bool] = mapped_column(default=False)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class CreditPackage(Base):
    """Mainland billed items bought in advance; the earliest to expire is used first."""

    __tablename__ = "credit_package"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    remaining: Mapped[int]
    purchased_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class CallbackAttempt(Base):
    """Every POST of a receipt or reply to a customer's callback URL."""

    __tablename__ = "callback_attempt"
    __table_args__ = (Index("ix_callback_attempt_message", "message_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    message_id: Mapped[int | None]
    kind: Mapped[str] = mapped_column(String(16))  # status | reply
    url: Mapped[str] = mapped_column(String(2048))
    attempt: Mapped[int]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(300))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
