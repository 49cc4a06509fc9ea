"""A method a path does not take: 405 with an Allow header and the API's JSON error, on
every path of both APIs (from the served document). HEAD and OPTIONS never 500; a path
no endpoint has stays a JSON 404. Routing answers before authentication, so none of
these requests is signed."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from app.api import document

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
DOC_PATHS: dict[str, set[str]] = {
    path: {m.upper() for m in item if m.upper() in METHODS}
    for path, item in document()["paths"].items()}
DOC_PATHS.setdefault("/api/v1/openapi.json", {"GET"})


def _concrete(template: str) -> str:
    """The template with ids as numbers and other parameters as a word."""
    return re.sub(r"\{(\w+)\}", lambda m: "1" if m[1].endswith("_id") else "X1", template)


def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{\w+\})", template)
    return re.compile("".join(
        (r"\d+" if p[1:-1].endswith("_id") else "[^/]+") if p.startswith("{") else re.escape(p)
        for p in parts) + "$")


def _allowed(path: str) -> set[str]:
    """The methods of every documented template the concrete path matches (a word can
    fill a parameter where another operation has a fixed segment: /countries/import)."""
    methods: set[str] = set()
    for template, ms in DOC_PATHS.items():
        if _pattern(template).match(path):
            methods |= ms
    return methods


def _allow_header(resp: TestResponse) -> set[str]:
    return {m.strip() for m in resp.headers.get("Allow", "").split(",") if m.strip()}


def _expected_allow(path: str) -> set[str]:
    allowed = _allowed(path)
    return allowed | {"OPTIONS"} | ({"HEAD"} if "GET" in allowed else set())


def _is_api_error(resp: TestResponse, status: int, code: str) -> None:
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:500])
    assert resp.mimetype == "application/json", resp.mimetype
    error = resp.get_json()["error"]
    assert error["code"] == code and error["message"], error


CASES = sorted({(_concrete(t), m) for t in DOC_PATHS for m in METHODS
                if m not in _allowed(_concrete(t))})


def test_the_document_gives_cases() -> None:
    assert len(CASES) > 100  # every path of both APIs, each method it does not take
    assert ("/api/v1/sms/send", "GET") in CASES


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_wrong_method_is_405_with_allow(api: Flask) -> None:
    client = api.test_client()
    wrong = []
    for path, method in CASES:
        resp = client.open(path, method=method)
        if resp.status_code != 405 or _allow_header(resp) != _expected_allow(path):
            wrong.append((method, path, resp.status_code, resp.headers.get("Allow")))
            continue
        _is_api_error(resp, 405, "MethodNotAllowed")
        message = resp.get_json()["error"]["message"]
        assert method in message and all(m in message for m in _allowed(path)), message
    assert wrong == [], wrong[:20]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_head_and_options_never_500(api: Flask) -> None:
    client = api.test_client()
    for template in DOC_PATHS:
        path = _concrete(template)
        head = client.head(path)
        assert head.get_data() == b""
        if "GET" in _allowed(path):
            assert head.status_code in (200, 401), (path, head.status_code)  # unsigned
        else:
            assert head.status_code == 405, (path, head.status_code)
            assert _allow_header(head) == _expected_allow(path)
        options = client.options(path)
        assert options.status_code in (200, 204), (path, options.status_code)
        assert _allow_header(options) == _expected_allow(path), path


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_path_no_endpoint_has_is_a_json_404(api: Flask) -> None:
    client = api.test_client()
    for path in ("/api/v1/nope", "/api/v1/apps/X1/nope", "/api/v1/templates/abc",
                 "/api/v1", "/api/v1/"):
        for method in (*METHODS, "OPTIONS"):
            _is_api_error(client.open(path, method=method), 404, "NotFound")
        head = client.head(path)
        assert (head.status_code, head.get_data()) == (404, b"")
    # The console's own pages keep their HTML answers; a 405 there names its methods too.
    page = client.post("/login/nope")
    assert page.status_code == 404 and page.mimetype == "text/html"
    page = client.patch("/login")
    assert page.status_code == 405 and page.mimetype == "text/html"
    assert _allow_header(page) == {"GET", "HEAD", "OPTIONS", "POST"}


def test_api_requests_have_no_cookie_session_and_console_pages_do(api: Flask) -> None:
    """The API is signed with keys: its requests never open, read or set the console's
    cookie session (it was a measurable share of a send request's CPU)."""
    from flask import session
    from flask.sessions import NullSession

    with api.test_request_context("/api/v1/sms/send", method="POST"):
        api.preprocess_request()
        assert isinstance(session, NullSession)
    with api.test_request_context("/login"):
        assert not isinstance(session, NullSession)
        session["seen"] = True  # the console's session still works
    client = api.test_client()
    client.set_cookie("session", "forged-or-stale")
    resp = client.post("/api/v1/sms/send", data=b"{}")
    assert resp.status_code == 401 and "Set-Cookie" not in resp.headers
