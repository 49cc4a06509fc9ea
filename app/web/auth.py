"""Log in, log out, change password."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response

from app.models import User
from app.services import auth, users
from app.services.context import Settings
from app.services.errors import ValidationError
from app.web import commit, ctx, db, page

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site paths, so the login page cannot be used to redirect elsewhere;
    none with spaces or control characters (a line break cannot go into a header)."""
    if target and target.startswith("/") and not target.startswith("//") \
            and target.isprintable() and " " not in target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("dashboard.index")


def _start_session(user: User) -> None:
    session.clear()  # no session fixation
    login_user(user)
    # Permanent, so the cookie and its signature expire after SESSION_IDLE_SECONDS
    # without a request (Flask refreshes both on every request).
    session.permanent = True


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response | tuple | str:
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.index"))
    error = None
    status = 200
    headers: dict[str, str] = {}
    email = request.form.get("email", "")
    if request.method == "POST":
        try:
            # remote_addr is the peer, or the client named by trusted proxies only
            # (SMSOPS_TRUSTED_PROXIES, see app/__init__.py).
            user = auth.authenticate(
                db(), current_app.extensions["redis"], Settings.from_config(current_app.config),
                email, request.form.get("password", ""), request.remote_addr or "?",
            )
        except auth.LoginThrottled as exc:
            error, status = exc.message, 429
            headers["Retry-After"] = str(exc.retry_after)
        except auth.LoginFailed as exc:
            commit()
            error, status = exc.message, 401
        else:
            commit()
            _start_session(user)
            return redirect(_safe_next(request.args.get("next")))
    return render_template("auth/login.html", error=error, email=email), status, headers


@bp.post("/logout")
def logout() -> Response:
    users.sign_out(ctx())
    commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/password", methods=["GET", "POST"])
def password() -> Response | tuple:
    errors: dict[str, str] = {}
    status = 200
    if request.method == "POST":
        try:
            users.change_own_password(ctx(), request.form.get("current", ""),
                                      request.form.get("new", ""),
                                      request.form.get("confirm", ""),
                                      redis=current_app.extensions["redis"])
            commit()
            _start_session(current_user._get_current_object())  # only this browser stays in
            return redirect(url_for("dashboard.index"))
        except ValidationError as exc:
            errors, status = exc.errors, 422
        except auth.LoginThrottled as exc:
            errors, status = {"current": exc.message}, 429
    return page("auth/password.html", errors=errors, status=status)
