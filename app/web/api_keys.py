"""SecretId/SecretKey pairs on My account, and (root) on a user's page. The rules
(who may manage whose pairs, at most two) are in app/services/api_keys."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from app.models import ApiKey
from app.services import api_keys
from app.services.errors import Conflict, ValidationError
from app.web import commit, ctx

bp = Blueprint("api_keys", __name__)


def keys_of(user_id: int) -> list[ApiKey]:
    """For the pages that show a user's pairs."""
    return api_keys.list_keys(ctx(), user_id)


def _back(user_id: int) -> str:
    if user_id == current_user.id:
        return url_for("accounts.my_account") + "#api-keys"
    return url_for("users.detail", user_id=user_id) + "#api-keys"


@bp.post("/api-keys/users/<int:user_id>")
def create(user_id: int) -> Any:
    from app.web.accounts import _my_account
    from app.web.users import detail

    try:
        key, secret = api_keys.create_key(ctx(), user_id)
        commit()
    except (Conflict, ValidationError) as exc:
        flash(exc.message, "error")
        return redirect(_back(user_id))
    new = {"secret_id": key.secret_id, "secret_key": secret}
    # Rendered, never flashed: the flash would carry the key in the session cookie.
    if user_id == current_user.id:
        return _my_account(new_key=new)
    return detail(user_id, new_key=new)


@bp.post("/api-keys/<int:key_id>/status")
def set_status(key_id: int) -> Response:
    try:
        key = api_keys.set_enabled(ctx(), key_id, request.form.get("enabled", ""))
        commit()
    except ValidationError as exc:
        flash(exc.message, "error")
        return redirect(url_for("accounts.my_account"))
    flash(f"{key.secret_id} {'enabled' if key.enabled else 'disabled'}.")
    return redirect(_back(key.user_id))


@bp.post("/api-keys/<int:key_id>/delete")
def delete(key_id: int) -> Response:
    owner = api_keys.delete_key(ctx(), key_id)
    commit()
    flash("API key deleted; requests signed with it are refused from now on.")
    return redirect(_back(owner))
