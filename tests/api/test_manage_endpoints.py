"""The management endpoints: a thin adapter over the services, one error shape, one
pagination style, and Idempotency-Key on writes (also under a race)."""

from __future__ import annotations

import base64
import io
import json
import threading
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import CustomerGroup, IdempotentReply, Qualification, Template
from app.services import content
from tests.api.mgmt import Mgmt, as_user
from tests.helpers import QUALIFICATION, held_together, make_app, make_user, root_ctx, together

TEMPLATE = {"region": "international", "name": "Shipped", "sms_type": "notification",
            "content": "Order {1} shipped"}


def _full(api: Flask, session: Session, email: str = "ops@example.com") -> Mgmt:
    return as_user(api.test_client(), session,
                   make_user(session, email, presets=["SMSFullAccess"]))


def test_template_lifecycle_and_errors(api: Flask, session: Session) -> None:
    m = _full(api, session)
    created = m.post("/templates", TEMPLATE)
    assert created.status_code == 201, created.get_json()
    t = created.get_json()
    assert (t["status"], t["revision"], t["name"]) == ("pending", t["revision"], "Shipped")
    got = m.get(f"/templates/{t['id']}").get_json()
    assert got["content"] == "Order {1} shipped"
    changed = m.put(f"/templates/{t['id']}", {**TEMPLATE, "name": "Sent"})
    assert changed.status_code == 200 and changed.get_json()["name"] == "Sent"
    bad = m.post("/templates", {**TEMPLATE, "sms_type": "spam"})
    assert bad.status_code == 400
    err = bad.get_json()["error"]
    assert err["code"] == "InvalidParameter" and "sms_type" in err["fields"]
    wrong_type = m.post("/templates", {**TEMPLATE, "name": 5})
    assert wrong_type.get_json()["error"]["fields"] == {"name": "Must be a string."}
    assert m.post("/templates", raw=b"[1]").status_code == 400
    assert m.post("/templates", raw=b'{"a": ' * 200 + b"1" + b"}" * 200).status_code == 400
    nul = m.post("/templates", {**TEMPLATE, "name": "a\x00b"})
    assert nul.status_code == 400
    missing = m.get("/templates/999999")
    assert (missing.status_code, missing.get_json()["error"]["code"]) == (404, "NotFound")
    assert m.get("/templates/99999999999").status_code == 404
    assert m.delete(f"/templates/{t['id']}").status_code == 200
    assert m.get(f"/templates/{t['id']}").status_code == 404


def test_pagination_is_the_same_everywhere(api: Flask, session: Session) -> None:
    m = _full(api, session)
    for n in range(5):
        assert m.post("/templates", {**TEMPLATE, "name": f"T{n}"}).status_code == 201
    page = m.get("/templates?region=international&page=2&page_size=2").get_json()
    assert [x["name"] for x in page["items"]] == ["T2", "T3"]
    assert (page["page"], page["page_size"], page["total"]) == (2, 2, 5)
    assert m.get("/reviews?page_size=3").get_json()["total"] == 5
    # Found from outside: '²' passed str.isdigit() and failed int() (a 500), and '٣'
    # (Arabic-Indic three) was read as page 3.
    for bad in ("page=0", "page_size=101", "page=x", "page=%C2%B2", "page_size=%C2%B2",
                "page=%D9%A3"):
        resp = m.get(f"/templates?{bad}")
        assert resp.status_code == 400, bad
        assert resp.get_json()["error"]["code"] == "InvalidParameter"
    for sig in ("%C2%B2", "99999999999999999999"):
        resp = m.get(f"/unsubscribes?phone_number=%2B14155550100&signature_id={sig}")
        assert resp.status_code in (200, 400), (sig, resp.status_code)


