"""Statistics rollups (SPEC.md §7, DESIGN.md "Statistics").

`stat_rollup`: one row per UTC hour x account x application x region x country x
signature x template x SMS type x verification flag x outcome x error code x
carrier code, holding how many messages are in that outcome now and their billed
items. `stat_rollup_daily`: the same by the account's local day, so a 30-day page
reads 24 times fewer rows.

The pages that filter on none of signature, template and SMS type read narrower
tables with one column per outcome instead of one row per outcome (a 30-day page
reads day x application x country rows, whatever the traffic's template mix):
`stat_totals_hourly` (UTC hour x account x application x region x verification
flag), `stat_totals_daily` (local day x account x application x region x country)
and `stat_codes_daily` (local day x account x application x region x failure
outcome x error code x carrier code: the failure and receipt-reason tables);
narrower still (migration 0023): `stat_apps_daily` (no country: the overview and
receipts past a day) and `stat_countries_daily` (no application: the country page
of an actor who sees every application).

The pipeline moves a message's count from its old outcome to its new one in the
same transaction as the state change, in one statement for every table
(app/services/rollups.py), so each always equals a GROUP BY over the message table
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
# The narrow tables' keys, and their count columns (one per outcome, app/sms/outcomes).
TOTALS_HOURLY_KEY = ("hour", "account_id", "app_id", "region", "verification")
TOTALS_DAILY_KEY = ("day", "account_id", "app_id", "region", "iso_code")
CODES_DAILY_KEY = ("day", "account_id", "app_id", "region", "outcome", "error_code",
                   "carrier_code")
APPS_DAILY_KEY = ("day", "account_id", "app_id", "region")
COUNTRIES_DAILY_KEY = ("day", "account_id", "region", "iso_code")
OUTCOME_COLUMNS = ("accepted", "rejected", "submitted", "refused", "delivered", "failed",
                   "no_receipt", "unknown")


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


# Filters the narrow tables cannot answer, each with an index of its own.
FILTERED = ("signature_id", "template_id", "iso_code")


def _by(table: str, when: str) -> list[Index]:
    return [Index(f"ix_{table}_{col}", "account_id", "region", col, when) for col in FILTERED]


class StatRollup(_Counts, Base):
    __tablename__ = "stat_rollup"
    __table_args__ = (
        UniqueConstraint(*ROLLUP_KEY, name="uq_stat_rollup_key"),
        # Every statistics query filters one account and region over a range of hours.
        Index("ix_stat_rollup_account_region_hour", "account_id", "region", "hour"),
        # Pages filtered on one of these read only its rows (see _by).
        *_by("stat_rollup", "hour"),
    )

    hour: Mapped[datetime]  # the UTC hour the message was created in


class StatRollupDaily(_Counts, Base):
    __tablename__ = "stat_rollup_daily"
    __table_args__ = (
        UniqueConstraint(*DAILY_KEY, name="uq_stat_rollup_daily_key"),
        Index("ix_stat_rollup_daily_account_region_day", "account_id", "region", "day"),
        *_by("stat_rollup_daily", "day"),
    )

    day: Mapped[date]  # the local day (account's zone) the message was created in


class _Key:
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True)
    account_id: Mapped[int]
    app_id: Mapped[int]
    region: Mapped[str] = mapped_column(String(16))


class _OutcomeColumns:
    """How many messages are in each outcome now, and the billed items of those the
    carrier accepted (outcomes.SUCCESS), the only billed figure the pages show."""

    accepted: Mapped[int] = mapped_column(BigInteger(), default=0)
    rejected: Mapped[int] = mapped_column(BigInteger(), default=0)
    submitted: Mapped[int] = mapped_column(BigInteger(), default=0)
    refused: Mapped[int] = mapped_column(BigInteger(), default=0)
    delivered: Mapped[int] = mapped_column(BigInteger(), default=0)
    failed: Mapped[int] = mapped_column(BigInteger(), default=0)
    no_receipt: Mapped[int] = mapped_column(BigInteger(), default=0)
    unknown: Mapped[int] = mapped_column(BigInteger(), default=0)
    billed: Mapped[int] = mapped_column(BigInteger(), default=0)


class _Outcomes(_OutcomeColumns, _Key):
    pass


class StatTotalsHourly(_Outcomes, Base):
    __tablename__ = "stat_totals_hourly"
    __table_args__ = (
        UniqueConstraint(*TOTALS_HOURLY_KEY, name="uq_stat_totals_hourly_key"),
        Index("ix_stat_totals_hourly_account_region_hour", "account_id", "region", "hour"),
    )

    hour: Mapped[datetime]
    verification: Mapped[bool] = mapped_column(default=False)


class StatTotalsDaily(_Outcomes, Base):
    __tablename__ = "stat_totals_daily"
    __table_args__ = (
        UniqueConstraint(*TOTALS_DAILY_KEY, name="uq_stat_totals_daily_key"),
        Index("ix_stat_totals_daily_account_region_day", "account_id", "region", "day"),
    )

    day: Mapped[date]
    iso_code: Mapped[str] = mapped_column(String(2), default="")


class StatAppsDaily(_Outcomes, Base):
    """Local day x application: the overview and receipt pages of any period longer
    than a day without a country filter (a 92-day range: 1,840 rows for 20
    applications, not 60,000 with their countries). Migration 0023."""

    __tablename__ = "stat_apps_daily"
    __table_args__ = (
        UniqueConstraint(*APPS_DAILY_KEY, name="uq_stat_apps_daily_key"),
        Index("ix_stat_apps_daily_account_region_day", "account_id", "region", "day"),
    )

    day: Mapped[date]


class StatCountriesDaily(_OutcomeColumns, Base):
    """Local day x country, every application of the account together: the country
    page of an actor who sees every application and filters none (a month: 1,500
    rows instead of 30,000). Migration 0023."""

    __tablename__ = "stat_countries_daily"
    __table_args__ = (
        UniqueConstraint(*COUNTRIES_DAILY_KEY, name="uq_stat_countries_daily_key"),
        Index("ix_stat_countries_daily_account_region_day", "account_id", "region", "day"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True)
    account_id: Mapped[int]
    region: Mapped[str] = mapped_column(String(16))
    day: Mapped[date]
    iso_code: Mapped[str] = mapped_column(String(2), default="")


class StatCodesDaily(_Key, Base):
    """Messages in a failure outcome (outcomes.FAILURES) by error and carrier code."""

    __tablename__ = "stat_codes_daily"
    __table_args__ = (
        UniqueConstraint(*CODES_DAILY_KEY, name="uq_stat_codes_daily_key"),
        Index("ix_stat_codes_daily_account_region_day", "account_id", "region", "day"),
    )

    day: Mapped[date]
    outcome: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str] = mapped_column(String(64), default="")
    carrier_code: Mapped[str] = mapped_column(String(64), default="")
    count: Mapped[int] = mapped_column(BigInteger(), default=0)
