"""Sessions end when they should (issue #8): a cookie copied before logout, a password
change or reset, or disabling the user stops working; idle sessions expire."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from http.cookies import SimpleCookie

import pytest
from flask import Flask
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy.orm import Session

from app.models import User
from tests.helpers import PASSWORD, make_user
from tests.web.conftest import Client

COOKIE = "session"


def _copy(client: Client) -> str:
    cookie = client.http.get_cookie(COOKIE)
    assert cookie is not None
    return cookie.value


def _replay(app: Flask, cookie: str) -> Client:
    """A second browser holding a copy of the cookie."""
    other = Client(app.test_client())
    other.http.set_cookie(COOKIE, cookie)
    return other


def _assert_signed_out(app: Flask, cookie: str) -> None:
    stale = _replay(app, cookie)
    page = stale.get("/apps")
    assert page.status_code == 302 and page.location.startswith("/login")
    hx = stale.get("/apps", htmx=True)  # htmx gets a redirect it follows, not an error
    assert hx.status_code == 204 and hx.headers["HX-Redirect"].startswith("/login")


@pytest.fixture
def ana(app: Flask, session: Session) -> Client:
    make_user(session, "ana@example.com", presets=["SMSReadOnlyAccess"])
    session.commit()
    client = Client(app.test_client())
    assert client.login("ana@example.com").status_code == 302
    return client


def test_copied_cookie_works_until_logout(app: Flask, ana: Client) -> None:
    copied = _copy(ana)
    assert _replay(app, copied).get("/apps").status_code == 200  # the copy is a real session
    assert ana.post("/logout").status_code == 302
    _assert_signed_out(app, copied)


def test_password_change_ends_other_sessions_but_keeps_this_one(app: Flask,
                                                                 ana: Client) -> None:
    copied = _copy(ana)
    ok = ana.post("/password", {"current": PASSWORD, "new": "another-long-password",
                                "confirm": "another-long-password"})
    assert ok.status_code == 302
    assert ana.get("/apps").status_code == 200
    _assert_signed_out(app, copied)


def _root_acts(app: Flask, session: Session, action: Callable[[Client, int], None]) -> None:
    make_user(session, "root@example.com", root=True)
    session.commit()
    root = Client(app.test_client())
    assert root.login("root@example.com").status_code == 302
    user_id = session.query(User.id).filter_by(email="ana@example.com").scalar()
    action(root, user_id)


def test_password_reset_ends_the_users_sessions(app: Flask, session: Session,
                                                ana: Client) -> None:
    copied = _copy(ana)
    _root_acts(app, session, lambda root, uid: root.post(f"/users/{uid}/password"))
    _assert_signed_out(app, copied)


def test_disabling_ends_sessions_for_good(app: Flask, session: Session, ana: Client) -> None:
    copied = _copy(ana)

    def off_and_on(root: Client, uid: int) -> None:
        assert root.post(f"/users/{uid}/status", {"active": "0"}).status_code == 302
        assert root.post(f"/users/{uid}/status", {"active": "1"}).status_code == 302

    _root_acts(app, session, off_and_on)
    _assert_signed_out(app, copied)  # enabling again does not revive the old cookie


def _aged(app: Flask, cookie: str, seconds: int) -> str:
    """The same session cookie as if it had last been refreshed `seconds` ago."""
    iface = app.session_interface
    signer_kwargs = {"key_derivation": "hmac", "digest_method": hashlib.sha1}
    data = URLSafeTimedSerializer(app.secret_key, salt=iface.salt,  # type: ignore[attr-defined]
                                  serializer=iface.serializer,  # type: ignore[attr-defined]
                                  signer_kwargs=signer_kwargs).loads(cookie)

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - seconds

    return URLSafeTimedSerializer(app.secret_key, salt=iface.salt,  # type: ignore[attr-defined]
                                  serializer=iface.serializer,  # type: ignore[attr-defined]
                                  signer=Then, signer_kwargs=signer_kwargs).dumps(data)


def test_idle_sessions_expire_after_twelve_hours(app: Flask, ana: Client) -> None:
    assert app.config["SESSION_IDLE_SECONDS"] == 12 * 3600
    resp = ana.get("/apps")
    cookie = SimpleCookie(resp.headers["Set-Cookie"])[COOKIE]  # refreshed on every request
    left = parsedate_to_datetime(cookie["expires"]).timestamp() - time.time()
    assert 12 * 3600 - 60 < left <= 12 * 3600 + 1
    copied = _copy(ana)
    assert _replay(app, _aged(app, copied, 11 * 3600)).get("/apps").status_code == 200
    _assert_signed_out(app, _aged(app, copied, 12 * 3600 + 60))


def test_garbled_user_id_in_a_session_is_a_plain_sign_out(app: Flask, ana: Client) -> None:
    with ana.http.session_transaction() as s:
        s["_user_id"] = "not-a-number"
    page = ana.get("/apps")
    assert page.status_code == 302 and page.location.startswith("/login")