def test_review_decisions_carry_the_revision(api: Flask, session: Session) -> None:
    author = _full(api, session, "author@example.com")
    reviewer = as_user(api.test_client(), session,
                       make_user(session, "rev@example.com", presets=["SMSReviewer"]))
    t = author.post("/templates", TEMPLATE).get_json()
    queue = reviewer.get("/reviews").get_json()["items"]
    assert [(i["kind"], i["id"]) for i in queue] == [("template", t["id"])]
    author.put(f"/templates/{t['id']}", {**TEMPLATE, "name": "Changed"})
    stale = reviewer.post(f"/reviews/template/{t['id']}/decision",
                          {"decision": "approve", "revision": t["revision"]})
    assert (stale.status_code, stale.get_json()["error"]["code"]) == (409, "Conflict")
    seen = reviewer.get(f"/templates/{t['id']}").get_json()["revision"]
    own = author.post(f"/reviews/template/{t['id']}/decision",
                      {"decision": "approve", "revision": seen})
    assert own.status_code == 403  # nobody reviews their own submission
    ok = reviewer.post(f"/reviews/template/{t['id']}/decision",
                       {"decision": "reject", "revision": seen, "reason": "Too vague"})
    assert ok.status_code == 200, ok.get_json()
    assert ok.get_json()["status"] == "rejected"
    bad = reviewer.post(f"/reviews/template/{t['id']}/decision",
                        {"decision": "maybe", "revision": seen})
    assert bad.status_code in (400, 409)


def _png() -> str:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), "white").save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def test_signature_with_image_upload(api: Flask, session: Session, instance_dir: Path) -> None:
    m = _full(api, session)
    body = {"region": "international", "purpose": "self", "sign_type": "trademark",
            "content": "Acme", "proof_image": {"filename": "tm.png", "data_base64": _png()}}
    resp = m.post("/signatures", body)
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["has_proof_image"] is True
    stored = list((Path(api.config["INSTANCE_DIR"]) / "uploads").rglob("*.png"))
    assert len(stored) == 1
    bad = m.post("/signatures", {**body, "proof_image": {"data_base64": "bm90IGFuIGltYWdl"}})
    assert bad.status_code == 400 and "proof_image" in bad.get_json()["error"]["fields"]
    assert len(list((Path(api.config["INSTANCE_DIR"]) / "uploads").rglob("*.png"))) == 1


def test_application_settings(api: Flask, session: Session) -> None:
    a = make_app(session)
    m = _full(api, session)
    assert m.put(f"/apps/{a}/status", {"enabled": False}).get_json()["enabled"] is False
    th = m.put(f"/apps/{a}/thresholds/mainland", {"alarm_threshold": 5, "daily_limit": 10})
    assert th.get_json()["mainland"] == {"alarm_threshold": 5, "daily_limit": 10}
    assert m.put(f"/apps/{a}/thresholds/mars", {}).status_code == 400
    assert m.put(f"/apps/{a}/countries/us", {"daily_limit": None}).status_code == 200
    assert m.get(f"/apps/{a}/countries").get_json()["items"][0]["iso_code"] == "US"
    assert m.delete(f"/apps/{a}/countries/US").status_code == 200
    freq = {"30s": {"enabled": True, "limit": 1}, "hour": {"enabled": False, "limit": 5},
            "day": {"enabled": True, "limit": 9}}
    assert m.put(f"/apps/{a}/frequency", freq).get_json()["day"] == {"enabled": True,
                                                                      "limit": 9}
    added = m.post(f"/apps/{a}/allowlist", {"phone_numbers": ["+14155550100", "13800000000"]})
    assert added.get_json() == {"added": 2}
    assert m.get(f"/apps/{a}/allowlist").get_json()["total"] == 2
    assert m.post(f"/apps/{a}/allowlist/remove",
                  {"phone_numbers": ["+14155550100"]}).get_json() == {"removed": 1}
    private = m.put(f"/apps/{a}/callback", {"status_callback_url": "http://127.0.0.1/x"})
    assert private.status_code == 400
    contact = m.post(f"/apps/{a}/contacts", {"name": "Ops", "email": "ops@example.com",
                                             "events": ["threshold"]})
    assert contact.status_code == 201, contact.get_json()
    cid = contact.get_json()["id"]
    assert m.put(f"/apps/{a}/contacts/{cid}", {"name": "Ops2", "email": "o@example.com",
                                               "events": []}).get_json()["name"] == "Ops2"
    assert m.delete(f"/apps/{a}/contacts/{cid}").status_code == 200


