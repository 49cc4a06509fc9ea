"""The management API fuzzed with schemathesis against its part of the served
document, every request signed with a root user's SecretId/SecretKey so the fuzzing
reaches past authentication: no 500s, and every answer matches the document.

Schemathesis's coverage phase (boundary values, missing and wrong-typed fields: about
a hundred requests an operation, beyond max_examples) runs on PostgreSQL only, the
stricter backend (NUL in text, 32-bit ids); SQLite gets the generated examples. That
halves the cost of the most expensive test in the suite."""

from __future__ import annotations

import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.generation.meta import TestPhase
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api import document
from app.models import User
from tests.api.mgmt import new_pair
from tests.api.test_fuzz import request_of
from tests.api.test_send_api import as_signed, signed
from tests.conftest import Backend
from tests.sending.conftest import Shop

schema = schemathesis.openapi.from_dict(document()).include(path_regex=r"^/api/v1/(?!sms/)")
PAIRS: dict[int, tuple[str, str]] = {}


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_management_api_matches_its_document(case: schemathesis.Case, api: Flask, shop: Shop,
                                             session: Session, backend: Backend) -> None:
    if backend.name == "sqlite" and case.meta is not None and \
            case.meta.phase.name == TestPhase.COVERAGE:
        return
    session.commit()
    root = session.scalar(select(User).where(User.is_root))
    assert root is not None
    key = (id(session), root.id)
    if key not in PAIRS:
        PAIRS.clear()
        PAIRS[key] = new_pair(session, root)  # type: ignore[index]
    secret_id, secret_key = PAIRS[key]  # type: ignore[index]
    body, target = request_of(case)
    headers = {k: v for k, v in (case.headers or {}).items()
               if k.lower() == "idempotency-key" and isinstance(v, str)}
    headers |= signed(secret_key, body, method=case.method.upper(), target=as_signed(target))
    headers["X-SMS-SecretId"] = secret_id
    response = api.test_client().open(target, method=case.method, data=body, headers=headers)
    assert response.status_code != 500, response.get_data(as_text=True)
    assert response.status_code != 401, response.get_data(as_text=True)
    case.validate_response(response, checks=[status_code_conformance,
                                             content_type_conformance,
                                             response_schema_conformance])
