"""Account settings and the audit log."""

from __future__ import annotations

import json
from itertools import groupby
from typing import Any

from flask import Blueprint, current_app, flash, redirect, request, url_for
from flask_login import current_user

from app.models.accounts import ACCOUNT_TYPES
from app.services import accounts, audit, slack_link, tasks
from app.services.errors import ValidationError
from app.services.limits import Limiter
from app.web import commit, ctx, form_errors, page, page_number

bp = Blueprint("accounts", __name__)
AUDIT_PREVIEW_CHARS = 200  # longer values are cut, the rest one click away


@bp.app_template_filter("readable")
def _readable(value: Any) -> str:
    """An audit value as a person reads it: text as typed (Jinja escapes it), other
    values as JSON without \\u escapes."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _zone_groups() -> list[tuple[str, list[str]]]:
    """The time zones the service accepts, grouped by area for the picker."""
    def area(name: str) -> str:
        return name.split("/", 1)[0] if "/" in name else "Other"

    names = sorted(accounts.time_zones(), key=lambda n: (area(n), n))
    return [(a, list(group)) for a, group in groupby(names, key=area)]


@bp.route("/settings", methods=["GET", "POST"])
def settings() -> Any:
    c = ctx()
    account = accounts.get_settings(c)
    errors: dict[str, str] = {}
    form: Any = None
    if request.method == "POST":
        form = request.form
        try:
            old_zone = account.timezone
            accounts.update_settings(
                c,
                account_type=form.get("account_type", ""),
                timezone=form.get("timezone", ""),
                intl_daily_quota=form.get("intl_daily_quota", ""),
                reply_callback_url=form.get("reply_callback_url", ""),
                reply_callback_enabled=form.get("reply_callback_enabled", ""),
            )
            commit()
            if account.timezone != old_zone:
                accounts.zone_changed(c, Limiter(current_app.extensions["redis"]), old_zone,
                                      account.timezone)
            flash("Settings saved.")
            return redirect(url_for("accounts.settings"))
        except ValidationError as exc:
            errors = form_errors(exc)
            account = accounts.get_settings(c)
    return _settings_page(c, account, 422 if errors else 200, form=form, errors=errors)


def _settings_page(c: Any, account: Any, status: int, **forms: Any) -> Any:
    """The settings page with its two forms (`form`/`errors`, `price_form`/`price_errors`)."""
    return page("accounts/settings.html", "accounts/_settings.html", status=status,
                account=account, types=ACCOUNT_TYPES, zone_groups=_zone_groups(),
                can_edit=c.actor.can("ModifyAccountSettings"), **forms)


@bp.post("/settings/prices")
def unit_prices() -> Any:
    """The unit prices the confirm step of a task estimates its cost with."""
    c = ctx()
    form = request.form
    try:
        tasks.update_unit_prices(c, form.get("mainland_price", ""),
                                 form.get("country_prices", ""))
        commit()
        flash("Unit prices saved.")
        return redirect(url_for("accounts.settings"))
    except ValidationError as exc:
        return _settings_page(c, accounts.get_settings(c), 422, form=None, errors={},
                              price_form=form, price_errors=form_errors(exc))


@bp.get("/account")
def my_account() -> Any:
    """The signed-in user's own settings: which Slack member acts as them."""
    return _my_account()


def _my_account(code: str | None = None, new_key: dict[str, str] | None = None) -> Any:
    from app.web.api_keys import keys_of

    return page("accounts/me.html", code=code, ttl_minutes=slack_link.CODE_TTL_SECONDS // 60,
                slack_on=bool(current_app.config.get("SLACK_BOT_TOKEN")),
                api_keys=keys_of(current_user.id), new_key=new_key, key_user=current_user)


@bp.post("/account/slack/code")
def slack_code() -> Any:
    """A one-time code to type in Slack. Rendered, never flashed: the flash would carry
    it in the (signed, not encrypted) session cookie."""
    return _my_account(slack_link.new_code(ctx(), current_app.extensions["redis"]))


@bp.post("/account/slack/unlink")
def slack_unlink() -> Any:
    slack_link.unlink(ctx())
    commit()
    flash("Slack account unlinked.")
    return redirect(url_for("accounts.my_account"))


@bp.get("/audit")
def audit_log() -> tuple:
    number = page_number()
    action = request.args.get("action", "").strip()[:64]
    target = request.args.get("target", "").strip()[:64]
    entries, total = audit.browse(ctx(), action=action, target=target, page=number)
    return page("accounts/audit.html", "accounts/_audit_rows.html", entries=entries,
                total=total, page_no=number, page_size=audit.PAGE_SIZE, action=action,
                target=target, preview_chars=AUDIT_PREVIEW_CHARS)
