"""Ids and numbers past anything the database holds, in every route and form.

Found from outside: a 25-digit id in a path (`/groups/<id>`, `/users/<id>` and some
forty more) or in a form's id list overflowed in the database, and a 5,000-digit
number in a thresholds form overflowed Python's own int(): HTTP 500 everywhere. Such
an id names nothing (404, as tasks and the management API already answered), such a
number is refused with the field's message.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from werkzeug.routing import IntegerConverter

from app.services.values import whole_number
from tests.web.conftest import Client

HUGE = "9" * 25
ENORMOUS = "9" * 5000


@pytest.mark.parametrize("number", [HUGE, ENORMOUS])
def test_every_route_with_an_id_answers_without_a_500(app: Flask, root: Client,
                                                       number: str) -> None:
    rules = [r for r in app.url_map.iter_rules() if not r.rule.startswith("/api/") and any(
        isinstance(c, IntegerConverter) for c in r._converters.values())]  # the API: its fuzz
    assert len(rules) > 30
    root.get("/apps")  # a CSRF token for the POSTs
    for rule in rules:
        url = re.sub(r"<[^>]+>", number, rule.rule)
        for method in sorted((rule.methods or set()) & {"GET", "POST"}):
            resp = root.get(url) if method == "GET" else root.post(url, {})
            # 405: the path matches another route of that shape, for other methods.
            assert resp.status_code in (404, 405), (method, rule.rule, resp.status_code)


def test_id_lists_in_forms_skip_what_names_nothing(root: Client) -> None:
    root.get("/apps")
    for url, field in [("/groups/1/numbers/delete", "id"), ("/mute/delete", "id"),
                       ("/content/qualifications/delete", "id"), ("/users/1/policies", "policy"),
                       ("/replies/delete", "id")]:
        resp = root.post(url, {field: [HUGE, ENORMOUS, "1"]})
        assert resp.status_code < 500, (url, resp.status_code)


def test_a_number_too_long_for_int_is_a_field_error() -> None:
    errors: dict[str, str] = {}
    assert whole_number(ENORMOUS, "limit", errors) is None
    assert errors == {"limit": "Enter a whole number from 0 to 999,999,999."}
