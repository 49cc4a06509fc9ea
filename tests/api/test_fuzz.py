"""The OpenAPI document, fuzzed with schemathesis against the running app: every
generated request is signed properly, so the fuzzing reaches past authentication,
and every answer must match the document (never a 500)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session

from tests.api.test_send_api import as_signed, signed
from tests.sending.conftest import Shop

schema = schemathesis.openapi.from_path(
    Path(__file__).resolve().parents[2] / "app" / "api" / "openapi.json")


def request_of(case: schemathesis.Case) -> tuple[bytes, str]:
    """The raw body and the request target (path?query) a case sends: what is signed."""
    body = b""
    if isinstance(case.body, bytes):
        body = case.body
    elif case.body is not None and not isinstance(case.body, NotSet):
        body = json.dumps(case.body).encode()
    target = case.formatted_path
    if case.query:
        target += "?" + urlencode(case.query, doseq=True)
    return body, target


@schema.parametrize()
@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_api_matches_its_document(case: schemathesis.Case, api: Flask, shop: Shop,
                                  session: Session) -> None:
    session.commit()
    body, target = request_of(case)
    headers = signed(shop.app.app_key, body, method=case.method.upper(),
                     target=as_signed(target)) | {"X-SMS-AppId": shop.app.sdk_app_id}
    response = api.test_client().open(target, method=case.method, data=body,
                                      headers=headers)
    assert response.status_code != 500, response.get_data(as_text=True)
    case.validate_response(response, checks=[status_code_conformance,
                                             content_type_conformance,
                                             response_schema_conformance])
