"""The web adapter: blueprints, the per-request unit of work, error pages."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Flask, current_app, g, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf.csrf import CSRFError
from sqlalchemy.orm import Session
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.wrappers import Response

from app import login_manager
from app.db import Database
from app.models import User
from app.queue import enqueue_deferred
from app.services.accounts import actor_for
from app.services.context import Ctx, Settings
from app.services.errors import (
    Conflict,
    NotFound,
    PermissionDenied,
    ServiceError,
    ValidationError,
)
from app.services.values import digits
from app.sms import periods, text

log = logging.getLogger("smsops.web")
API_PREFIX = "/api/"  # the JSON API (signed; its own errors)
PUBLIC_ENDPOINTS = {"auth.login", "health.healthz", "static", "slack.events", "favicon"}
# Set on every response that does not set its own: (lower-case name, name, value).
SECURITY_HEADERS = tuple((name.lower(), name, value) for name, value in (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Content-Security-Policy",
     "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:"),
))


def db() -> Session:
    """The request's session; the request commits (see `commit`)."""
    if "db" not in g:
        database: Database = current_app.extensions["db"]
        g.db = database.sessions()
    return g.db


def commit() -> None:
    """End the unit of work: commit, then start the jobs it deferred."""
    db().commit()
    if "ctx" in g:
        enqueue_deferred(current_app.extensions["redis"], g.ctx.deferred)


def rollback() -> None:
    db().rollback()
    if "ctx" in g:
        g.ctx.deferred.clear()


def form_errors(exc: ValidationError | Conflict) -> dict[str, str]:
    """End the failed unit of work; the errors to show beside the form's fields
    ('' for the form as a whole)."""
    rollback()
    return exc.errors if isinstance(exc, ValidationError) else {"": exc.message}


def ctx() -> Ctx:
    if "ctx" not in g:
        g.ctx = Ctx(db(), actor_for(current_user), Settings.from_config(current_app.config),
                    gateway=current_app.extensions["gateway"])
    return g.ctx


def wants_fragment() -> bool:
    """An htmx request that swaps part of the page. A boosted link or form, and the back
    button missing htmx's history cache, swap the whole body: they need the whole page."""
    hx = request.htmx  # type: ignore[attr-defined]
    return bool(hx) and not hx.boosted and not hx.history_restore_request


def page(template: str, fragment: str | None = None, status: int = 200, **kw: Any) -> tuple:
    """The full page normally; only the fragment for an htmx request."""
    name = fragment if (fragment and wants_fragment()) else template
    return render_template(name, **kw), status


MAX_PAGE = 100_000  # deeper than any list goes; keeps OFFSET inside a 64-bit integer


def page_number() -> int:
    """The `page` query argument as 1..MAX_PAGE; anything else is the first page."""
    raw = request.args.get("page", "1")
    number = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else 1
    return min(max(number, 1), MAX_PAGE)


def hx_redirect(url: str) -> Response:
    """Redirect that works for plain forms and for htmx requests alike."""
    if request.htmx:  # type: ignore[attr-defined]
        resp = Response(status=204)
        resp.headers["HX-Redirect"] = url
        return resp
    return redirect(url)


def local_time(moment: datetime) -> datetime:
    """A stored UTC time in the signed-in account's time zone (UTC without one)."""
    zone = current_user.account.timezone if current_user.is_authenticated else "UTC"
    try:
        return moment.astimezone(ZoneInfo(zone))
    except (ZoneInfoNotFoundError, ValueError):
        return moment


def _when(moment: datetime | None) -> str:
    """A stored UTC time, shown in the account's time zone."""
    if moment is None:
        return ""
    return local_time(moment).strftime("%Y-%m-%d %H:%M:%S %Z")


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    """The cookie carries "<id>:<session version>" (User.get_id); a cookie from before a
    logout, a password change or reset, or disabling carries an old version."""
    number, _, version = user_id.partition(":")
    if not digits(number) or not digits(version):
        return None  # an older or garbled cookie: signed out, not an error
    user = db().get(User, int(number))
    if user is None or not user.active or user.session_version != int(version):
        return None
    return user


def register(app: Flask) -> None:
    from app.web import (
        accounts,
        alarms,
        apps,
        auth,
        content,
        dashboard,
        general,
        groups,
        health,
        messages,
        nav,
        stats,
        tasks,
        toasts,
        users,
    )

    for module in (auth, health, dashboard, apps, content, messages, general, users, accounts,
                   tasks, stats, groups, alarms):
        app.register_blueprint(module.bp)
    nav.register(app)
    toasts.register(app)
    app.add_template_filter(_when, "when")
    app.add_template_filter(periods.spoken, "duration")
    app.add_template_filter(lambda m: text.parts_of(m.content, m.region), "parts")
    # Browsers ask for /favicon.ico on pages without a <link rel=icon> (and on errors).
    app.add_url_rule("/favicon.ico", "favicon", lambda: app.send_static_file("favicon.ico"))

    @app.before_request
    def _refuse_nul() -> None:
        # Servers decode %00, and PostgreSQL refuses NUL in any query (a 500): no
        # console path, filter or form field holds one, so the request is refused
        # whole (uploaded files are read by their own parsers). Not for signed
        # requests (API, Slack): their raw body must stay unread for the signature.
        if request.blueprint in ("api", "slack") or request.path.startswith(API_PREFIX):
            return  # (an API path that matches no route is still the API's JSON 404)
        fields = [*request.args.items(multi=True)]
        if request.method == "POST":
            fields += request.form.items(multi=True)
        if "\x00" in request.path or any("\x00" in k or "\x00" in v for k, v in fields):
            raise BadRequest("The request holds a NUL character, which no field may hold.")

    @app.before_request
    def _require_login() -> Response | None:
        if (request.endpoint in PUBLIC_ENDPOINTS or request.endpoint is None
                or request.blueprint == "api"):
            return None
        if not current_user.is_authenticated:
            return hx_redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        if current_user.must_change_password and request.endpoint not in (
            "auth.password", "auth.logout"
        ):
            return hx_redirect(url_for("auth.password"))
        return None

    @app.after_request
    def _headers(resp: Response) -> Response:
        # Each header unless the view set it (as setdefault would): the names present
        # are read once, not scanned five times (~40 us a response).
        headers = resp.headers
        present = {name.lower() for name, _value in headers.items()}
        for lower, name, value in SECURITY_HEADERS:
            if lower not in present:
                headers.add(name, value)
        if "cache-control" not in present and request.endpoint != "static":
            headers.add("Cache-Control", "no-store")
        return resp

    @app.teardown_appcontext
    def _close(_exc: BaseException | None) -> None:
        session = g.pop("db", None)
        if session is not None:
            session.close()  # anything not committed is rolled back

    def _error(status: int, message: str) -> tuple:
        if "db" in g:
            rollback()
        return render_template("error.html", status=status, message=message), status

    # Most specific first: a subclass's status wins over ServiceError's 400.
    for error_class, status in ((PermissionDenied, 403), (NotFound, 404), (Conflict, 409),
                                (ServiceError, 400)):
        app.register_error_handler(
            error_class, lambda exc, status=status: _error(status, exc.message)
        )

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> tuple:
        return _error(400, "This form has expired or was not sent from this site. "
                           "Reload the page and try again.")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple:
        page, status = _error(exc.code or 500, exc.description or exc.name)
        allow = dict(exc.get_headers()).get("Allow")  # a 405 names the methods it takes
        return (page, status, {"Allow": allow}) if allow else (page, status)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _error(500, "Something went wrong on our side. It has been logged.")
