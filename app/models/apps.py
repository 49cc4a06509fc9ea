"""Applications and their basic configuration (SPEC.md §1)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, utcnow
from app.encryption import EncryptedText

# Events an alarm contact can subscribe to.
ALARM_EVENTS = {
    "frequency": "Frequency-limit hits",
    "threshold": "Over threshold / over limit",
    "review": "Template and signature review results",
    "package": "Package (credit) alarms",
    "captcha": "Captcha-abuse alarms",
    "link": "Carrier link down / back up",
    "task": "Bulk task failed or stopped",
}


class Application(Base):
    __tablename__ = "application"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    sdk_app_id: Mapped[str] = mapped_column(String(10), unique=True)
    name: Mapped[str] = mapped_column(String(64))
    overview: Mapped[str] = mapped_column(String(500), default="")
    tags: Mapped[list[str]] = mapped_column(default=list)
    enabled: Mapped[bool] = mapped_column(default=True)
    # Needed in full to verify HMAC signatures, so it cannot be a one-way hash:
    # encrypted at rest instead, and plain text in Python.
    app_key: Mapped[str] = mapped_column(EncryptedText())
    key_rotated_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Daily thresholds, in billed items; None means not set.
    mainland_alarm_threshold: Mapped[int | None]
    mainland_daily_limit: Mapped[int | None]
    intl_alarm_threshold: Mapped[int | None]
    intl_daily_limit: Mapped[int | None]

    status_callback_url: Mapped[str | None] = mapped_column(String(2048))

    # Frequency limits per phone number.
    freq_30s_enabled: Mapped[bool] = mapped_column(default=True)
    freq_30s_limit: Mapped[int] = mapped_column(default=1)
    freq_hour_enabled: Mapped[bool] = mapped_column(default=False)
    freq_hour_limit: Mapped[int] = mapped_column(default=5)
    freq_day_enabled: Mapped[bool] = mapped_column(default=True)
    freq_day_limit: Mapped[int] = mapped_column(default=2)

    countries: Mapped[list[AllowedCountry]] = relationship(
        back_populates="app", cascade="all, delete-orphan", order_by="AllowedCountry.iso_code"
    )
    allowlist: Mapped[list[FrequencyAllowlistEntry]] = relationship(
        cascade="all, delete-orphan", order_by="FrequencyAllowlistEntry.phone_number"
    )
    contacts: Mapped[list[AlarmContact]] = relationship(
        cascade="all, delete-orphan", order_by="AlarmContact.id"
    )

    @property
    def masked_key(self) -> str:
        return self.app_key[:4] + "•" * 12 + self.app_key[-4:]


class AllowedCountry(Base):
    __tablename__ = "allowed_country"
    __table_args__ = (UniqueConstraint("app_id", "iso_code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"))
    iso_code: Mapped[str] = mapped_column(String(2))
    alarm_threshold: Mapped[int | None]
    daily_limit: Mapped[int | None]  # None: the application's international limit

    app: Mapped[Application] = relationship(back_populates="countries")


class FrequencyAllowlistEntry(Base):
    __tablename__ = "frequency_allowlist"
    __table_args__ = (UniqueConstraint("app_id", "phone_number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"))
    phone_number: Mapped[str] = mapped_column(String(20))  # E.164
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AlarmContact(Base):
    __tablename__ = "alarm_contact"

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("application.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    mobile: Mapped[str | None] = mapped_column(String(20))  # E.164
    email: Mapped[str | None] = mapped_column(String(254))
    slack_user_id: Mapped[str | None] = mapped_column(String(32))
    events: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Who last added or edited the contact: account-level content (review results)
    # reaches the contact only while this user may read it (README, Notifications).
    saved_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL", name="fk_alarm_contact_saved_by")
    )
    # SMS alarms go only to a mobile confirmed with a code texted to it.
    mobile_confirmed_at: Mapped[datetime | None]
    confirm_code_hash: Mapped[str | None] = mapped_column(String(255))
    confirm_expires_at: Mapped[datetime | None]
    confirm_attempts: Mapped[int] = mapped_column(default=0)  # wrong codes for this code
    confirm_sent_at: Mapped[datetime | None]  # the last code sent
    confirm_window_at: Mapped[datetime | None]  # start of the 24 h window codes count in
    confirm_sends: Mapped[int] = mapped_column(default=0)  # codes sent in that window
