"""Alarms (SPEC.md §8): each event raised once per period, who acknowledged it, and
which notification carried it to whom; the captcha-abuse rule of each application."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class Alarm(Base):
    __tablename__ = "alarm"
    __table_args__ = (Index("ix_alarm_account_created", "account_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    # None for account-level events (package, review results, carrier link).
    app_id: Mapped[int | None] = mapped_column(
        ForeignKey("application.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(32))  # a key of app.services.alarms.EVENTS
    period: Mapped[str] = mapped_column(String(120))  # what made it unique (event+scope+period)
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    # The figures shown in Slack and on the history page: value, threshold, unit, …
    figures: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    acknowledged_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"))
    acknowledged_by: Mapped[str | None] = mapped_column(String(254))  # kept if the user goes
    acknowledged_at: Mapped[datetime | None]


class AlarmDelivery(Base):
    """One notification (channel + recipient, with its result) that carried an alarm.
    `ref` is where a Slack post landed (channel:ts), so it can be updated in place."""

    __tablename__ = "alarm_delivery"

    id: Mapped[int] = mapped_column(primary_key=True)
    alarm_id: Mapped[int] = mapped_column(ForeignKey("alarm.id", ondelete="CASCADE"), index=True)
    notification_id: Mapped[int] = mapped_column(
        ForeignKey("notification.id", ondelete="CASCADE"), unique=True)
    ref: Mapped[str | None] = mapped_column(String(80))


class CaptchaRule(Base):
    """The captcha-abuse thresholds of one application (the Security page)."""

    __tablename__ = "captcha_rule"

    app_id: Mapped[int] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"),
                                        primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=True)
    volume: Mapped[int] = mapped_column(default=50)  # alarm when the hour's volume exceeds it
    success_pct: Mapped[int] = mapped_column(default=80)  # … the success rate is below it
    growth_pct: Mapped[int] = mapped_column(default=90)  # … and growth is above it


class MonitorCheckpoint(Base):
    """The last hour a monitor finished, so a missed hour is caught up, not skipped."""

    __tablename__ = "monitor_checkpoint"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    last_hour: Mapped[datetime]
