"""Applications and their basic configuration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from app.models import Application
from app.models.apps import ALARM_EVENTS
from app.services import app_config, apps, console
from app.services.accounts import INDIVIDUAL_FREQ_CAPS, get_settings
from app.services.errors import Conflict, ValidationError
from app.web import commit, ctx, form_errors, hx_redirect, page

bp = Blueprint("apps", __name__)

@bp.get("/apps")
def index() -> tuple:
    c = ctx()
    return page("apps/index.html", apps=apps.list_apps(c), can_create=c.actor.can("CreateApp"),
                errors={}, form={})


@bp.post("/apps")
def create() -> tuple:
    c = ctx()
    try:
        app, key = apps.create_app(c, name=request.form.get("name", ""),
                                   overview=request.form.get("overview", ""),
                                   tags=request.form.get("tags", ""))
        commit()
    except (ValidationError, Conflict) as exc:
        errors = form_errors(exc)
        return page("apps/index.html", "apps/_create.html", status=422,
                    apps=apps.list_apps(c), can_create=True, errors=errors, form=request.form)
    return page("apps/created.html", "apps/_created.html", app=app, app_key=key,
                apps=apps.list_apps(c))  # the list is swapped in out of band


def choose_app(action: str, endpoint: str, title: str) -> Any:
    """A page about one application at a time, opened from the navigation: the one asked
    for (?app=), else the first the user may do `action` on; with none, what to do."""
    choices = console.apps_to_choose(ctx(), action)
    if not choices:
        return page("apps/none.html", title=title, can_create=ctx().actor.can("CreateApp"))
    wanted = request.args.get("app", "")
    sid = next((a.sdk_app_id for a in choices if a.sdk_app_id == wanted),
               choices[0].sdk_app_id)
    return redirect(url_for(endpoint, sdk_app_id=sid))


@bp.get("/configuration")
def configuration() -> Any:
    return choose_app("DescribeAppInfo", "apps.detail", "Basic configuration")


def _detail_context(sdk_app_id: str, state: dict[str, dict[str, Any]] | None = None,
                    app: Application | None = None) -> dict:
    c = ctx()
    app = app or apps.get_app(c, sdk_app_id)
    return {
        "app": app,
        "back": _back(),
        "state": state or {},
        "can": lambda action: c.actor.can(action, app.sdk_app_id),
        "readable": app_config.readable_sections(c, app.sdk_app_id),
        "account": get_settings(c) if c.actor.can("DescribeAccountSettings") else None,
        "alarm_events": ALARM_EVENTS,
        "hears_reviews": lambda contact: app_config.receives_review_results(c, contact),
        "freq_caps": INDIVIDUAL_FREQ_CAPS,
    }


@bp.get("/apps/<sdk_app_id>")
def detail(sdk_app_id: str) -> tuple:
    return page("apps/detail.html", **_detail_context(sdk_app_id),
                choices=console.apps_to_choose(ctx(), "DescribeAppInfo"))


def _back() -> str:
    """"contacts" when a contact form was sent from the alarm contacts page (or that page
    is shown): answers go back there, not to the application's page."""
    if request.endpoint == "apps.contacts" or request.form.get("back") == "contacts":
        return "contacts"
    return ""


@bp.get("/contacts")
def contacts_index() -> Any:
    return choose_app("DescribeNewsReceiver", "apps.contacts", "Alarm contacts")


def _contacts_page(sdk_app_id: str, state: dict[str, dict[str, Any]] | None = None,
                   status: int = 200) -> tuple:
    c = ctx()
    app = app_config.contacts_app(c, sdk_app_id)
    return page("apps/contacts.html", status=status,
                choices=console.apps_to_choose(c, "DescribeNewsReceiver"),
                **_detail_context(sdk_app_id, state, app))


@bp.get("/apps/<sdk_app_id>/contacts")
def contacts(sdk_app_id: str) -> tuple:
    """Alarm contacts as a page of its own (the navigation's), one application at a time."""
    return _contacts_page(sdk_app_id)


