"""Sub-users and access policies (root only)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, flash, redirect, request, url_for
from werkzeug.wrappers import Response

from app.services import policies, slack_link, users
from app.services.access import PRESETS
from app.services.errors import Conflict, ValidationError
from app.services.values import record_ids
from app.web import commit, ctx, form_errors, page

bp = Blueprint("users", __name__)

POLICY_EXAMPLE = """{
  "version": "2.0",
  "statement": [
    {"effect": "allow", "action": ["sms:Describe*", "sms:ModifyAppInfo"],
     "resource": ["sms:app/1400000001"]},
    {"effect": "deny", "action": ["sms:DeleteAppInfo"], "resource": ["sms:app/*"]}
  ]
}"""



@bp.get("/users")
def index() -> tuple:
    return page("users/index.html", users=users.list_users(ctx()), errors={}, form={})


@bp.post("/users")
def create() -> tuple:
    try:
        user, password = users.create_sub_user(ctx(), email=request.form.get("email", ""),
                                                name=request.form.get("name", ""))
        commit()
    except (ValidationError, Conflict) as exc:
        return page("users/index.html", "users/_create.html", status=422,
                    users=users.list_users(ctx()), errors=form_errors(exc), form=request.form)
    return page("users/created.html", user=user, password=password,
                users=users.list_users(ctx()))  # the list is swapped in out of band


@bp.get("/users/<int:user_id>")
def detail(user_id: int, new_key: dict[str, str] | None = None, *, status: int = 200,
           errors: dict[str, str] | None = None, password: str | None = None) -> tuple:
    """The user's page, whole: after a refused change (`errors`) or a password reset too."""
    from app.web.api_keys import keys_of

    user = users.get_user(ctx(), user_id)
    return page("users/detail.html", status=status, user=user,
                policies=policies.list_policies(ctx()), errors=errors or {},
                password=password, api_keys=keys_of(user.id), new_key=new_key, key_user=user)


@bp.post("/users/<int:user_id>/policies")
def set_policies(user_id: int) -> Any:
    ids = record_ids(request.form.getlist("policy"))
    try:
        users.set_policies(ctx(), user_id, ids)
        commit()
    except (ValidationError, Conflict) as exc:
        return detail(user_id, status=422, errors=form_errors(exc))
    flash("Policies saved.")
    return redirect(url_for("users.detail", user_id=user_id))


@bp.post("/users/<int:user_id>/status")
def set_status(user_id: int) -> Response:
    try:
        user = users.set_active(ctx(), user_id, request.form.get("active", ""))
        commit()
    except (ValidationError, Conflict) as exc:
        flash(form_errors(exc).get("active") or exc.message, "error")
        return redirect(url_for("users.detail", user_id=user_id))
    flash("User enabled." if user.active else "User disabled; they can no longer sign in.")
    return redirect(url_for("users.detail", user_id=user_id))


@bp.post("/users/<int:user_id>/password")
def reset_password(user_id: int) -> tuple:
    password = users.reset_password(ctx(), user_id)
    commit()
    return detail(user_id, password=password)


@bp.post("/users/<int:user_id>/slack/unlink")
def unlink_slack(user_id: int) -> Response:
    """Root may remove a link; making one takes the user's own code (app/services/slack_link)."""
    slack_link.unlink(ctx(), user_id)
    commit()
    flash("Slack account unlinked.")
    return redirect(url_for("users.detail", user_id=user_id))


@bp.post("/users/<int:user_id>/delete")
def delete(user_id: int) -> Response:
    users.delete_user(ctx(), user_id)
    commit()
    flash("User deleted.")
    return redirect(url_for("users.index"))


@bp.get("/policies")
def policy_index() -> tuple:
    return page("policies/index.html", policies=policies.list_policies(ctx()))


@bp.route("/policies/new", methods=["GET", "POST"])
def policy_new() -> Any:
    form: Any = {"document": POLICY_EXAMPLE}
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = request.form
        try:
            policy = policies.create_policy(ctx(), name=form.get("name", ""),
                                            description=form.get("description", ""),
                                            document=form.get("document", ""))
            commit()
            flash(f"Policy {policy.name} created.")
            return redirect(url_for("users.policy_index"))
        except (ValidationError, Conflict) as exc:
            errors = form_errors(exc)
    ctx().actor.require_root()
    return page("policies/edit.html", "policies/_form.html", status=422 if errors else 200,
                policy=None, form=form, errors=errors, presets=PRESETS)


@bp.route("/policies/<int:policy_id>", methods=["GET", "POST"])
def policy_edit(policy_id: int) -> Any:
    policy = policies.get_policy(ctx(), policy_id)
    form: Any = {"name": policy.name, "description": policy.description,
                 "document": policy.document}
    errors: dict[str, str] = {}
    if request.method == "POST":
        form = request.form
        try:
            policies.update_policy(ctx(), policy_id, name=form.get("name", ""),
                                   description=form.get("description", ""),
                                   document=form.get("document", ""))
            commit()
            flash("Policy saved.")
            return redirect(url_for("users.policy_index"))
        except (ValidationError, Conflict) as exc:
            errors = form_errors(exc)
            policy = policies.get_policy(ctx(), policy_id)
    return page("policies/edit.html", "policies/_form.html", status=422 if errors else 200,
                policy=policy, form=form, errors=errors, presets=PRESETS)


@bp.post("/policies/<int:policy_id>/delete")
def policy_delete(policy_id: int) -> Response:
    policies.delete_policy(ctx(), policy_id)
    commit()
    flash("Policy deleted.")
    return redirect(url_for("users.policy_index"))
