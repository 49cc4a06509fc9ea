"""Bulk send tasks (SPEC.md §3): an uploaded file becomes one recipient row per
valid line; on confirm, recipients become messages of the ordinary pipeline."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow

VALIDATING = "validating"
AWAITING_CONFIRMATION = "awaiting_confirmation"
SCHEDULED = "scheduled"
SENDING = "sending"
SENT = "sent"
STOPPED = "stopped"  # a sending task stopped by a user: the rest stays unsent
CANCELLED = "cancelled"  # a scheduled or unconfirmed task
FAILED = "failed"  # validation failed or the task could not run (see failure_reason)
TASK_STATUSES = (VALIDATING, AWAITING_CONFIRMATION, SCHEDULED, SENDING, SENT, STOPPED,
                 CANCELLED, FAILED)
TASK_FINAL = (SENT, STOPPED, CANCELLED, FAILED)


class SendTask(Base):
    __tablename__ = "send_task"
    __table_args__ = (Index("ix_send_task_account_created", "account_id", "created_at"),
                      Index("ix_send_task_status", "status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    app_id: Mapped[int] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(16))
    signature_id: Mapped[int | None]
    template_id: Mapped[int]
    status: Mapped[str] = mapped_column(String(24), default=VALIDATING)
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    file_name: Mapped[str] = mapped_column(String(255), default="")
    send_at: Mapped[datetime | None]  # None: as soon as confirmed
    rate_limit: Mapped[int | None]  # messages per second; None: the gateway's own cap only
    total_rows: Mapped[int] = mapped_column(default=0)
    valid_rows: Mapped[int] = mapped_column(default=0)
    error_rows: Mapped[int] = mapped_column(default=0)
    billed_items: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class SendTaskRecipient(Base):
    """One valid row of the file not yet sent. The batch that turns it into a message
    deletes it in the same transaction (the message carries the rest of its life, see
    app/services/pipeline.py; its serial number is derived from (task, row), so a
    recipient can become a message only once), so what is left of a stopped task is
    what it did not send."""

    __tablename__ = "send_task_recipient"
    __table_args__ = (Index("ix_send_task_recipient_task_row", "task_id", "row_no"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("send_task.id", ondelete="CASCADE"))
    row_no: Mapped[int]
    phone_number: Mapped[str] = mapped_column(String(20))  # E.164
    iso_code: Mapped[str] = mapped_column(String(2))
    params: Mapped[list[str]]
    fee: Mapped[int]  # billed items of this row's text


class SendTaskFigure(Base):
    """How many of a task's messages are in each statistics outcome (app/sms/outcomes.py;
    failed receipts by carrier code): its progress and receipt analysis without counting
    its messages, which took 0.3-0.46 s at 600,000 messages while a task page asks every
    second (bench/README.md round 14). Kept by app/services/rollups.py in the transaction
    of every change of outcome, exactly like the statistics rollups."""

    __tablename__ = "send_task_figure"

    task_id: Mapped[int] = mapped_column(ForeignKey("send_task.id", ondelete="CASCADE"),
                                         primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    carrier_code: Mapped[str] = mapped_column(String(64), primary_key=True, default="")
    count: Mapped[int] = mapped_column(BigInteger(), default=0)


class SendTaskError(Base):
    """A row the file could not use: row number, column and reason."""

    __tablename__ = "send_task_error"
    __table_args__ = (Index("ix_send_task_error_task_row", "task_id", "row_no"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("send_task.id", ondelete="CASCADE"))
    row_no: Mapped[int]
    column: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(Text)
