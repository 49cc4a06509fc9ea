"""Login, logout, the first-login password change, CSRF, headers, health."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app import create_app
from app.services.accounts import ensure_account
from app.services.users import bootstrap_user
from app.web import PUBLIC_ENDPOINTS
from tests.helpers import PASSWORD, make_user
from tests.web.conftest import Client, soup, text_of


def test_pages_need_login(client: Client) -> None:
    resp = client.get("/apps")
    assert resp.status_code == 302 and resp.location.startswith("/login?next=/apps")
    hx = client.get("/apps", htmx=True)
    assert hx.headers["HX-Redirect"].startswith("/login")


def test_security_headers_once_each_and_a_views_own_kept(app: Flask) -> None:
    """Every response carries the security headers exactly once; a header the view
    set itself (any case) is kept, not doubled or replaced."""
    from werkzeug.wrappers import Response

    @app.get("/_own_headers")  # public for the test (below): no login redirect
    def _own() -> Response:
        resp = Response("x")
        resp.headers["content-security-policy"] = "default-src 'none'"
        resp.headers["Cache-Control"] = "private"
        return resp

    client = app.test_client()
    api = client.post("/api/v1/sms/send", json={})  # refused unsigned: JSON, 401
    assert api.status_code == 401
    for name, value in (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                        ("Referrer-Policy", "same-origin"), ("Cache-Control", "no-store")):
        assert api.headers.getlist(name) == [value], name
    assert len(api.headers.getlist("Content-Security-Policy")) == 1
    PUBLIC_ENDPOINTS.add("_own")
    try:
        own = client.get("/_own_headers")
    finally:
        PUBLIC_ENDPOINTS.discard("_own")
    assert own.status_code == 200
    assert own.headers.getlist("Content-Security-Policy") == ["default-src 'none'"]
    assert own.headers.getlist("Cache-Control") == ["private"]
    assert own.headers.getlist("X-Frame-Options") == ["DENY"]


def test_wrong_password_is_refused_plainly(client: Client, session: Session) -> None:
    make_user(session, "ana@example.com")
    session.commit()
    resp = client.login("ana@example.com", "not-it")
    assert resp.status_code == 401
    assert text_of(resp, "[role=alert]") == "Wrong email or password."


def test_login_is_throttled(client: Client, session: Session, app: Flask) -> None:
    make_user(session, "ana@example.com")
    session.commit()
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        client.login("ana@example.com", "guess")
    resp = client.login("ana@example.com")  # even the right password, for now
    assert resp.status_code == 429 and "Too many failed attempts" in text_of(resp, "[role=alert]")


def test_form_without_csrf_token_is_refused(client: Client, session: Session) -> None:
    make_user(session, "ana@example.com")
    session.commit()
    resp = client.post("/login", {"email": "ana@example.com", "password": PASSWORD}, csrf=False)
    assert resp.status_code == 400 and "expired" in text_of(resp, ".error-message")


def test_session_cookie_flags_and_security_headers(client: Client, session: Session) -> None:
    make_user(session, "ana@example.com")
    session.commit()
    resp = client.login("ana@example.com")
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/apps")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]


def test_open_redirect_is_not_followed(client: Client, session: Session) -> None:
    make_user(session, "ana@example.com")
    session.commit()
    resp = client.post("/login?next=//evil.example/x",
                       {"email": "ana@example.com", "password": PASSWORD})
    assert resp.location == "/"  # the overview dashboard


@pytest.mark.parametrize("target", ["/apps%0d%0aSet-Cookie:%20x=1", "/apps%09x", "/apps%0a"])
def test_a_next_with_control_characters_goes_to_the_dashboard(
        client: Client, session: Session, target: str) -> None:
    """Found from outside: a line break in `next` made the redirect a 500 (the user was
    signed in all the same)."""
    make_user(session, "ana@example.com")
    session.commit()
    resp = client.post(f"/login?next={target}", {"email": "ana@example.com",
                                                  "password": PASSWORD})
    assert resp.status_code == 302 and resp.location == "/"


def test_one_time_password_must_be_changed(client: Client, session: Session) -> None:
    account = ensure_account(session)
    _user, one_time = bootstrap_user(session, account, "new@example.com", None, root=True)
    session.commit()
    assert client.login("new@example.com", one_time or "").status_code == 302
    assert client.get("/apps").location == "/password"
    bad = client.post("/password", {"current": one_time, "new": "short", "confirm": "short"})
    assert bad.status_code == 422 and "at least 10" in text_of(bad, ".invalid")
    ok = client.post("/password", {"current": one_time, "new": "my-own-password",
                                   "confirm": "my-own-password"})
    assert ok.status_code == 302
    assert client.get("/apps").status_code == 200


def test_logout(root: Client) -> None:
    assert root.post("/logout").status_code == 302
    assert root.get("/apps").status_code == 302


def test_healthz(client: Client, backend: object) -> None:
    resp = client.get("/healthz")
    body = resp.get_json()
    assert resp.status_code == 200 and body["status"] == "ok"
    assert body["database"]["ok"] and body["redis"]["ok"]
    assert isinstance(body["workers"], int)


def test_healthz_counts_the_workers_rq_lists(app: Flask, client: Client) -> None:
    from rq import Worker

    from app.queue import QUEUE_NAMES

    redis = app.extensions["redis"]
    worker = Worker(list(QUEUE_NAMES), connection=redis)
    worker.register_birth()
    try:
        assert client.get("/healthz").get_json()["workers"] >= 1
    finally:
        worker.register_death()


def test_healthz_503_when_redis_is_down(backend: object, session: Session,
                                         instance_dir: object) -> None:
    from tests.conftest import Backend

    assert isinstance(backend, Backend)
    broken = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": "redis://127.0.0.1:9/0",
                         "INSTANCE_DIR": str(instance_dir), "SECRET_KEY": "x"})
    resp = broken.test_client().get("/healthz")
    assert resp.status_code == 503
    assert resp.get_json()["redis"] == {"ok": False, "error": "ConnectionError",
                                        "where": "127.0.0.1:9/0"}
    assert soup  # the parser helper is importable for other modules
