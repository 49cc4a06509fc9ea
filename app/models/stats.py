"""Statistics rollups (SPEC.md §7, DESIGN.md "Statistics").

`stat_rollup`: one row per UTC hour x account x application x region x country x
signature x template x SMS type x verification flag x outcome x error code x
carrier code, holding how many messages are in that outcome now and their billed
items. `stat_rollup_daily`: the same by the account's local day, so a 30-day page
reads 24 times fewer rows. The pipeline moves a message's count from its old
outcome to its new one in the same transaction as the state change
(app/services/rollups.py), so both always equal a GROUP BY over the message table
and a retried job cannot count twice.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base

# The key after the time column, in the order of the unique constraints.
DIMENSIONS = ("account_id", "app_id", "region", "iso_code", "signature_id", "template_id",
              "sms_type", "verification", "outcome", "error_code", "carrier_code")
ROLLUP_KEY = ("hour", *DIMENSIONS)
DAILY_KEY = ("day", *DIMENSIONS)


class _Counts:
    """The columns both rollup tables share."""

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True)
    account_id: Mapped[int]
    app_id: Mapped[int]
    region: Mapped[str] = mapped_column(String(16))
    iso_code: Mapped[str] = mapped_column(String(2), default="")
    # 0 and '' stand for "none": NULLs would never match in the unique key.
    signature_id: Mapped[int] = mapped_column(default=0)
    template_id: Mapped[int] = mapped_column(default=0)
    sms_type: Mapped[str] = mapped_column(String(16), default="")
    verification: Mapped[bool] = mapped_column(default=False)  # captcha traffic (§8)
    outcome: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str] = mapped_column(String(64), default="")
    carrier_code: Mapped[str] = mapped_column(String(64), default="")  # receipt failures
    count: Mapped[int] = mapped_column(BigInteger(), default=0)
    billed: Mapped[int] = mapped_column(BigInteger(), default=0)


class StatRollup(_Counts, Base):
    __tablename__ = "stat_rollup"
    __table_args__ = (
        UniqueConstraint(*ROLLUP_KEY, name="uq_stat_rollup_key"),
        # Every statistics query filters one account and region over a range of hours.
        Index("ix_stat_rollup_account_region_hour", "account_id", "region", "hour"),
    )

    hour: Mapped[datetime]  # the UTC hour the message was created in


class StatRollupDaily(_Counts, Base):
    __tablename__ = "stat_rollup_daily"
    __table_args__ = (
        UniqueConstraint(*DAILY_KEY, name="uq_stat_rollup_daily_key"),
        Index("ix_stat_rollup_daily_account_region_day", "account_id", "region", "day"),
    )

    day: Mapped[date]  # the local day (account's zone) the message was created in
