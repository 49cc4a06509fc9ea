"""Alarm history (every alarm, its figures, who acknowledged it, each delivery's
result) and each application's Security page (captcha-abuse thresholds and the
hourly verification-code volume). Endpoints: alarms.history, alarms.security (and
alarms.security_index, the navigation's way in)."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, flash, request, url_for
from flask_login import current_user

from app.services import alarms, console, monitors, notifications
from app.services.apps import list_apps
from app.services.errors import ValidationError
from app.web import commit, ctx, form_errors, hx_redirect, page, page_number
from app.web.apps import choose_app

bp = Blueprint("alarms", __name__)


@bp.get("/alarms")
def history() -> tuple:
    c = ctx()
    args = {k: request.args.get(k, "")[:40] for k in ("app", "event", "since", "until",
                                                       "alarm", "unacknowledged")}
    errors: dict[str, str] = {}
    try:
        filters = alarms.parse_filters(args["app"], args["event"], args["since"], args["until"],
                                       args["alarm"], zone=current_user.account.timezone,
                                       unacknowledged=args["unacknowledged"])
    except ValidationError as exc:
        errors, filters = exc.errors, alarms.Filters()
    number = page_number()
    rows, total = alarms.history(c, filters, number)
    return page("alarms/history.html", "alarms/_rows.html", rows=rows, total=total,
                page_no=number, pages=max(1, -(-total // alarms.PAGE_SIZE)),
                deliveries=alarms.deliveries(c, [a.id for a in rows]), args=args,
                errors=errors, events=alarms.EVENTS, filters=filters,
                apps=[a for a in list_apps(c) if c.actor.can("DescribeAlarms", a.sdk_app_id)],
                can_ack=c.actor.can("ModifyAlarms"), retry_note=notifications.retry_note)


@bp.post("/alarms/<int:alarm_id>/acknowledge")
def acknowledge(alarm_id: int) -> Any:
    alarm = alarms.acknowledge(ctx(), alarm_id)
    commit()
    flash(f"Alarm #{alarm.id} acknowledged.")
    # Back to the list being worked through (the form says which), never off the history.
    back = request.form.get("back", "")
    history_page = url_for("alarms.history")
    if back == history_page or back.startswith(history_page + "?"):
        return hx_redirect(back)
    return hx_redirect(url_for("alarms.history", alarm=alarm.id))


def _security(sdk_app_id: str, errors: dict[str, str] | None = None,
              form: dict[str, str] | None = None, status: int = 200) -> tuple:
    c = ctx()
    app, rule, rows = monitors.security(c, sdk_app_id)
    return page("alarms/security.html", "alarms/_rule.html", status=status, app=app, rule=rule,
                rows=rows, errors=errors or {}, form=form or {},
                choices=console.apps_to_choose(c, "DescribeAlarms"),
                zone=ZoneInfo(current_user.account.timezone),
                can_edit=c.actor.can("ModifyAlarms", app.sdk_app_id))


@bp.get("/security")
def security_index() -> Any:
    return choose_app("DescribeAlarms", "alarms.security", "Security")


@bp.get("/apps/<sdk_app_id>/security")
def security(sdk_app_id: str) -> tuple:
    return _security(sdk_app_id)


@bp.post("/apps/<sdk_app_id>/security")
def security_save(sdk_app_id: str) -> Any:
    form = {k: request.form.get(k, "") for k in ("volume", "success_pct", "growth_pct",
                                                  "enabled")}
    try:
        monitors.set_rule(ctx(), sdk_app_id, volume=form["volume"],
                          success_pct=form["success_pct"], growth_pct=form["growth_pct"],
                          enabled=form["enabled"])
    except ValidationError as exc:
        return _security(sdk_app_id, form_errors(exc), form, 422)
    commit()
    flash("Captcha-abuse thresholds saved.")
    return hx_redirect(url_for("alarms.security", sdk_app_id=sdk_app_id))


@bp.post("/apps/<sdk_app_id>/contacts/<int:contact_id>/test")
def contact_test(sdk_app_id: str, contact_id: int) -> Any:
    alarm = alarms.test_contact(ctx(), sdk_app_id, contact_id)
    commit()
    flash(f"Test alarm #{alarm.id} sent to the contact on every channel it has.")
    return hx_redirect(url_for("alarms.history", alarm=alarm.id))



