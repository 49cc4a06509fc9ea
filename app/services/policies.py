"""Custom access policies (root only); presets are read-only."""

from __future__ import annotations

import json

from sqlalchemy import select

from app.models import Policy
from app.services import audit
from app.services.access import PolicyError, parse_policy
from app.services.context import Ctx
from app.services.errors import Conflict, NotFound, ValidationError, invalid
from app.services.unique import taken
from app.services.values import text


def list_policies(ctx: Ctx) -> list[Policy]:
    ctx.actor.require_root()
    return list(
        ctx.db.scalars(
            select(Policy)
            .where(Policy.account_id == ctx.actor.account_id)
            .order_by(Policy.preset.desc(), Policy.name)
        )
    )


def get_policy(ctx: Ctx, policy_id: int) -> Policy:
    ctx.actor.require_root()
    policy = ctx.db.get(Policy, policy_id)
    if policy is None or policy.account_id != ctx.actor.account_id:
        raise NotFound("No such policy.")
    return policy


NAME_TAKEN = "A policy with this name exists."


def _validate(ctx: Ctx, name: str, description: str, document: str,
              policy_id: int | None) -> tuple[str, str, str]:
    errors: dict[str, str] = {}
    name = text(name, "name", errors, max_len=64, required=True)
    if name and not all(c.isalnum() or c in "-_." for c in name):
        errors["name"] = "Use letters, digits, '-', '_' or '.' only."
    description = text(description, "description", errors, max_len=500)
    taken = ctx.db.scalar(
        select(Policy.id).where(Policy.account_id == ctx.actor.account_id, Policy.name == name)
    )
    if taken is not None and taken != policy_id:
        errors["name"] = NAME_TAKEN
    try:
        parse_policy(document)
        document = json.dumps(json.loads(document), indent=2)
    except PolicyError as exc:
        errors["document"] = str(exc)
    if errors:
        raise ValidationError(errors)
    return name, description, document


def create_policy(ctx: Ctx, *, name: str, description: str, document: str) -> Policy:
    ctx.actor.require_root()
    name, description, document = _validate(ctx, name, description, document, None)
    policy = Policy(account_id=ctx.actor.account_id, name=name, description=description,
                    document=document)
    with taken(ctx.db, invalid("name", NAME_TAKEN)):
        ctx.db.add(policy)
    audit.record(ctx, "CreatePolicy", "policy", policy.id, None,
                 {"name": name, "document": json.loads(document)})
    return policy


def update_policy(ctx: Ctx, policy_id: int, *, name: str, description: str,
                  document: str) -> Policy:
    policy = get_policy(ctx, policy_id)
    if policy.preset:
        raise Conflict("Preset policies cannot be changed; create a custom one.")
    name, description, document = _validate(ctx, name, description, document, policy.id)
    before = {"name": policy.name, "document": json.loads(policy.document)}
    with taken(ctx.db, invalid("name", NAME_TAKEN)):
        policy.name, policy.description, policy.document = name, description, document
    audit.record_changes(ctx, "ModifyPolicy", "policy", policy.id, before,
                         {"name": name, "document": json.loads(document)})
    return policy


def delete_policy(ctx: Ctx, policy_id: int) -> None:
    policy = get_policy(ctx, policy_id)
    if policy.preset:
        raise Conflict("Preset policies cannot be deleted.")
    audit.record(ctx, "DeletePolicy", "policy", policy.id, {"name": policy.name}, None)
    ctx.db.delete(policy)  # detaches it from every user (ON DELETE CASCADE)
    ctx.db.flush()
