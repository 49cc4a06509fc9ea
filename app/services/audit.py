"""Writing and reading the audit trail."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.models import AuditEntry
from app.services.context import Ctx

PAGE_SIZE = 50


def record(
    ctx: Ctx,
    action: str,
    target_type: str,
    target_id: object = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    ctx.db.add(
        AuditEntry(
            account_id=ctx.actor.account_id,
            actor_user_id=ctx.actor.user_id,
            actor_label=ctx.actor.label,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            before=before,
            after=after,
        )
    )


def record_changes(
    ctx: Ctx,
    action: str,
    target_type: str,
    target_id: object,
    before: dict[str, Any],
    after: dict[str, Any],
) -> None:
    """Record only the fields that changed, and nothing when none did."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    if keys:
        record(ctx, action, target_type, target_id,
               {k: before.get(k) for k in keys}, {k: after[k] for k in keys})


def browse(
    ctx: Ctx, *, action: str = "", target: str = "", page: int = 1
) -> tuple[list[AuditEntry], int]:
    """Newest first; root only. Returns (entries, total)."""
    ctx.actor.require_root()
    q = select(AuditEntry).where(AuditEntry.account_id == ctx.actor.account_id)
    if action:
        q = q.where(AuditEntry.action == action)
    if target:
        q = q.where(AuditEntry.target_id == target)
    total = ctx.db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = ctx.db.scalars(
        q.order_by(AuditEntry.id.desc()).limit(PAGE_SIZE).offset((max(page, 1) - 1) * PAGE_SIZE)
    ).all()
    return list(rows), total
