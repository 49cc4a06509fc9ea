"""The management API fuzzed with schemathesis against its part of the served
document, every request signed with a root user's SecretId/SecretKey so the fuzzing
reaches past authentication: no 500s, and every answer matches the document.

Schemathesis's coverage phase (boundary values, missing and wrong-typed fields: about
a hundred requests an operation, beyond max_examples) runs on PostgreSQL, the stricter
backend (NUL in text, 32-bit ids), where it answers; SQLite gets the generated
examples. Two schemas with one phase each, so neither backend generates cases it would
only skip (the most expensive test file in the suite)."""

from __future__ import annotations

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.schemas import BaseSchema
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
from tests.conftest import BACKENDS, Backend
from tests.sending.conftest import Shop

PAIRS: dict[int, tuple[str, str]] = {}


def _schema(phase: str) -> BaseSchema:
    schema = schemathesis.openapi.from_dict(document()).include(
        path_regex=r"^/api/v1/(?!sms/)")
    phases = schema.config.phases
    phases.coverage.enabled, phases.fuzzing.enabled = phase == "coverage", phase == "fuzzing"
    phases.examples.enabled = phases.stateful.enabled = False
    return schema


BOUNDARIES, GENERATED = _schema("coverage"), _schema("fuzzing")
FUZZ_SETTINGS = settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[
    HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("backend", BACKENDS[-1:], indirect=True)
@BOUNDARIES.parametrize()
@FUZZ_SETTINGS
def test_management_api_takes_boundary_values(case: schemathesis.Case, api: Flask, shop: Shop,
                                              session: Session, backend: Backend) -> None:
    _matches_its_document(case, api, session)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@GENERATED.parametrize()
@FUZZ_SETTINGS
def test_management_api_matches_its_document(case: schemathesis.Case, api: Flask, shop: Shop,
                                             session: Session, backend: Backend) -> None:
    _matches_its_document(case, api, session)


def _matches_its_document(case: schemathesis.Case, api: Flask, session: Session) -> None:
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
