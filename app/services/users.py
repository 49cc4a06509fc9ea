"""Users: the root user and sub-users, their passwords and policies."""

from __future__ import annotations

import redis as redis_lib
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Account, Policy, User
from app.services import audit, passwords
from app.services.context import Ctx
from app.services.errors import Conflict, NotFound, ValidationError, invalid
from app.services.unique import taken
from app.services.values import checked, text

EMAIL_TAKEN = "A user with this email already exists."


def normalize_email(email: str) -> str:
    try:
        checked = validate_email(
            email.strip(), check_deliverability=False, globally_deliverable=False
        )
        return checked.normalized.lower()
    except EmailNotValidError as exc:
        raise invalid("email", str(exc)) from None


def _email_taken(db: Session, email: str) -> bool:
    return db.scalar(select(User.id).where(func.lower(User.email) == email)) is not None


def bootstrap_user(
    db: Session, account: Account, email: str, password: str | None, *, root: bool, name: str = ""
) -> tuple[User, str | None]:
    """Create a user from the server console. Returns the generated one-time
    password when none was given (the user must change it at first login)."""
    email = normalize_email(email)
    if _email_taken(db, email):
        raise Conflict(f"A user with email {email} already exists.")
    generated = None if password else passwords.generate()
    user = User(
        account_id=account.id,
        email=email,
        name=name or email.split("@")[0],
        password_hash=passwords.hash_password(password or generated or ""),
        is_root=root,
        must_change_password=generated is not None,
    )
    with taken(db, Conflict(f"A user with email {email} already exists.")):
        db.add(user)
    return user, generated


def end_sessions(user: User) -> None:
    """Invalidate every session cookie of the user: the version is part of the user id
    a cookie carries, and the web checks it on every request."""
    user.session_version = (user.session_version or 0) + 1


def sign_out(ctx: Ctx) -> None:
    """Logging out ends the actor's sessions everywhere, so a copied cookie dies too."""
    user = ctx.db.get(User, ctx.actor.user_id)
    if user is not None:
        end_sessions(user)
        ctx.db.flush()


def list_users(ctx: Ctx) -> list[User]:
    ctx.actor.require_root()
    return list(
        ctx.db.scalars(
            select(User).where(User.account_id == ctx.actor.account_id).order_by(User.email)
        )
    )


def get_user(ctx: Ctx, user_id: int) -> User:
    ctx.actor.require_root()
    user = ctx.db.get(User, user_id)
    if user is None or user.account_id != ctx.actor.account_id:
        raise NotFound("No such user.")
    return user


def create_sub_user(ctx: Ctx, *, email: str, name: str) -> tuple[User, str]:
    """Root creates a sub-user; returns the one-time password to hand over."""
    ctx.actor.require_root()
    errors: dict[str, str] = {}
    name = text(name, "name", errors, max_len=100)
    try:
        email = normalize_email(email)
        if _email_taken(ctx.db, email):
            errors["email"] = EMAIL_TAKEN
    except ValidationError as exc:
        errors.update(exc.errors)
    if errors:
        raise ValidationError(errors)
    account = ctx.db.get(Account, ctx.actor.account_id)
    assert account is not None
    try:
        user, generated = bootstrap_user(ctx.db, account, email, None, root=False, name=name)
    except Conflict:  # created by a concurrent request since the check above
        raise invalid("email", EMAIL_TAKEN) from None
    audit.record(ctx, "CreateUser", "user", user.id, None, {"email": email, "name": user.name})
    assert generated is not None
    return user, generated


def set_policies(ctx: Ctx, user_id: int, policy_ids: list[int]) -> User:
    user = get_user(ctx, user_id)
    if user.is_root:
        raise Conflict("The root user has every right; policies do not apply.")
    policies = list(
        ctx.db.scalars(
            select(Policy).where(
                Policy.account_id == ctx.actor.account_id, Policy.id.in_(policy_ids)
            )
        )
    )
    if len(policies) != len(set(policy_ids)):
        raise invalid("policies", "Unknown policy.")
    before = sorted(p.name for p in user.policies)
    user.policies = policies
    ctx.db.flush()
    after = sorted(p.name for p in policies)
    if before != after:
        audit.record(ctx, "AttachPolicies", "user", user.id,
                     {"policies": before}, {"policies": after})
    return user


def set_active(ctx: Ctx, user_id: int, active: bool | str) -> User:
    """active: a bool, or on/off as a form sends it; anything else is refused."""
    user = get_user(ctx, user_id)
    active = checked("active", active, required=True)
    if user.is_root:
        raise Conflict("The root user cannot be disabled.")
    if user.active != active:
        user.active = active
        end_sessions(user)  # enabling again must not revive a cookie from before
        audit.record(ctx, "ModifyUserStatus", "user", user.id,
                     {"active": not active}, {"active": active})
    return user


def reset_password(ctx: Ctx, user_id: int) -> str:
    user = get_user(ctx, user_id)
    generated = passwords.generate()
    user.password_hash = passwords.hash_password(generated)
    user.must_change_password = True
    end_sessions(user)
    audit.record(ctx, "ResetPassword", "user", user.id)
    return generated


def delete_user(ctx: Ctx, user_id: int) -> None:
    user = get_user(ctx, user_id)
    if user.is_root:
        raise Conflict("The root user cannot be deleted.")
    audit.record(ctx, "DeleteUser", "user", user.id, {"email": user.email}, None)
    ctx.db.delete(user)
    ctx.db.flush()


def change_own_password(ctx: Ctx, current: str, new: str, confirm: str, *,
                        redis: redis_lib.Redis) -> None:
    """LoginThrottled after too many wrong current passwords (auth.check_current_password)."""
    from app.services import auth

    user = ctx.db.get(User, ctx.actor.user_id)
    if user is None:
        raise NotFound("No such user.")
    if not auth.check_current_password(redis, ctx.settings, user, current):
        raise invalid("current", "This is not your current password.")
    errors: dict[str, str] = {}
    try:
        passwords.check_strength(new, "new")
    except ValidationError as exc:
        errors.update(exc.errors)
    if new != confirm:
        errors["confirm"] = "The two new passwords differ."
    elif new == current:
        errors["new"] = "Choose a password different from the current one."
    if errors:
        raise ValidationError(errors)
    user.password_hash = passwords.hash_password(new)
    user.must_change_password = False
    end_sessions(user)  # the caller signs this browser in again
    audit.record(ctx, "ChangePassword", "user", user.id)
