"""Hourly statistics rollups (SPEC.md §7, DESIGN.md "Statistics").

One row per UTC hour x account x application x region x country x signature x
template x SMS type x verification flag x outcome x error code x carrier code,
holding how many messages are in that outcome now and their billed items. The
pipeline moves a message's count from its old outcome to its new one in the same
transaction as the state change (app/services/rollups.py), so the rollups always
equal a GROUP BY over the message table, and a retried job cannot count twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base

# The key, in the order of the unique constraint (the upsert names it).
ROLLUP_KEY = ("hour", "account_id", "app_id", "region", "iso_code", "signature_id",
              "template_id", "sms_type", "verification", "outcome", "error_code",
              "carrier_code")


class StatRollup(Base):
    __tablename__ = "stat_rollup"
    __table_args__ = (
        UniqueConstraint(*ROLLUP_KEY, name="uq_stat_rollup_key"),
        # Every statistics query filters one account and region over a range of hours.
        Index("ix_stat_rollup_account_region_hour", "account_id", "region", "hour"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True)
    hour: Mapped[datetime]  # the UTC hour the message was created in
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
