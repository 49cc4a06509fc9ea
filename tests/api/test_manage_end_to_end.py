"""One cycle through the APIs only: a signature and a template created with one
user's SecretId/SecretKey, approved with another user's pair, a message sent with
the application's AppKey, and its state read back as a real RQ worker moves it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app import create_app
from app.services import apps
from jobs import worker
from tests.api.mgmt import as_user
from tests.api.test_send_api import signed
from tests.conftest import Backend
from tests.helpers import make_user, root_ctx


@pytest.fixture
def api(backend: Backend, session: Session, tmp_path: Path) -> Iterator[Flask]:
    """The app, with the simulator's receipts due at once (no waiting in the test)."""
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "SIMULATOR_RECEIPT_DELAY_S": 0})
    yield app
    app.extensions["db"].engine.dispose()


def test_template_to_delivered_message_through_the_api(api: Flask, session: Session) -> None:
    application, app_key = apps.create_app(root_ctx(session), name="Release pipeline")
    session.commit()
    author = as_user(api.test_client(), session, make_user(
        session, "ci@example.com", presets=["SMSFullAccess"]))
    reviewer = as_user(api.test_client(), session, make_user(
        session, "reviewer@example.com", presets=["SMSReviewer"]))

    sig = author.post("/signatures", {"region": "international", "purpose": "self",
                                      "sign_type": "app", "content": "Acme"},
                      headers={"Idempotency-Key": "sig-1"})
    assert sig.status_code == 201, sig.get_json()
    tpl = author.post("/templates", {"region": "international", "name": "Login code",
                                     "sms_type": "verification",
                                     "content": "Your code is {1}"},
                      headers={"Idempotency-Key": "tpl-1"})
    assert tpl.status_code == 201, tpl.get_json()
    pending = {(i["kind"], i["id"]): i["revision"]
               for i in reviewer.get("/reviews").get_json()["items"]}
    assert set(pending) == {("signature", sig.get_json()["id"]),
                            ("template", tpl.get_json()["id"])}
    for (kind, obj_id), revision in pending.items():
        decided = reviewer.post(f"/reviews/{kind}/{obj_id}/decision",
                                {"decision": "approve", "revision": revision})
        assert decided.status_code == 200, decided.get_json()
    template = author.get(f"/templates/{tpl.get_json()['id']}").get_json()
    assert template["status"] in ("approved", "effective"), template

    client = api.test_client()
    body = json.dumps({"phone_numbers": ["+14155550101"], "template_id": template["id"],
                       "template_params": ["4321"]}).encode()
    headers = signed(app_key, body) | {"X-SMS-AppId": application.sdk_app_id}
    sent = client.post("/api/v1/sms/send", data=body, headers=headers)
    assert sent.status_code == 200, sent.get_json()
    [status] = sent.get_json()["send_status"]
    assert status["code"] == "Ok", status

    target = f"/api/v1/sms/messages/{status['serial_no']}"
    deadline, state = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        worker.run(api, burst=True, no_fork=True)  # a real RQ worker, until its queue is empty
        headers = signed(app_key, b"", method="GET", target=target) | {
            "X-SMS-AppId": application.sdk_app_id}
        state = client.get(target, headers=headers).get_json()
        if state["status"] in ("delivered", "failed"):
            break
    assert state is not None and state["status"] == "delivered", state
    assert (state["phone_number"], state["code"]) == ("+14155550101", "Ok"), state
