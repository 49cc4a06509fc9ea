"""Slack tests: signed requests through the Flask endpoint, with the Slack Web API
answered by a loopback HTTP server that records every call (the pattern of
bolt-python's own tests). No mock of Bolt itself."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app import create_app
from jobs import worker
from tests.conftest import Backend
from tests.sending.conftest import shop  # noqa: F401 - an application to send with

SIGNING_SECRET = "test-signing-secret"
REVIEW_CHANNEL = "CREVIEW01"


class SlackAPI:
    """Answers /api/<method> like Slack; `replies` sets special answers per method."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.replies: dict[str, tuple[int, dict[str, Any], dict[str, str]]] = {}
        self.emails: dict[str, str] = {}
        self.unconfirmed: set[str] = set()  # members whose email Slack has not confirmed
        self._ts = 1700000000.000100
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                if "json" in (self.headers.get("Content-Type") or ""):
                    params = json.loads(raw or "{}")
                else:
                    params = dict(parse_qsl(raw))
                    for key in ("blocks", "view"):
                        if isinstance(params.get(key), str):
                            params[key] = json.loads(params[key])
                method = self.path.rsplit("/", 1)[-1]
                api.calls.append((method, params))
                status, body, headers = api.answer(method, params)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, method: str, params: dict[str, Any]) -> tuple[int, dict, dict]:
        if method in self.replies:
            return self.replies.pop(method)
        if method == "users.info":
            email = self.emails.get(params.get("user", ""))
            return 200, {"ok": True, "user": {
                "id": params.get("user"), "deleted": False, "is_bot": False,
                "is_email_confirmed": params.get("user") not in self.unconfirmed,
                "profile": {"email": email}}}, {}
        if method in ("chat.postMessage", "chat.update"):
            self._ts += 1
            return 200, {"ok": True, "channel": params.get("channel"),
                         "ts": params.get("ts") or f"{self._ts:.6f}"}, {}
        return 200, {"ok": True}, {}

    def named(self, method: str) -> list[dict[str, Any]]:
        return [p for m, p in self.calls if m == method]

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def slack_api() -> Iterator[SlackAPI]:
    api = SlackAPI()
    yield api
    api.close()


@pytest.fixture
def slack_app(backend: Backend, session: Session, tmp_path: Path,
              slack_api: SlackAPI) -> Iterator[Flask]:
    app = create_app({
        "DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
        "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x", "TESTING": True,
        "SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": f"{slack_api.url}/api/", "SLACK_REVIEW_CHANNEL": REVIEW_CHANNEL,
        "SIMULATOR_RECEIPT_DELAY_S": 0,
    })
    yield app
    app.extensions["db"].engine.dispose()


def sign(body: str, timestamp: int | None = None,
         secret: str = SIGNING_SECRET) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


def _trigger() -> str:
    """Each interaction has its own trigger id, as in Slack: two commands alike are two
    requests (the endpoint takes one signed request once)."""
    return f"13345224609.{uuid.uuid4().int % 10**9}.8088930838d88f"


class Slack:
    """What Slack would send us, signed."""

    def __init__(self, client: FlaskClient, api: SlackAPI, app: Flask) -> None:
        self.client, self.api, self.app = client, api, app

    def post(self, body: str, **sign_kw: Any):  # type: ignore[no-untyped-def]
        return self.client.post("/slack/events", data=body, headers=sign(body, **sign_kw))

    def command(self, text: str, user: str = "U0AUTHOR1"):  # type: ignore[no-untyped-def]
        return self.post(urlencode({
            "command": "/sms", "text": text, "user_id": user, "channel_id": "CCMD0001",
            "team_id": "T0TEAM001", "trigger_id": _trigger(),
            "response_url": f"{self.api.url}/response"}))

    def click(self, action_id: str, value: str, user: str, *, channel: str = REVIEW_CHANNEL,
              ephemeral: bool = False):  # type: ignore[no-untyped-def]
        payload = {
            "type": "block_actions", "user": {"id": user}, "team": {"id": "T0TEAM001"},
            "api_app_id": "A0APP0001", "trigger_id": _trigger(),
            "channel": {"id": channel}, "response_url": f"{self.api.url}/response",
            "container": {"type": "message", "is_ephemeral": ephemeral},
            "actions": [{"action_id": action_id, "block_id": f"review:{value}",
                         "value": value, "type": "button"}],
        }
        return self.post(urlencode({"payload": json.dumps(payload)}))

    def submit(self, callback_id: str, values: dict[str, Any], user: str,
               private_metadata: str = ""):  # type: ignore[no-untyped-def]
        payload = {
            "type": "view_submission", "user": {"id": user}, "team": {"id": "T0TEAM001"},
            "api_app_id": "A0APP0001", "trigger_id": _trigger(),
            "view": {"id": "V0VIEW001", "callback_id": callback_id, "type": "modal",
                     "private_metadata": private_metadata, "state": {"values": values}},
        }
        return self.post(urlencode({"payload": json.dumps(payload)}))

    def run_jobs(self) -> None:
        """What a worker does after the ack: a real RQ worker, until the queue is empty."""
        assert worker.run(self.app, burst=True)


@pytest.fixture
def slack(slack_app: Flask, slack_api: SlackAPI) -> Slack:
    return Slack(slack_app.test_client(), slack_api, slack_app)
