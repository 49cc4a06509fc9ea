"""Content under review (SPEC.md §2): qualifications, signatures, body templates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, false
from sqlalchemy.orm import Mapped, declared_attr, mapped_column, relationship

from app.db import Base, utcnow

PENDING = "pending"
APPROVED = "approved"  # qualifications
APPROVED_PENDING_EFFECT = "approved_pending_effect"  # signatures the carrier still registers
EFFECTIVE = "effective"
REJECTED = "rejected"
STATUS_LABELS = {
    PENDING: "Pending review",
    APPROVED: "Approved",
    APPROVED_PENDING_EFFECT: "Approved, pending effect",
    EFFECTIVE: "Effective",
    REJECTED: "Rejected",
}
EDITABLE = (PENDING, REJECTED)


class Reviewed:
    """Columns every reviewable object has."""

    status: Mapped[str] = mapped_column(String(32), default=PENDING)
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    submitted_by_id: Mapped[int | None]  # the user; kept as a number if they are deleted
    submitted_by: Mapped[str] = mapped_column(String(254))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_by: Mapped[str | None] = mapped_column(String(254))
    decided_at: Mapped[datetime | None]
    # The reviewable fields as they were at the last decision, to show what changed.
    decided_snapshot: Mapped[dict[str, Any] | None]
    # The row's version: bumped by every change (an edit, a decision), and every ORM
    # UPDATE is conditional on it (SQLAlchemy's version counter), so an edit and a
    # decision racing on the same row cannot both land. A decision names the revision
    # the reviewer saw, with the id: ids are never reused (SQLite's AUTOINCREMENT), or
    # a deleted item's Approve button would approve a new one at the same id and revision.
    revision: Mapped[int] = mapped_column(default=1, server_default="1")

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.__table__.c.revision}  # type: ignore[attr-defined]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


class Qualification(Reviewed, Base):
    __tablename__ = "qualification"
    __table_args__ = {"sqlite_autoincrement": True}  # ids never reused: see Reviewed

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    use: Mapped[str] = mapped_column(String(16))  # self | third_party
    enterprise_name: Mapped[str] = mapped_column(String(200))
    licence_number: Mapped[str] = mapped_column(String(64))
    legal_rep_name: Mapped[str] = mapped_column(String(64))
    legal_rep_id_number: Mapped[str] = mapped_column(String(64))
    admin_name: Mapped[str] = mapped_column(String(64))
    admin_phone: Mapped[str] = mapped_column(String(20))

    signatures: Mapped[list[Signature]] = relationship(back_populates="qualification")


class Signature(Reviewed, Base):
    __tablename__ = "signature"
    __table_args__ = (Index("ix_signature_account_region", "account_id", "region"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    region: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16))  # self | other
    qualification_id: Mapped[int | None] = mapped_column(
        ForeignKey("qualification.id", ondelete="SET NULL")
    )
    sign_type: Mapped[str] = mapped_column(String(32))
    content: Mapped[str] = mapped_column(String(12))
    proof_image: Mapped[str | None] = mapped_column(String(64))  # file name under uploads/
    authorization_image: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str] = mapped_column(String(500), default="")
    # Set when its qualification is deleted: the signature can no longer be used.
    orphaned: Mapped[bool] = mapped_column(default=False)

    qualification: Mapped[Qualification | None] = relationship(back_populates="signatures")

    @property
    def usable(self) -> bool:
        if self.status != EFFECTIVE or self.orphaned:
            return False
        if self.region == "mainland":
            return self.qualification is not None and self.qualification.status == APPROVED
        return True


class Template(Reviewed, Base):
    __tablename__ = "template"
    __table_args__ = (Index("ix_template_account_region", "account_id", "region"),
                      {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("account.id", ondelete="CASCADE"))
    region: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    sms_type: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text)
    notes: Mapped[str] = mapped_column(String(500), default="")
    # Whether parameters may carry URLs (SPEC.md §3); reviewed like the content.
    allow_url_params: Mapped[bool] = mapped_column(default=False, server_default=false())
    # The same template's id at a carrier that sends by template (tencentcloud).
    carrier_template_id: Mapped[str | None] = mapped_column(String(32))
