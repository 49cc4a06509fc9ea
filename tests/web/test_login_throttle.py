"""Login throttling (issue #8): an atomic count per (email, IP) checked before the
password hash, back-off per pair instead of a lock on the mailbox, and
X-Forwarded-For trusted only behind a configured number of proxies."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app import create_app
from app.services import auth, passwords
from app.services.context import Settings
from tests.conftest import Backend
from tests.helpers import PASSWORD, make_user
from tests.web.conftest import Client, text_of

TRIES = 16


def _from(app: Flask, ip: str) -> Client:
    client = Client(app.test_client())
    client.http.environ_base["REMOTE_ADDR"] = ip
    client.get("/login")  # a CSRF token of its own
    return client


def test_concurrent_tries_check_exactly_the_allowed_number(
        app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    make_user(session, "root@example.com", root=True)
    session.commit()
    checked: list[int] = []
    real_verify = passwords.verify

    def counting_verify(password_hash: str | None, password: str) -> bool:
        checked.append(1)  # list.append is atomic under the GIL
        return real_verify(password_hash, password)

    monkeypatch.setattr(passwords, "verify", counting_verify)
    clients = [_from(app, "198.51.100.9") for _ in range(TRIES)]
    start = threading.Barrier(TRIES)
    statuses: list[int] = []

    def attempt(client: Client) -> None:
        start.wait()
        resp = client.post("/login", {"email": "root@example.com", "password": "guess"})
        statuses.append(resp.status_code)

    threads = [threading.Thread(target=attempt, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    limit = app.config["LOGIN_MAX_FAILURES"]
    assert len(checked) == limit
    assert sorted(statuses) == [401] * limit + [429] * (TRIES - limit)


def test_a_flood_from_one_address_does_not_lock_the_user_out_elsewhere(
        app: Flask, session: Session) -> None:
    make_user(session, "root@example.com", root=True)
    session.commit()
    attacker = _from(app, "203.0.113.66")
    for _ in range(3 * app.config["LOGIN_MAX_FAILURES"]):
        attacker.post("/login", {"email": "root@example.com", "password": "guess"})
    refused = attacker.post("/login", {"email": "root@example.com", "password": PASSWORD})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "Too many failed attempts" in text_of(refused, "[role=alert]")
    assert _from(app, "192.0.2.10").login("root@example.com").status_code == 302
    # Other mailboxes behind the attacker's address are not locked either.
    make_user(session, "ana@example.com")
    session.commit()
    assert _from(app, "203.0.113.66").login("ana@example.com").status_code == 302


def test_forwarded_for_is_ignored_by_default(app: Flask, session: Session) -> None:
    assert app.config["TRUSTED_PROXIES"] == 0
    make_user(session, "ana@example.com")
    session.commit()
    client = _from(app, "203.0.113.66")
    for n in range(app.config["LOGIN_MAX_FAILURES"] + 3):  # a new forged address each time
        resp = client.http.post("/login", data={"email": "ana@example.com", "password": "x",
                                                "csrf_token": client.token},
                                headers={"X-Forwarded-For": f"10.9.9.{n}"})
    assert resp.status_code == 429


@pytest.fixture
def proxied(backend: Backend, session: Session, instance_dir: Path) -> Iterator[Flask]:
    flask_app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                            "INSTANCE_DIR": str(instance_dir), "SECRET_KEY": "test-secret",
                            "TESTING": True, "TRUSTED_PROXIES": 1})
    yield flask_app
    flask_app.extensions["db"].engine.dispose()


def test_forwarded_for_counts_behind_a_configured_proxy(proxied: Flask,
                                                         session: Session) -> None:
    make_user(session, "ana@example.com")
    session.commit()
    proxy = _from(proxied, "10.0.0.2")  # every request comes through the proxy

    def post(client_ip: str, password: str) -> int:
        return proxy.http.post("/login", data={"email": "ana@example.com",
                                               "password": password,
                                               "csrf_token": proxy.token},
                               headers={"X-Forwarded-For": client_ip}).status_code

    for _ in range(proxied.config["LOGIN_MAX_FAILURES"]):
        assert post("203.0.113.66", "guess") == 401
    assert post("203.0.113.66", PASSWORD) == 429
    assert post("192.0.2.10", PASSWORD) == 302


def _locked_for(session: Session, backend: Backend, settings: Settings) -> int:
    """Fail until refused; the refusal's Retry-After."""
    for _ in range(settings.login_max_failures):
        with pytest.raises(auth.LoginFailed, match="Wrong email or password"):
            auth.authenticate(session, backend.redis, settings, "me@example.com", "bad", "ip1")
    with pytest.raises(auth.LoginThrottled) as exc:
        auth.authenticate(session, backend.redis, settings, "me@example.com", PASSWORD, "ip1")
    return exc.value.retry_after


def _wait_until_free(session: Session, backend: Backend, settings: Settings) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            auth.authenticate(session, backend.redis, settings, "me@example.com", PASSWORD,
                              "ip1")
            return
        except auth.LoginThrottled:
            time.sleep(0.05)
    pytest.fail("the pair stayed locked")


def test_back_off_grows_while_the_pair_keeps_failing(session: Session,
                                                     backend: Backend) -> None:
    make_user(session, "me@example.com")
    settings = Settings(login_max_failures=2, login_window_seconds=1)
    assert _locked_for(session, backend, settings) == 1
    _wait_until_free(session, backend, settings)  # a success forgets the strikes
    assert _locked_for(session, backend, settings) == 1
    backend.redis.delete(*backend.redis.keys("smsops:login:try:*"))  # as if the lock ran out
    assert _locked_for(session, backend, settings) == 2
    backend.redis.delete(*backend.redis.keys("smsops:login:try:*"))
    assert _locked_for(session, backend, settings) == 4


def test_ipv6_addresses_of_one_network_count_together(app: Flask, session: Session) -> None:
    """A host holds a whole /64: a new address per try must not mean new tries
    (outside review of #8)."""
    make_user(session, "root@example.com", root=True)
    session.commit()
    limit = app.config["LOGIN_MAX_FAILURES"]
    codes = [_from(app, f"2001:db8:1:2::{n + 1:x}").post(
        "/login", {"email": "root@example.com", "password": "guess"}).status_code
        for n in range(limit + 1)]
    assert codes == [401] * limit + [429]
    # Another /64 is another source.
    assert _from(app, "2001:db8:1:3::1").login("root@example.com").status_code == 302


def test_guessing_the_current_password_is_throttled_too(app: Flask, session: Session) -> None:
    """Found from outside: the change-password form answered every wrong current
    password at once (12 tries in 2.4 s, never 429), so a session left open was a way
    to guess the password and take the account for good. It is limited per user as
    logins are, from any address; the right password then waits too."""
    make_user(session, "me@example.com")
    session.commit()
    client = _from(app, "198.51.100.7")
    assert client.login("me@example.com").status_code == 302
    client.get("/password")
    limit = int(app.config["LOGIN_MAX_FAILURES"])
    codes = [client.post("/password", {"current": f"guess-{i}", "new": "a-new-password",
                                       "confirm": "a-new-password"}).status_code
             for i in range(limit + 1)]
    assert codes == [422] * limit + [429]
    right = client.post("/password", {"current": PASSWORD, "new": "a-new-password",
                                      "confirm": "a-new-password"})
    assert right.status_code == 429 and "Too many" in right.get_data(as_text=True)
    assert client.login("me@example.com").status_code in (200, 302)  # still signed in
