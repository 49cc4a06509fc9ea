"""Marketing audiences (SPEC.md §4): customer groups and the numbers in them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow


class CustomerGroup(Base):
    """A named list of numbers for one SMS type. `member_count` is kept with every
    change, so lists never count members per page view."""

    __tablename__ = "customer_group"
    __table_args__ = (UniqueConstraint("account_id", "name"),
                      {"sqlite_autoincrement": True})  # a deleted group's id is never reused

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(40))
    sms_type: Mapped[str] = mapped_column(String(16))
    member_count: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class GroupMember(Base):
    """One number in one group, with the optional per-number attributes an import
    carried as extra columns (template variables for a send to the group)."""

    __tablename__ = "group_member"
    __table_args__ = (UniqueConstraint("group_id", "phone_number"),
                      Index("ix_group_member_group_id_id", "group_id", "id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("customer_group.id", ondelete="CASCADE"))
    phone_number: Mapped[str] = mapped_column(String(20))
    attributes: Mapped[list[str] | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


__all__ = ["CustomerGroup", "GroupMember"]