def test_mute_list_and_unsubscribes(api: Flask, session: Session) -> None:
    root = root_ctx(session)
    sig = content.create_signature(root, "international", {
        "purpose": "self", "sign_type": "app", "content": "Acme"})
    session.commit()
    m = _full(api, session)
    entry = m.post("/mute-list", {"phone_number": "+14155550100", "signature_id": sig.id,
                                  "sms_type": "", "consent": True})
    assert entry.status_code == 201, entry.get_json()
    assert m.get("/mute-list?phone_number=%2B14155550100").get_json()["total"] == 1
    assert m.post("/mute-list/remove", {"ids": [entry.get_json()["id"]]}).get_json() == {
        "removed": 1}
    assert m.get("/unsubscribes?phone_number=%2B14155550100").get_json()["items"] == []
    refused = m.post("/unsubscribe-removals", {
        "phone_number": "+14155550100", "signature_id": sig.id, "sms_type": "marketing",
        "reason": "Asked again"})
    assert refused.status_code == 409  # not unsubscribed: nothing to remove
    assert m.get("/unsubscribe-removals").get_json()["total"] == 0


def test_idempotency_key_replays_and_refuses_a_different_request(
        api: Flask, session: Session) -> None:
    m = _full(api, session)
    first = m.post("/templates", TEMPLATE, headers={"Idempotency-Key": "release-42"})
    again = m.post("/templates", TEMPLATE, headers={"Idempotency-Key": "release-42"})
    assert first.status_code == again.status_code == 201
    assert first.get_json() == again.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = m.post("/templates", {**TEMPLATE, "name": "Other"},
                   headers={"Idempotency-Key": "release-42"})
    assert (other.status_code, other.get_json()["error"]["code"]) == (
        422, "IdempotencyKeyReused")
    assert session.scalar(select(func.count()).select_from(Template)) == 1
    # A refused write stores nothing: the retry runs afresh.
    bad = m.post("/templates", {**TEMPLATE, "sms_type": "x"},
                 headers={"Idempotency-Key": "k2"})
    assert bad.status_code == 400
    assert session.scalar(select(func.count()).select_from(IdempotentReply)) == 1
    assert m.post("/templates", {**TEMPLATE, "sms_type": "x"},
                  headers={"Idempotency-Key": "bad key"}).status_code == 400


def _at_once(m: Mgmt, n: int, path: str, body: dict,
             headers: dict[str, str] | None = None) -> list[tuple[int, dict]]:
    """n identical requests released together from n threads, each its own client."""
    barrier = threading.Barrier(n)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def one() -> None:
        client = Mgmt(m.client.application.test_client(), m.secret_id, m.secret_key)
        barrier.wait(timeout=30)
        resp = client.post(path, body, headers=headers)
        with lock:
            answers.append((resp.status_code, resp.get_json()))

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(answers) == n
    return answers


GROUP_FILE = {"filename": "fans.csv",
              "data_base64": base64.b64encode(b"13800138000\n+14155550100\n").decode()}
RACES = {  # a write → the table it adds to
    "qualification": ("/qualifications", dict(QUALIFICATION), Qualification),
    "group import": ("/groups/import", {"name": "Fans", "sms_type": "marketing",
                                        "file": GROUP_FILE}, CustomerGroup),
}


@pytest.mark.parametrize("race", sorted(RACES))
def test_idempotency_key_under_a_race(api: Flask, session: Session, race: str) -> None:
    path, body, model = RACES[race]
    answers = _at_once(_full(api, session), 6, path, body, {"Idempotency-Key": "crm-7"})
    assert len({status for status, _ in answers}) == 1, answers
    assert answers[0][0] in (200, 201), answers
    assert len({json.dumps(answer, sort_keys=True) for _, answer in answers}) == 1
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(model)) == 1


def test_the_same_write_at_once_without_a_key_is_refused_cleanly(
        api: Flask, session: Session) -> None:
    """Without a key the second of two identical creates is a clear 4xx (the name is
    taken), never a 500 from the database's unique constraint."""
    answers = _at_once(_full(api, session), 4, "/groups", {"name": "VIP",
                                                           "sms_type": "marketing"})
    statuses = sorted(status for status, _ in answers)
    assert statuses[0] == 201 and set(statuses[1:]) <= {400, 409}, answers
    assert all(answer["error"]["code"] in ("InvalidParameter", "Conflict")
               for status, answer in answers if status != 201), answers
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(CustomerGroup)) == 1


def test_stored_answers_are_forgotten_after_a_day(api: Flask, session: Session) -> None:
    from datetime import timedelta

    from app.db import utcnow

    m = _full(api, session)
    first = m.post("/templates", TEMPLATE, headers={"Idempotency-Key": "old"})
    row = session.scalars(select(IdempotentReply)).one()
    row.created_at = utcnow() - timedelta(hours=25)
    session.commit()
    again = m.post("/templates", TEMPLATE, headers={"Idempotency-Key": "old"})
    assert again.status_code == 201 and again.get_json()["id"] != first.get_json()["id"]
    assert "Idempotent-Replayed" not in again.headers


