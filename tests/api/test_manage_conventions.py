"""What a program that automates with the management API relies on, checked across
the whole operation table: every list pages the same way and counts everything,
the SMS log's reply records are there too."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import update
from sqlalchemy.orm import Session

from app.api import document
from app.models import Message, MuteEntry, UnsubscribeRemoval
from app.models.sending import SUBMITTED
from app.services import apps, replies, sending
from tests.api.mgmt import Mgmt, as_user
from tests.helpers import doc, make_user
from tests.sending.conftest import Shop


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_list_pages_the_same_way() -> None:
    """An answer with items is a page: it takes page and page_size and says page,
    page_size and total, so one paging loop works on every list."""
    spec = document()
    lists = 0
    for path, methods in spec["paths"].items():
        if not path.startswith("/api/v1/") or path.startswith("/api/v1/sms/"):
            continue
        for method, op in methods.items():
            ok = next(v for k, v in op["responses"].items() if k.startswith("2"))
            answer = _resolve(spec, ok["content"]["application/json"]["schema"])
            if "items" not in answer.get("properties", {}):
                continue
            lists += 1
            where = f"{method.upper()} {path}"
            assert {"page", "page_size", "total"} <= set(answer["properties"]), where
            assert set(answer["required"]) >= {"items", "page", "page_size", "total"}, where
            params = {p["name"] for p in op["parameters"] if p["in"] == "query"}
            assert {"page", "page_size"} <= params, where
    assert lists >= 20


def _full(api: Flask, session: Session) -> Mgmt:
    return as_user(api.test_client(), session,
                   make_user(session, "ops@example.com", presets=["SMSFullAccess"]))


def test_statistics_tables_page_like_every_list(api: Flask, session: Session,
                                                shop: Shop) -> None:
    shop.send(["+14155550110", "+447911123456", "+12"])
    session.commit()
    m = _full(api, session)
    where = f"region=international&sdk_app_id={shop.app.sdk_app_id}"
    whole = m.get(f"/statistics/countries?{where}").get_json()
    assert whole["total"] == len(whole["items"]) >= 2, whole
    one_by_one = [m.get(f"/statistics/countries?{where}&page_size=1&page={n}").get_json()
                  for n in range(1, whole["total"] + 1)]
    assert [p["items"] for p in one_by_one] == [[i] for i in whole["items"]]
    assert {(p["page_size"], p["total"]) for p in one_by_one} == {(1, whole["total"])}
    failures = m.get(f"/statistics/failures?{where}").get_json()
    assert failures["total"] == len(failures["items"]) >= 1 and failures["page"] == 1
    codes = m.get(f"/statistics/verification?{where}&page_size=5").get_json()
    assert codes["page_size"] == 5 and len(codes["items"]) <= 5
    assert m.get(f"/statistics/failures?{where}&page_size=0").status_code == 400


def test_lists_count_past_what_the_console_shows(api: Flask, session: Session,
                                                 shop: Shop) -> None:
    """The console shows the latest 500 mute entries and 200 removal requests; the
    API pages through all of them, and its total says how many there are."""
    account_id, sig = shop.app.account_id, shop.signatures["international"]
    session.add_all(MuteEntry(account_id=account_id, phone_number=f"+1415555{n:04d}",
                              signature_id=sig, sms_type=None, consent_confirmed_by="x")
                    for n in range(501))
    session.add_all(UnsubscribeRemoval(
        account_id=account_id, phone_number=f"+1415555{n:04d}", signature_id=sig,
        sms_type="marketing", reason="Asked", status="pending", revision=1,
        submitted_by="x") for n in range(201))
    session.commit()
    m = _full(api, session)
    muted = m.get("/mute-list?page=6&page_size=100").get_json()
    assert (muted["total"], len(muted["items"])) == (501, 1), muted["total"]
    assert muted["items"][0]["phone_number"] == "+14155550000"  # the oldest, last
    asked = m.get("/unsubscribe-removals?page=3&page_size=100").get_json()
    assert (asked["total"], len(asked["items"])) == (201, 1), asked["total"]
    one = m.get("/mute-list?phone_number=%2B14155550007").get_json()
    assert one["total"] == 1


def test_reply_records_of_the_sms_log(api: Flask, session: Session, shop: Shop) -> None:
    other, _key = apps.create_app(shop.ctx, name="Other")
    assert [r.code for r in shop.send(["+14155550123"])] == ["Ok"]
    req = sending.SendRequest(["+14155550124"], shop.templates["international"], ["654321"])
    assert [r.code for r in sending.send(shop.ctx, shop.limiter, other.sdk_app_id, req)[1]
            ] == ["Ok"]
    session.execute(update(Message).values(status=SUBMITTED))  # as if they had left
    replies.receive(shop.ctx, "+14155550123", "TD")
    replies.receive(shop.ctx, "+14155550124", "<b>hi</b>")
    replies.receive(shop.ctx, "+14155550199", "who?")  # answers nothing we sent
    session.commit()
    m = _full(api, session)
    page = m.get("/replies?page_size=2").get_json()
    assert (page["total"], page["page_size"]) == (3, 2), page
    assert [r["text"] for r in page["items"]] == ["who?", "<b>hi</b>"]
    assert page["items"][1]["sdk_app_id"] == other.sdk_app_id
    assert page["items"][0]["sdk_app_id"] is None
    rest = m.get("/replies?page=2&page_size=2").get_json()["items"]
    assert [(r["text"], r["unsubscribed"], r["sdk_app_id"]) for r in rest] == [
        ("TD", True, shop.app.sdk_app_id)]
    assert m.get("/replies?phone_number=%2B1415555012").get_json()["total"] == 2  # a prefix
    scoped = as_user(api.test_client(), session, make_user(
        session, "scoped@example.com", policies=[doc(
            ("allow", ["sms:DescribeSendSmsRecord"], [f"sms:app/{other.sdk_app_id}"]))]))
    assert [r["text"] for r in scoped.get("/replies").get_json()["items"]] == ["<b>hi</b>"]
    nobody = as_user(api.test_client(), session, make_user(
        session, "nobody@example.com", policies=[doc(
            ("allow", ["sms:DescribeAppList"], ["sms:app/*"]))]))
    assert nobody.get("/replies").status_code == 403


def test_head_answers_like_get_without_a_body(api: Flask, session: Session) -> None:
    m = _full(api, session)
    got, head = m.get("/apps?page_size=1"), m.call("HEAD", "/apps?page_size=1")
    assert (head.status_code, head.get_data()) == (200, b""), head.get_data(as_text=True)
    assert head.headers["Content-Length"] == got.headers["Content-Length"]
