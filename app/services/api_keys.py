"""SecretId/SecretKey pairs for the management API (SPEC.md §9).

A pair acts as its user, with that user's policies: the same Actor the web and
Slack build. Everyone manages their own pairs; root manages any user's in the
account. The SecretKey is shown once, when made, and stored encrypted (HMAC
verification needs it, so it cannot be hashed)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import ApiKey, User
from app.services import audit
from app.services.access import Actor
from app.services.accounts import actor_for
from app.services.context import Ctx
from app.services.errors import Conflict, NotFound, PermissionDenied
from app.services.values import checked

MAX_KEYS = 2  # per user (fixed)
TOUCH_EVERY = timedelta(seconds=60)  # last-used time is kept to the minute


def _user(ctx: Ctx, user_id: int) -> User:
    """The user whose pairs are managed: oneself, or (root only) one of the account's."""
    if user_id != ctx.actor.user_id and not ctx.actor.is_root:
        raise PermissionDenied("You may only manage your own API keys.")
    user = ctx.db.get(User, user_id)
    if user is None or user.account_id != ctx.actor.account_id:
        raise NotFound("No such user.")
    return user


def _key(ctx: Ctx, key_id: int) -> ApiKey:
    key = ctx.db.get(ApiKey, key_id)
    owner = ctx.db.get(User, key.user_id) if key else None
    if key is None or owner is None or owner.account_id != ctx.actor.account_id or (
            owner.id != ctx.actor.user_id and not ctx.actor.is_root):
        raise NotFound("No such API key.")  # another user's: nothing to learn
    return key


def snapshot(key: ApiKey) -> dict[str, Any]:
    return {"secret_id": key.secret_id, "user_id": key.user_id, "enabled": key.enabled}


def list_keys(ctx: Ctx, user_id: int) -> list[ApiKey]:
    user = _user(ctx, user_id)
    return list(ctx.db.scalars(select(ApiKey).where(ApiKey.user_id == user.id)
                               .order_by(ApiKey.id)))


def create_key(ctx: Ctx, user_id: int) -> tuple[ApiKey, str]:
    """A new pair; the SecretKey is returned now and never again."""
    user = _user(ctx, user_id)
    # Two concurrent creates must not both count one pair. A write that changes
    # nothing locks the user's row (PostgreSQL) and takes the database's write lock
    # (SQLite, where FOR UPDATE locks nothing) until this transaction ends.
    ctx.db.execute(update(User).where(User.id == user.id)
                   .values(session_version=User.session_version))
    count = ctx.db.scalar(select(func.count()).where(ApiKey.user_id == user.id)) or 0
    if count >= MAX_KEYS:
        raise Conflict(f"A user holds at most {MAX_KEYS} API keys; delete one first.")
    secret_key = secrets.token_hex(32)  # 256 bits
    key = ApiKey(user_id=user.id, secret_id="AKID" + secrets.token_hex(16),
                 secret_key=secret_key)
    ctx.db.add(key)
    ctx.db.flush()
    audit.record(ctx, "CreateApiKey", "api_key", key.secret_id, None, snapshot(key))
    return key, secret_key


def set_enabled(ctx: Ctx, key_id: int, enabled: bool | str) -> ApiKey:
    key = _key(ctx, key_id)
    value = checked("enabled", enabled, required=True)
    if key.enabled != value:
        before = snapshot(key)
        key.enabled = value
        ctx.db.flush()
        audit.record_changes(ctx, "ModifyApiKey", "api_key", key.secret_id, before,
                             snapshot(key))
    return key


def delete_key(ctx: Ctx, key_id: int) -> int:
    """Permanent; returns the id of the user the pair belonged to."""
    key = _key(ctx, key_id)
    owner = key.user_id
    audit.record(ctx, "DeleteApiKey", "api_key", key.secret_id, snapshot(key), None)
    ctx.db.delete(key)
    ctx.db.flush()
    return owner


def credentials(db: Session, secret_id: str) -> tuple[ApiKey, User] | None:
    """The pair and its user, for checking a signature (no actor yet)."""
    key = db.scalar(select(ApiKey).where(ApiKey.secret_id == secret_id))
    if key is None:
        return None
    user = db.get(User, key.user_id)
    return (key, user) if user is not None else None


def actor_of(db: Session, key: ApiKey, user: User) -> Actor:
    """The user the verified pair acts as, with the user's policies, and a note of
    its use. Refuses a disabled pair or user."""
    if not key.enabled:
        raise PermissionDenied("This SecretId is disabled.")
    if not user.active:
        raise PermissionDenied("The user of this SecretId is disabled.")
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_EVERY:
        key.last_used_at = now
        db.flush()
    actor = actor_for(user)
    label = f"{user.email} (API {key.secret_id})"[:254]  # the audit column's width
    return Actor(account_id=actor.account_id, label=label,
                 user_id=actor.user_id, is_root=actor.is_root, statements=actor.statements)