def test_body_caps(api: Flask, session: Session) -> None:
    m = _full(api, session)
    big = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'
    resp = m.post("/templates", raw=big)
    assert (resp.status_code, resp.get_json()["error"]["code"]) == (413, "RequestTooLarge")
    # Signatures carry base64 images: up to 8 MB reaches the image check (5 MB decoded).
    image = base64.b64encode(b"\x89PNG" + b"0" * (2 * 1024 * 1024)).decode()
    resp = m.post("/signatures", {"region": "international", "purpose": "self",
                                  "sign_type": "trademark", "content": "Acme",
                                  "proof_image": {"data_base64": image}})
    assert resp.status_code == 400 and "proof_image" in resp.get_json()["error"]["fields"]


def test_every_route_is_documented_with_its_policy_action(api: Flask) -> None:
    from app.api import document
    from app.api.manage_spec import OPERATIONS
    from app.services.access import ACTIONS

    routes = {r.endpoint for r in api.url_map.iter_rules() if r.endpoint.startswith("api.m_")}
    assert routes == {f"api.m_{key}" for key in OPERATIONS}
    doc = document()
    documented = {op["operationId"]: op for path in doc["paths"].values()
                  for op in path.values() if "x-policy-action" in op}
    assert len(documented) == len(OPERATIONS)
    assert all(op["x-policy-action"][4:] in ACTIONS for op in documented.values())


def test_every_write_replays_its_answer_for_the_same_key(api: Flask, session: Session) -> None:
    """Each write operation of the document (the matrix's requests), sent twice with
    one Idempotency-Key: the second gets the first answer back and writes nothing."""
    from app.api.manage_spec import OPERATIONS
    from tests.api.test_manage_matrix import ACCOUNT_CASES, APP_CASES, request_of

    m = _full(api, session)
    writes = {k: c for k, c in {**APP_CASES, **ACCOUNT_CASES}.items() if c[0] != "GET"}
    assert set(writes) == {k for k, op in OPERATIONS.items() if op.method != "GET"}
    for n, (key, case) in enumerate(sorted(writes.items())):
        method, target, data = request_of(case, session, make_app(session, f"App {n}"))
        session.commit()
        first = m.call(method, target, data, headers={"Idempotency-Key": f"k-{key}"})
        assert first.status_code in (200, 201), (key, first.get_json())
        again = m.call(method, target, data, headers={"Idempotency-Key": f"k-{key}"})
        assert again.headers.get("Idempotent-Replayed") == "true", (key, again.get_json())
        assert (again.status_code, again.get_json()) == (first.status_code, first.get_json())


def _upload(data: bytes, name: str = "list.csv") -> dict[str, str]:
    return {"filename": name, "data_base64": base64.b64encode(data).decode()}


def test_countries_import_from_a_file(api: Flask, session: Session) -> None:
    a = make_app(session)
    m = _full(api, session)
    done = m.post(f"/apps/{a}/countries/import",
                  {"file": _upload(b"iso,alarm threshold,daily limit\nUS,10,20\ngb\n")})
    assert (done.status_code, done.get_json()) == (200, {"imported": 2}), done.get_json()
    listed = m.get(f"/apps/{a}/countries").get_json()["items"]
    assert [(c["iso_code"], c["daily_limit"]) for c in listed] == [("GB", None), ("US", 20)]
    bad = m.post(f"/apps/{a}/countries/import", {"file": _upload(b"FR\nZZ,1\n")})
    assert bad.status_code == 400 and "line 2" in bad.get_json()["error"]["fields"]["file"]
    assert m.get(f"/apps/{a}/countries").get_json()["total"] == 2  # all or nothing
    assert m.post(f"/apps/{a}/countries/import", {}).status_code == 400


