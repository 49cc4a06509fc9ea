"""NUL in what a browser sends: servers decode %00 in paths and query strings, and
PostgreSQL refuses NUL in a query (DataError), which was a 500 with a stack trace in
the log. Every console page is tried with NUL in each path part and the usual filters."""

from __future__ import annotations

import logging

import pytest
from flask import Flask, url_for
from werkzeug.routing import BuildError

from tests.web.conftest import Client

FILTERS = ("q", "phone", "phone_number", "number", "status", "app", "sdk_app_id", "region",
           "name", "serial_no", "code", "sign", "template", "type", "day", "from", "to",
           "page", "sort", "group", "user", "email", "task", "country", "iso_code")


def _urls(app: Flask) -> list[str]:
    """Every console GET page, NUL in each text part of its path (numbers stay numbers)."""
    urls = set()
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if "GET" not in (rule.methods or ()) or rule.endpoint == "static" \
                    or rule.endpoint.startswith("api."):
                continue
            for value in ("x\x00y", 1):
                try:
                    urls.add(url_for(rule.endpoint, **dict.fromkeys(rule.arguments, value)))
                    break
                except (BuildError, ValueError):  # an int converter: a number
                    continue
    return sorted(urls)


def test_no_console_page_fails_on_nul(app: Flask, root: Client,
                                      caplog: pytest.LogCaptureFixture) -> None:
    query = "&".join(f"{k}=a%00b" for k in FILTERS)
    failed = []
    urls = _urls(app)
    assert len(urls) > 40  # the console's pages, not a handful
    with caplog.at_level(logging.ERROR):
        for url in urls:
            if url == "/logout":
                continue
            for target in (url, f"{url}?{query}"):
                resp = root.get(target)
                if resp.status_code >= 500:
                    failed.append(f"{url}{'?…' if '?' in target else ''}")
    assert not failed, "\n".join(failed)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_form_field_holding_nul_is_refused_clearly(client: Client,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """The login form looks the e-mail up before anything else checks it."""
    with caplog.at_level(logging.ERROR):
        resp = client.post("/login", {"email": "root\x00@example.com", "password": "x"})
    assert resp.status_code == 400
    assert "NUL character" in resp.get_data(as_text=True)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
