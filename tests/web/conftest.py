"""A real app over the test backend, and a client that carries CSRF tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app import create_app
from tests.conftest import Backend
from tests.helpers import PASSWORD, make_user
from tests.sending.conftest import shop  # noqa: F401 - an application to send with


@pytest.fixture
def app(backend: Backend, session: Session, instance_dir: Path) -> Iterator[Flask]:
    flask_app = create_app({
        "DATABASE_URL": backend.db.url,
        "REDIS_URL": backend.redis_url,
        "INSTANCE_DIR": str(instance_dir),
        "SECRET_KEY": "test-secret",
        "TESTING": True,
    })
    yield flask_app
    flask_app.extensions["db"].engine.dispose()


class Client:
    """Like a browser: keeps the session cookie, sends the page's CSRF token."""

    def __init__(self, client: FlaskClient) -> None:
        self.http = client
        self.token = ""

    def get(self, url: str, htmx: bool = False, **kw: Any) -> TestResponse:
        resp = self.http.get(url, headers={"HX-Request": "true"} if htmx else {}, **kw)
        if resp.mimetype != "text/html":
            return resp
        meta = soup(resp).find("meta", attrs={"name": "csrf-token"})
        if meta:
            self.token = str(meta["content"])
        return resp

    def post(self, url: str, data: dict[str, Any] | None = None, htmx: bool = False,
             csrf: bool = True, **kw: Any) -> TestResponse:
        if not self.token:
            self.get("/login")
        headers = {"HX-Request": "true"} if htmx else {}
        body = dict(data or {})
        if csrf:
            body["csrf_token"] = self.token
        return self.http.post(url, data=body, headers=headers, **kw)

    def login(self, email: str, password: str = PASSWORD) -> TestResponse:
        resp = self.post("/login", {"email": email, "password": password})
        if resp.status_code == 302:  # a new session: pick up its CSRF token
            self.get(resp.location, follow_redirects=True)
        return resp


def soup(resp: TestResponse) -> BeautifulSoup:
    return BeautifulSoup(resp.get_data(as_text=True), "html.parser")


def text_of(resp: TestResponse, selector: str) -> str:
    node = soup(resp).select_one(selector)
    assert node is not None, f"{selector} not in page"
    return " ".join(node.get_text(" ").split())


@pytest.fixture
def client(app: Flask) -> Client:
    return Client(app.test_client())


@pytest.fixture
def root(client: Client, session: Session) -> Client:
    make_user(session, "root@example.com", root=True)
    session.commit()
    assert client.login("root@example.com").status_code == 302
    return client
