"""One cycle through the APIs only: a signature and a template created with one
user's SecretId/SecretKey, approved with another user's pair, a message sent with
the application's AppKey, and its state read back as a real RQ worker moves it; then
a bulk task created from a file, confirmed, run to the end by the worker, and its
figures read back from the task, the SMS log and the statistics."""

from __future__ import annotations

import base64
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

    # A bulk task from a file, through the management API only.
    # The simulator delivers +14155550110 and reports +14155550103 undelivered.
    csv = b"phone,code\n+14155550110,5678\n+14155550103,8765\n12345,1\n"
    draft = {"sdk_app_id": application.sdk_app_id, "template_id": template["id"],
             "name": "Release", "file": {"filename": "list.csv",
                                         "data_base64": base64.b64encode(csv).decode()}}
    checked = author.post("/tasks/validate", draft)
    assert checked.status_code == 200, checked.get_json()
    assert (checked.get_json()["valid"], checked.get_json()["errors"]) == (2, 1)
    created = author.post("/tasks", draft, headers={"Idempotency-Key": "task-1"})
    assert created.status_code == 201, created.get_json()
    again = author.post("/tasks", draft, headers={"Idempotency-Key": "task-1"})
    assert again.headers.get("Idempotent-Replayed") == "true"
    task = created.get_json()["task"]
    assert again.get_json()["task"]["id"] == task["id"]
    assert task["status"] == "awaiting_confirmation", task
    refused = author.post(f"/tasks/{task['id']}/confirm", {"acknowledged": False})
    assert refused.status_code == 400, refused.get_json()
    confirmed = author.post(f"/tasks/{task['id']}/confirm", {"acknowledged": True})
    assert confirmed.status_code == 200, confirmed.get_json()
    assert confirmed.get_json()["status"] == "sending"

    deadline, shown = time.monotonic() + 60, None
    while time.monotonic() < deadline:
        worker.run(api, burst=True, no_fork=True)
        shown = author.get(f"/tasks/{task['id']}").get_json()
        figures = shown["progress"]
        if shown["task"]["status"] == "sent" and figures["delivered"] + figures["failed"] == 2:
            break
    assert shown is not None and shown["task"]["status"] == "sent", shown
    assert (shown["progress"]["total"], shown["progress"]["delivered"],
            shown["progress"]["failed"], shown["progress"]["remaining"]) == (2, 1, 1, 0), shown
    records = author.get(f"/tasks/{task['id']}/records?status=delivered").get_json()
    assert [r["phone_number"] for r in records["items"]] == ["+14155550110"], records
    receipts = author.get(f"/tasks/{task['id']}/receipts").get_json()
    assert (receipts["delivered"], receipts["failed"], receipts["delivery_rate"]) == (
        1, 1, 0.5), receipts
    assert [r["code"] for r in receipts["reasons"]] == ["UNDELIV"], receipts
    log = author.get(f"/messages?sdk_app_id={application.sdk_app_id}&period=today").get_json()
    assert log["total"] == 3 and {m["task_id"] for m in log["items"]} == {None, task["id"]}

    where = f"region=international&period=today&sdk_app_id={application.sdk_app_id}"
    overview = author.get(f"/statistics/overview?{where}").get_json()
    assert overview["total"]["requests"] == 3 and overview["total"]["success"] == 3, overview
    stats_receipts = author.get(f"/statistics/receipts?{where}").get_json()
    assert (stats_receipts["delivered"], stats_receipts["failed"]) == (2, 1), stats_receipts
    countries = author.get(f"/statistics/countries?{where}").get_json()
    assert [(c["iso_code"], c["requests"]) for c in countries["items"]] == [("US", 3)]
    codes = author.get(f"/statistics/verification?{where}").get_json()
    assert sum(h["requests"] for h in codes["items"]) == 3, codes
