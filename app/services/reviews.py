"""Reviewing content: the queue, approve, reject (SPEC.md §2).

Beyond the hosted console: nobody reviews their own submission, and every
decision is in the audit trail. A decision is a conditional update on the
pending status, so two reviewers clicking at once cannot both decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from app.db import utcnow
from app.gateways.simulator import SimulatorGateway
from app.models import Qualification, Signature, Template, UnsubscribeRemoval, User
from app.models.content import (
    APPROVED,
    APPROVED_PENDING_EFFECT,
    EFFECTIVE,
    PENDING,
    REJECTED,
    STATUS_LABELS,
)
from app.services import alarms, audit, notifications
from app.services.content import Content, snapshot
from app.services.context import Ctx
from app.services.errors import Conflict, NotFound, PermissionDenied, ValidationError, invalid
from app.services.values import text
from app.sms import alarm_texts, templating
from app.sms.text import count

DECIDED_JOB = "jobs.reviews.decided"
KINDS: dict[str, Any] = {"qualification": Qualification, "signature": Signature,
                         "template": Template, "unsubscribe_removal": UnsubscribeRemoval}
LABELS = {"qualification": "qualification", "signature": "signature", "template": "template",
          "unsubscribe_removal": "unsubscribe removal request"}


def link_of(kind: str, obj_id: int) -> str:
    """Where the object is on the web (a path)."""
    if kind == "unsubscribe_removal":
        return "/unsubscribes"
    return f"/content/{kind}s/{obj_id}"


@dataclass(frozen=True)
class ReviewItem:
    kind: str
    obj: Any
    title: str
    changes: list[tuple[str, Any, Any]]  # field, at last decision, now
    facts: dict[str, Any]


def title_of(kind: str, obj: Content) -> str:
    if isinstance(obj, Qualification):
        return obj.enterprise_name
    if isinstance(obj, Signature):
        return obj.content
    if isinstance(obj, UnsubscribeRemoval):
        return f"{obj.phone_number} ({obj.sms_type})"
    return obj.name


def facts_of(obj: Content) -> dict[str, Any]:
    """What a reviewer needs beside the fields: for templates, what a message costs."""
    if not isinstance(obj, Template):
        return {}
    found = templating.variables(obj.content)
    sample = templating.render(obj.content, templating.sample_params(max(found, default=0),
                                                                     obj.sms_type))
    counted = count(sample, obj.region)
    return {"variables": found, "encoding": counted.encoding,
            "billed_items": counted.billed_items, "characters": counted.characters}


def _changes(obj: Content) -> list[tuple[str, Any, Any]]:
    if not obj.decided_snapshot:
        return []
    now = snapshot(obj)
    return [(k, obj.decided_snapshot.get(k), v) for k, v in now.items()
            if obj.decided_snapshot.get(k) != v]


def queue(ctx: Ctx) -> list[ReviewItem]:
    """Everything pending review, oldest first."""
    ctx.actor.require("DescribeSmsTemplateList")
    items = []
    for kind, model in KINDS.items():
        for obj in ctx.db.scalars(select(model).where(
            model.account_id == ctx.actor.account_id, model.status == PENDING)):
            items.append(ReviewItem(kind, obj, title_of(kind, obj), _changes(obj),
                                    facts_of(obj)))
    return sorted(items, key=lambda i: i.obj.submitted_at)


def load(ctx: Ctx, kind: str, obj_id: int) -> Content:
    model = KINDS.get(kind)
    if model is None:
        raise NotFound(f"No such kind of content: {kind}.")
    ctx.actor.require("DescribeSmsTemplateList")
    obj = ctx.db.get(model, obj_id)
    if obj is None or obj.account_id != ctx.actor.account_id:
        raise NotFound(f"No such {kind}.")
    return obj


def approve(ctx: Ctx, kind: str, obj_id: int, *, revision: int) -> Content:
    """Approve the revision the reviewer saw; refused if it changed since."""
    return _decide(ctx, kind, obj_id, approve=True, reason=None, revision=revision)


def reject(ctx: Ctx, kind: str, obj_id: int, reason: str, *, revision: int) -> Content:
    reason = (reason or "").strip()
    if not reason:
        raise invalid("reason", "Say why it is rejected; the submitter will read it.")
    if len(reason) > 500:
        raise invalid("reason", "Use at most 500 characters.")
    errors: dict[str, str] = {}
    text(reason, "reason", errors, max_len=500, multiline=True)  # no control characters
    if errors:
        raise ValidationError(errors)
    return _decide(ctx, kind, obj_id, approve=False, reason=reason, revision=revision)


def _changed(kind: str, obj: Content) -> Conflict:
    return Conflict(f"This {LABELS[kind]} changed since you opened it (it is now revision "
                    f"{obj.revision}); look at it again before deciding.")


def _refusal(kind: str, obj: Content) -> Conflict:
    if obj.status == PENDING:
        return _changed(kind, obj)
    return Conflict(f"Already decided: {STATUS_LABELS[obj.status].lower()} by "
                    f"{obj.decided_by or 'someone else'}.")


def decidable(ctx: Ctx, kind: str, obj_id: int, revision: int) -> Content:
    """The object, if this actor may decide this revision of it now; e.g. before
    asking for a reason that would be refused anyway."""
    ctx.actor.require("ReviewContent")
    obj = load(ctx, kind, obj_id)
    if ctx.actor.user_id is not None and obj.submitted_by_id == ctx.actor.user_id:
        raise PermissionDenied("You cannot review your own submission.")
    if obj.status != PENDING or obj.revision != revision:
        raise _refusal(kind, obj)
    return obj


def _decide(ctx: Ctx, kind: str, obj_id: int, *, approve: bool, reason: str | None,
            revision: int) -> Content:
    obj = decidable(ctx, kind, obj_id, revision)
    if approve:
        new_status = {"qualification": APPROVED, "signature": APPROVED_PENDING_EFFECT,
                      "template": EFFECTIVE, "unsubscribe_removal": APPROVED}[kind]
    else:
        new_status = REJECTED
    model = KINDS[kind]
    now = utcnow()
    # Conditional on the status and the revision: an edit committed since the object
    # was loaded (or still holding the row) makes this match nothing.
    done = ctx.db.execute(
        update(model)
        .where(model.id == obj.id, model.status == PENDING, model.revision == revision)
        .values(status=new_status, reject_reason=reason, decided_by=ctx.actor.label,
                decided_at=now, decided_snapshot=snapshot(obj), revision=model.revision + 1)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        ctx.db.refresh(obj)
        raise _refusal(kind, obj)
    ctx.db.refresh(obj)
    if isinstance(obj, Signature) and approve:
        gateway = ctx.gateway or SimulatorGateway()
        if gateway.register_signature(obj.region, obj.content):
            obj.status = EFFECTIVE
    if isinstance(obj, UnsubscribeRemoval) and approve:
        from app.services.unsubscribes import apply_removal

        apply_removal(ctx, obj)
    ctx.db.flush()
    audit.record(ctx, "ReviewContent", kind, obj.id, {"status": PENDING},
                 {"status": obj.status, "reason": reason, "title": title_of(kind, obj)})
    _tell(ctx, kind, obj)
    ctx.defer(DECIDED_JOB, kind, obj.id)  # e.g. updates the Slack review message
    return obj


def _tell(ctx: Ctx, kind: str, obj: Content) -> None:
    """The submitter, and alarm contacts subscribed to review results."""
    outcome = STATUS_LABELS[obj.status].lower()
    title = " ".join(title_of(kind, obj).split())  # one line: it goes in a Subject header
    label = LABELS[kind]
    subject = f"Your {label} “{title}” is {outcome}"
    lines = [f"The {label} “{title}” was reviewed by {obj.decided_by}: {outcome}."]
    if obj.reject_reason:
        lines.append(f"Reason: {obj.reject_reason}")
        lines.append("Edit it and it is submitted for review again.")
    lines.append(f"{ctx.settings.base_url}{link_of(kind, obj.id)}")
    submitter = ctx.db.get(User, obj.submitted_by_id) if obj.submitted_by_id else None
    extra: list[tuple[str, str]] = []
    if submitter is not None:
        extra.append(("email", submitter.email))
        if submitter.slack_user_id and "slack" in ctx.settings.notify_channels:
            extra.append(("slack", submitter.slack_user_id))
    sms = alarm_texts.render("review", kind=label, id=obj.id, outcome=outcome)  # no user text
    # A decision happens once, so no period guard; account-level content reaches only
    # contacts whose saver may read this kind of it.
    alarms.raise_alarm(ctx, None, "review", period=f"{kind}:{obj.id}:{obj.status}",
                       ttl_s=0, app=None, subject=subject, body="\n".join(lines), sms=sms,
                       figures={"kind": kind, "object_id": obj.id, "outcome": outcome},
                       extra=extra, read_action=notifications.REVIEW_READ_ACTIONS[kind])


def pending_count(ctx: Ctx) -> int:
    """How many items wait for review (the queue's length) without loading them."""
    ctx.actor.require("DescribeSmsTemplateList")
    return sum(ctx.db.scalar(select(func.count()).select_from(model).where(
        model.account_id == ctx.actor.account_id, model.status == PENDING)) or 0
        for model in KINDS.values())