def test_alarm_contact_mobile_is_confirmed_through_the_api(api: Flask, session: Session,
                                                           tmp_path: Path) -> None:
    from jobs import worker
    from tests.jobs.test_alarm_sms import CountingSimulator

    gateway = CountingSimulator(tmp_path / "simulator.jsonl")
    api.extensions["gateway"] = gateway
    a = make_app(session)
    m = _full(api, session)
    contact = m.post(f"/apps/{a}/contacts", {"name": "Ops", "mobile": "+8613900000001",
                                             "events": ["threshold"]}).get_json()
    base = f"/apps/{a}/contacts/{contact['id']}"
    early = m.post(base + "/confirm", {"code": "123456"})
    assert early.status_code == 400 and "Send a code" in early.get_json()["error"]["message"]
    sent = m.post(base + "/send-code")
    assert sent.status_code == 200, sent.get_json()
    assert sent.get_json()["mobile_confirmed"] is False
    again = m.post(base + "/send-code")
    assert again.status_code == 409 and "Wait" in again.get_json()["error"]["message"]
    assert worker.run(api, burst=True)
    [(_to, text)] = gateway.received()
    code = text.split("code is ")[1][:6]
    wrong = "000000" if code != "000000" else "111111"
    bad = m.post(base + "/confirm", {"code": wrong}, headers={"Idempotency-Key": "try-1"})
    assert bad.status_code == 400 and "4 tries left" in bad.get_json()["error"]["message"]
    # The wrong try counts (kept, not rolled back), and no answer was stored for the key.
    retried = m.post(base + "/confirm", {"code": wrong}, headers={"Idempotency-Key": "try-1"})
    assert "3 tries left" in retried.get_json()["error"]["message"], retried.get_json()
    good = m.post(base + "/confirm", {"code": code})
    assert good.status_code == 200 and good.get_json()["mobile_confirmed"] is True


def test_a_lost_race_answers_the_services_own_error(api: Flask, session: Session) -> None:
    """Both requests pass the "is it free?" check, then the database's unique key refuses
    one: the loser gets what the check would have said (the same error the web shows),
    not a generic conflict."""
    m = _full(api, session)
    sdk_app_id = make_app(session)
    session.commit()
    engine = api.extensions["db"].engine
    twin = Mgmt(api.test_client(), m.secret_id, m.secret_key)
    with held_together(engine, "INSERT INTO customer_group") as met:
        answers = together(*(lambda c=c: c.post("/groups", {"name": "VIP",
                                                            "sms_type": "marketing"})
                             for c in (m, twin)))
    assert len(met) == 2
    assert sorted(a.status_code for a in answers) == [201, 400], [a.get_json() for a in answers]
    lost = next(a for a in answers if a.status_code == 400).get_json()["error"]
    assert lost["fields"] == {"name": "A group with this name exists already."}, lost
    with held_together(engine, "INSERT INTO frequency_allowlist") as met:
        answers = together(*(lambda c=c: c.post(f"/apps/{sdk_app_id}/allowlist",
                                                {"phone_numbers": ["+14155550100"]})
                             for c in (m, twin)))
    assert sorted(a.status_code for a in answers) == [200, 409], [a.get_json() for a in answers]
    lost = next(a for a in answers if a.status_code == 409).get_json()["error"]
    assert lost["code"] == "Conflict" and "saved the same numbers" in lost["message"], lost


def test_carrier_template_id_is_set_as_in_the_console(api: Flask, session: Session) -> None:
    m = _full(api, session)
    t = m.post("/templates", TEMPLATE).get_json()
    path = f"/templates/{t['id']}/carrier-template-id"
    done = m.put(path, {"carrier_template_id": " T-100 "})
    assert done.status_code == 200, done.get_json()
    assert (done.get_json()["carrier_template_id"], done.get_json()["status"]) == (
        "T-100", "pending")
    assert m.get(f"/templates/{t['id']}").get_json()["carrier_template_id"] == "T-100"
    bad = m.put(path, {"carrier_template_id": "no spaces <b>"})
    assert bad.status_code == 400 and "carrier_template_id" in bad.get_json()["error"]["fields"]
    assert m.put(path, {}).status_code == 400  # required: null clears it
    cleared = m.put(path, {"carrier_template_id": None})
    assert cleared.status_code == 200 and cleared.get_json()["carrier_template_id"] is None


def test_the_sms_log_documents_how_far_it_counts() -> None:
    """Found from outside: the document said the total was counted up to 10,001; the
    service counts to 1,001 (or just past the page asked for)."""
    from app.api.manage_spec import OPERATIONS
    from app.services import sending

    [log] = [o for o in OPERATIONS.values() if o.path == "/messages"]
    assert f"counted up to {sending.LOG_COUNT_CAP + 1:,}" in log.summary
