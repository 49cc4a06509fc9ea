"""A management API caller that signs every request with a user's SecretId/SecretKey."""

from __future__ import annotations

import json
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.models import User
from app.services import api_keys
from tests.api.test_send_api import signed
from tests.helpers import ctx_for


def new_pair(session: Session, user: User) -> tuple[str, str]:
    key, secret = api_keys.create_key(ctx_for(session, user), user.id)
    session.commit()
    return key.secret_id, secret


class Mgmt:
    def __init__(self, client: FlaskClient, secret_id: str, secret_key: str) -> None:
        self.client, self.secret_id, self.secret_key = client, secret_id, secret_key

    def call(self, method: str, path: str, body: Any = None, *,
             headers: dict[str, str] | None = None, raw: bytes | None = None,
             **sign: Any) -> TestResponse:
        data = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
        target = path if path.startswith("/api/") else "/api/v1" + path
        h = signed(self.secret_key, data, method=method, target=target, **sign)
        h["X-SMS-SecretId"] = self.secret_id
        h.update(headers or {})
        return self.client.open(target, method=method, data=data, headers=h)

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.call("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> TestResponse:
        return self.call("POST", path, body, **kw)

    def put(self, path: str, body: Any = None, **kw: Any) -> TestResponse:
        return self.call("PUT", path, body, **kw)

    def delete(self, path: str, **kw: Any) -> TestResponse:
        return self.call("DELETE", path, **kw)


def as_user(client: FlaskClient, session: Session, user: User) -> Mgmt:
    return Mgmt(client, *new_pair(session, user))
