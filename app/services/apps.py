"""Applications: create, list, edit, key rotation, status, delete (SPEC.md §1)."""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import func, select

from app.db import utcnow
from app.models import Application
from app.services import audit
from app.services.access import Actor
from app.services.context import Ctx
from app.services.errors import Conflict, NotFound, ValidationError, invalid
from app.services.values import checked, text

MAX_APPS = 500  # per account (fixed)
MAX_TAGS = 10
FIRST_SDK_APP_ID = 1400000001


def new_app_key() -> str:
    return secrets.token_hex(32)  # 256 bits


def list_apps(ctx: Ctx, action: str = "DescribeAppList") -> list[Application]:
    """The applications this actor may see, or do `action` on (a form that offers the
    applications to act on: the action is enough, as in `allowed`)."""
    apps = ctx.db.scalars(
        select(Application)
        .where(Application.account_id == ctx.actor.account_id)
        .order_by(Application.sdk_app_id)
    ).all()
    return [a for a in apps if ctx.actor.can(action, a.sdk_app_id)]


def allowed(ctx: Ctx, action: str) -> dict[int, str]:
    """id → SdkAppId of the applications the actor may do `action` on: what a list
    of their rows (tasks, messages, replies, alarms) narrows to. The action on an
    application is enough; seeing it in the application list is not needed."""
    return {app_id: sdk_app_id for app_id, sdk_app_id in ctx.db.execute(
        select(Application.id, Application.sdk_app_id).where(
            Application.account_id == ctx.actor.account_id))
        if ctx.actor.can(action, sdk_app_id)}


def get_app(ctx: Ctx, sdk_app_id: str, action: str = "DescribeAppInfo") -> Application:
    """Load an application the actor may apply `action` to.

    Not visible at all → NotFound, so out-of-scope users learn nothing;
    visible but not allowed → PermissionDenied.
    """
    app = ctx.db.scalar(
        select(Application).where(
            Application.account_id == ctx.actor.account_id,
            Application.sdk_app_id == str(sdk_app_id),
        )
    )
    require_app(ctx.actor, app, sdk_app_id, action)
    assert app is not None
    return app


def require_app(actor: Actor, app: Any, sdk_app_id: str, action: str) -> None:
    """get_app's rule for an application already loaded (or a snapshot of one)."""
    if app is None or app.account_id != actor.account_id or not (
        actor.can("DescribeAppInfo", app.sdk_app_id)
        or actor.can("DescribeAppList", app.sdk_app_id)
        or actor.can(action, app.sdk_app_id)
    ):
        raise NotFound(f"No application {sdk_app_id}.")
    actor.require(action, app.sdk_app_id)


def _info(name: str, overview: str, tags: str | list[str]) -> tuple[str, str, list[str]]:
    errors: dict[str, str] = {}
    name = text(name, "name", errors, max_len=64, required=True)
    overview = text(overview, "overview", errors, max_len=500, multiline=True)
    raw = tags.split(",") if isinstance(tags, str) else tags
    tag_list = sorted({t.strip() for t in raw if t.strip()})
    if len(tag_list) > MAX_TAGS:
        errors["tags"] = f"At most {MAX_TAGS} tags."
    elif any(len(t) > 32 for t in tag_list):
        errors["tags"] = "Each tag has at most 32 characters."
    else:
        for t in tag_list:
            text(t, "tags", errors, max_len=32)  # one line each
    if errors:
        raise ValidationError(errors)
    return name, overview, tag_list


def snapshot(app: Application) -> dict[str, Any]:
    return {"name": app.name, "overview": app.overview, "tags": list(app.tags),
            "enabled": app.enabled}


def create_app(ctx: Ctx, *, name: str, overview: str = "",
               tags: str | list[str] = "") -> tuple[Application, str]:
    """Returns the application and its AppKey, which is shown in full only now."""
    ctx.actor.require("CreateApp")
    name, overview, tag_list = _info(name, overview, tags)
    count = ctx.db.scalar(
        select(func.count()).where(Application.account_id == ctx.actor.account_id)
    )
    if (count or 0) >= MAX_APPS:
        raise Conflict(f"An account holds at most {MAX_APPS} applications.")
    # Installation-wide sequence; the unique constraint guards concurrent creates.
    last = ctx.db.scalar(select(func.max(Application.sdk_app_id)))
    sdk_app_id = str(int(last) + 1) if last else str(FIRST_SDK_APP_ID)
    key = new_app_key()
    app = Application(account_id=ctx.actor.account_id, sdk_app_id=sdk_app_id, name=name,
                      overview=overview, tags=tag_list, app_key=key)
    ctx.db.add(app)
    ctx.db.flush()
    audit.record(ctx, "CreateApp", "app", sdk_app_id, None, snapshot(app))
    return app, key


def update_info(ctx: Ctx, sdk_app_id: str, *, name: str, overview: str,
                tags: str | list[str]) -> Application:
    app = get_app(ctx, sdk_app_id, "ModifyAppInfo")
    name, overview, tag_list = _info(name, overview, tags)
    before = snapshot(app)
    app.name, app.overview, app.tags = name, overview, tag_list
    ctx.db.flush()
    audit.record_changes(ctx, "ModifyAppInfo", "app", sdk_app_id, before,
                         snapshot(app))
    return app


def rotate_key(ctx: Ctx, sdk_app_id: str) -> str:
    """A new AppKey; the old one stops working at once."""
    app = get_app(ctx, sdk_app_id, "ModifyAppKey")
    app.app_key = new_app_key()
    app.key_rotated_at = utcnow()
    ctx.db.flush()
    audit.record(ctx, "ModifyAppKey", "app", sdk_app_id)  # never the key itself
    return app.app_key


def set_enabled(ctx: Ctx, sdk_app_id: str, enabled: bool | str) -> Application:
    """enabled: a bool, or on/off as a form sends it; anything else is refused."""
    app = get_app(ctx, sdk_app_id, "ModifyAppStatus")
    enabled = checked("enabled", enabled, required=True)
    if app.enabled != enabled:
        app.enabled = enabled
        ctx.db.flush()
        audit.record(ctx, "ModifyAppStatus", "app", sdk_app_id,
                     {"enabled": not enabled}, {"enabled": enabled})
    return app


def delete_app(ctx: Ctx, sdk_app_id: str, confirmation: str) -> None:
    """Permanent. Only a disabled application, and only when the user typed its AppID."""
    app = get_app(ctx, sdk_app_id, "DeleteAppInfo")
    if app.enabled:
        raise Conflict("Disable the application before deleting it.")
    if confirmation.strip() != app.sdk_app_id:
        raise invalid("confirmation", f"Type {app.sdk_app_id} to confirm the deletion.")
    audit.record(ctx, "DeleteAppInfo", "app", sdk_app_id, snapshot(app), None)
    from app.services import rollups

    rollups.forget_app(ctx.db, app.account_id, app.id)
    ctx.db.delete(app)
    ctx.db.flush()

