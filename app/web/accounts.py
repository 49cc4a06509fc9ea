"""Account settings and the audit log."""

from __future__ import annotations

import zoneinfo
from typing import Any

from flask import Blueprint, current_app, flash, redirect, request, url_for

from app.models.accounts import ACCOUNT_TYPES
from app.services import accounts, audit, users
from app.services.errors import ValidationError
from app.web import commit, ctx, form_errors, page

bp = Blueprint("accounts", __name__)
TIMEZONES = sorted(zoneinfo.available_timezones())


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> Any:
    c = ctx()
    account = accounts.get_settings(c)
    errors: dict[str, str] = {}
    form: Any = None
    if request.method == "POST":
        form = request.form
        try:
            accounts.update_settings(
                c,
                account_type=form.get("account_type", ""),
                timezone=form.get("timezone", ""),
                intl_daily_quota=form.get("intl_daily_quota", ""),
                reply_callback_url=form.get("reply_callback_url", ""),
                reply_callback_enabled=form.get("reply_callback_enabled", ""),
            )
            commit()
            flash("Settings saved.")
            return redirect(url_for("accounts.settings"))
        except ValidationError as exc:
            errors = form_errors(exc)
            account = accounts.get_settings(c)
    return page("accounts/settings.html", "accounts/_settings.html",
                status=422 if errors else 200, account=account, form=form, errors=errors,
                types=ACCOUNT_TYPES, timezones=TIMEZONES,
                can_edit=c.actor.can("ModifyAccountSettings"))


@bp.route("/account", methods=["GET", "POST"])
def my_account() -> Any:
    """The signed-in user's own settings: the Slack member id they use the bot as."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            users.link_slack(ctx(), None, request.form.get("slack_user_id", ""))
            commit()
            flash("Slack link saved.")
            return redirect(url_for("accounts.my_account"))
        except ValidationError as exc:
            errors = form_errors(exc)
    return page("accounts/me.html", status=422 if errors else 200, errors=errors,
                form=request.form, slack_on=bool(current_app.config.get("SLACK_BOT_TOKEN")))


@bp.get("/audit")
def audit_log() -> tuple:
    page_no = request.args.get("page", "1")
    number = int(page_no) if page_no.isdigit() else 1
    action = request.args.get("action", "").strip()[:64]
    target = request.args.get("target", "").strip()[:64]
    entries, total = audit.browse(ctx(), action=action, target=target, page=number)
    return page("accounts/audit.html", "accounts/_audit_rows.html", entries=entries,
                total=total, page_no=number, page_size=audit.PAGE_SIZE, action=action,
                target=target)