def _section(sdk_app_id: str, name: str, change: Callable[[], Any],
             notice: str | Callable[[Any], str]) -> Any:
    """Run one change; answer with the section (htmx) or the page (plain form)."""
    state: dict[str, Any] = {"errors": {}, "form": {}, "notice": None}
    try:
        result = change()
        commit()
        state["notice"] = notice(result) if callable(notice) else notice
        if name == "key":
            state["app_key"] = result  # shown in full this once
    except (ValidationError, Conflict) as exc:
        state["errors"] = form_errors(exc)
        state["form"] = request.form
    status = 422 if state["errors"] else 200
    # Loaded for whoever made the change, who may not read the application or the section.
    shown = app_config.section_app(ctx(), sdk_app_id, name)
    if request.htmx:  # type: ignore[attr-defined]
        context = _detail_context(sdk_app_id, {name: state}, shown)
        return render_template(f"apps/_{name}.html", **context), status
    if name == "contacts" and _back():
        if state["errors"]:
            return _contacts_page(sdk_app_id, {name: state}, status)
        flash(state["notice"])
        return redirect(url_for("apps.contacts", sdk_app_id=sdk_app_id))
    # Back to the page, unless the user may change a section without opening the page:
    # then it answers in place, showing them only what they may read.
    if not state["errors"] and "app_key" not in state and app_config.opens_page(ctx(),
                                                                                 sdk_app_id):
        flash(state["notice"])
        return redirect(url_for("apps.detail", sdk_app_id=sdk_app_id) + f"#{name}")
    return page("apps/detail.html", status=status,
                **_detail_context(sdk_app_id, {name: state}, shown))


def _form(key: str) -> str:
    return request.form.get(key, "")


@bp.post("/apps/<sdk_app_id>/info")
def info(sdk_app_id: str) -> Any:
    return _section(sdk_app_id, "info", lambda: apps.update_info(
        ctx(), sdk_app_id, name=_form("name"), overview=_form("overview"), tags=_form("tags")
    ), "Application information saved.")


@bp.post("/apps/<sdk_app_id>/key")
def rotate_key(sdk_app_id: str) -> Any:
    return _section(sdk_app_id, "key", lambda: apps.rotate_key(ctx(), sdk_app_id),
                    "A new AppKey was issued; the old one no longer works.")


@bp.post("/apps/<sdk_app_id>/status")
def status(sdk_app_id: str) -> Any:
    return _section(sdk_app_id, "status",
                    lambda: apps.set_enabled(ctx(), sdk_app_id, _form("enabled")),
                    lambda app: "Application enabled." if app.enabled
                    else "Application disabled; it sends nothing now.")


@bp.post("/apps/<sdk_app_id>/delete")
def delete(sdk_app_id: str) -> Any:
    try:
        apps.delete_app(ctx(), sdk_app_id, _form("confirmation"))
        commit()
    except (ValidationError, Conflict) as exc:
        errors = form_errors(exc)
        state = {"status": {"errors": errors, "form": request.form, "notice": None}}
        fragment = "apps/_status.html"
        return page("apps/detail.html", fragment, status=422,
                    **_detail_context(sdk_app_id, state))
    flash(f"Application {sdk_app_id} was deleted.")
    return hx_redirect(url_for("apps.index"))


@bp.post("/apps/<sdk_app_id>/thresholds/<region>")
def thresholds(sdk_app_id: str, region: str) -> Any:
    return _section(sdk_app_id, "thresholds", lambda: app_config.set_thresholds(
        ctx(), sdk_app_id, region, alarm_threshold=_form(f"{region}_alarm_threshold"),
        daily_limit=_form(f"{region}_daily_limit"),
    ), f"{region.capitalize()} thresholds saved.")


@bp.post("/apps/<sdk_app_id>/countries")
def country(sdk_app_id: str) -> Any:
    return _section(sdk_app_id, "countries", lambda: app_config.set_country(
        ctx(), sdk_app_id, iso_code=_form("iso_code"), alarm_threshold=_form("alarm_threshold"),
        daily_limit=_form("daily_limit"),
    ), f"{_form('iso_code').strip().upper()} saved.")


