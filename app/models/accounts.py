"""The account, its users and the access policies attached to them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, utcnow

ENTERPRISE = "enterprise"
INDIVIDUAL = "individual"
ACCOUNT_TYPES = (ENTERPRISE, INDIVIDUAL)


class Account(Base):
    __tablename__ = "account"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    account_type: Mapped[str] = mapped_column(String(20), default=ENTERPRISE)
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    intl_daily_quota: Mapped[int] = mapped_column(default=100)  # billed items per natural day
    reply_callback_url: Mapped[str | None] = mapped_column(String(2048))
    reply_callback_enabled: Mapped[bool] = mapped_column(default=False)
    # Notify package-alarm subscribers when the credit balance falls to this many items.
    package_alarm_threshold: Mapped[int | None]
    # Cents per billed item: {"mainland": 4, "US": 35, ...}; a task's confirm step
    # estimates its cost from them (SPEC.md §3 "Unit prices").
    unit_prices: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "user_account"  # "user" is reserved in PostgreSQL

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    is_root: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=True)
    must_change_password: Mapped[bool] = mapped_column(default=True)
    slack_user_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    # Whether a Slack member whose confirmed email is this user's is linked on their
    # first command. An unlink turns it off: from then on only a code links.
    slack_email_link: Mapped[bool] = mapped_column(default=True, server_default=true())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]
    # Part of the session cookie's user id; bumping it ends every session of the user
    # (logout, password change or reset, disabling).
    session_version: Mapped[int] = mapped_column(default=0, server_default="0")

    account: Mapped[Account] = relationship()
    policies: Mapped[list[Policy]] = relationship(
        secondary="user_policy", order_by="Policy.name", lazy="selectin"
    )

    # The session-user protocol the web adapter's login manager expects.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        return f"{self.id}:{self.session_version}"


class Policy(Base):
    __tablename__ = "policy"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(500), default="")
    document: Mapped[str] = mapped_column(Text)  # the JSON text as validated
    preset: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class UserPolicy(Base):
    __tablename__ = "user_policy"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), primary_key=True
    )
    policy_id: Mapped[int] = mapped_column(
        ForeignKey("policy.id", ondelete="CASCADE"), primary_key=True
    )