@bp.post("/apps/<sdk_app_id>/countries/<iso>/delete")
def country_delete(sdk_app_id: str, iso: str) -> Any:
    return _section(sdk_app_id, "countries",
                    lambda: app_config.remove_country(ctx(), sdk_app_id, iso), f"{iso} removed.")


@bp.post("/apps/<sdk_app_id>/countries/import")
def country_import(sdk_app_id: str) -> Any:
    upload = request.files.get("file")
    data = upload.read() if upload else b""
    return _section(sdk_app_id, "countries",
                    lambda: app_config.import_countries(ctx(), sdk_app_id, data),
                    lambda n: f"Imported {n} countries/regions.")


@bp.post("/apps/<sdk_app_id>/callback")
def callback(sdk_app_id: str) -> Any:
    return _section(sdk_app_id, "callback", lambda: app_config.set_callback(
        ctx(), sdk_app_id, _form("status_callback_url")), "Status callback saved.")


@bp.post("/apps/<sdk_app_id>/frequency")
def frequency(sdk_app_id: str) -> Any:
    rules: dict[str, tuple[bool | str, Any]] = {
        r: (_form(f"{r}_enabled"), _form(f"{r}_limit"))
             for r in app_config.FREQ_RULES}
    return _section(sdk_app_id, "frequency",
                    lambda: app_config.set_frequency(ctx(), sdk_app_id, rules),
                    "Frequency limits saved.")


@bp.post("/apps/<sdk_app_id>/allowlist")
def allowlist_add(sdk_app_id: str) -> Any:
    return _section(sdk_app_id, "allowlist",
                    lambda: app_config.add_allowlist(ctx(), sdk_app_id, _form("numbers")),
                    lambda n: f"Added {n} new numbers.")


@bp.post("/apps/<sdk_app_id>/allowlist/delete")
def allowlist_delete(sdk_app_id: str) -> Any:
    chosen = request.form.getlist("number")
    return _section(sdk_app_id, "allowlist",
                    lambda: app_config.remove_allowlist(ctx(), sdk_app_id, chosen),
                    lambda n: f"Removed {n} numbers.")


def _contact_fields() -> dict[str, Any]:
    return {"name": _form("name"), "mobile": _form("mobile"), "email": _form("email"),
            "slack_user_id": _form("slack_user_id"), "events": request.form.getlist("events")}


@bp.post("/apps/<sdk_app_id>/contacts")
def contact_add(sdk_app_id: str) -> Any:
    return _section(sdk_app_id, "contacts", lambda: app_config.add_contact(
        ctx(), sdk_app_id, **_contact_fields()), "Alarm contact added.")


@bp.post("/apps/<sdk_app_id>/contacts/<int:contact_id>")
def contact_update(sdk_app_id: str, contact_id: int) -> Any:
    return _section(sdk_app_id, "contacts", lambda: app_config.update_contact(
        ctx(), sdk_app_id, contact_id, **_contact_fields()), "Alarm contact saved.")


@bp.post("/apps/<sdk_app_id>/contacts/<int:contact_id>/code")
def contact_send_code(sdk_app_id: str, contact_id: int) -> Any:
    return _section(sdk_app_id, "contacts", lambda: app_config.send_mobile_code(
        ctx(), sdk_app_id, contact_id),
        lambda c: f"A code was texted to {c.mobile}; enter it here within "
                  f"{app_config.CONFIRM_MINUTES} minutes.")


@bp.post("/apps/<sdk_app_id>/contacts/<int:contact_id>/confirm")
def contact_confirm(sdk_app_id: str, contact_id: int) -> Any:
    def confirm() -> None:
        problem = app_config.confirm_mobile(ctx(), sdk_app_id, contact_id, _form("code"))
        if problem:
            commit()  # a wrong try counts even though the answer is an error
            raise ValidationError({"code": problem})

    return _section(sdk_app_id, "contacts", confirm,
                    "Mobile confirmed: it now receives SMS alarms.")


@bp.post("/apps/<sdk_app_id>/contacts/<int:contact_id>/delete")
def contact_delete(sdk_app_id: str, contact_id: int) -> Any:
    return _section(sdk_app_id, "contacts",
                    lambda: app_config.delete_contact(ctx(), sdk_app_id, contact_id),
                    "Alarm contact deleted.")
