"""Bulk tasks, statistics, the SMS log and alarms through the management API: the
answers, the filters and paging, every bad input a clear 4xx, and the scoping the
services apply (what the permission matrix cannot express: lists that narrow
instead of refusing, and acknowledging, which needs reading first)."""

from __future__ import annotations

import base64
from typing import Any

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Alarm, SendTask
from app.services import apps
from tests.api.mgmt import Mgmt, as_user
from tests.helpers import doc, make_user
from tests.sending.conftest import Shop


def _file(data: bytes, name: str = "list.csv") -> dict[str, str]:
    return {"filename": name, "data_base64": base64.b64encode(data).decode()}


def _full(api: Flask, session: Session, email: str = "ops@example.com") -> Mgmt:
    return as_user(api.test_client(), session,
                   make_user(session, email, presets=["SMSFullAccess"]))


def _draft(shop: Shop, data: bytes, **kw: Any) -> dict[str, Any]:
    return {"sdk_app_id": shop.app.sdk_app_id, "template_id": shop.templates["international"],
            "file": _file(data), **kw}


def test_task_cycle_with_bad_inputs(api: Flask, session: Session, shop: Shop) -> None:
    m = _full(api, session)
    tasks_before = session.scalar(select(func.count()).select_from(SendTask))
    checked = m.post("/tasks/validate", _draft(shop, b"+14155550110,1234\n12,1\n"))
    assert checked.status_code == 200, checked.get_json()
    body = checked.get_json()
    assert (body["rows"], body["valid"], body["errors"]) == (2, 1, 1)
    assert body["first_errors"][0]["row"] == 2
    assert session.scalar(select(func.count()).select_from(SendTask)) == tasks_before

    for bad, field in (
        ({**_draft(shop, b""), "file": {"filename": "a.csv", "data_base64": "%%"}}, "file"),
        ({k: v for k, v in _draft(shop, b"x").items() if k != "file"}, "file"),
        ({**_draft(shop, b"+14155550110,1\n"), "file": _file(b"+14155550110,1\n", "")},
         "file"),
        (_draft(shop, b"+14155550110,1234\n", send_at="tomorrow"), "send_at"),
        (_draft(shop, b"+14155550110,1234\n", template_id="7"), "template_id"),
        (_draft(shop, b"+14155550110,1234\n", rate_limit=0), "rate_limit"),
        ({**_draft(shop, b"+14155550110,1234\n"),
          "template_id": shop.templates["pending"]}, "template_id"),
    ):
        refused = m.post("/tasks", bad)
        assert refused.status_code == 400, (bad, refused.get_json())
        assert field in refused.get_json()["error"]["fields"], refused.get_json()
    unreadable = m.post("/tasks", _draft(shop, b"\x00\x01garbage"))
    assert unreadable.status_code == 400, unreadable.get_json()
    assert session.scalar(select(func.count()).select_from(SendTask)) == tasks_before

    created = m.post("/tasks", _draft(shop, b"+14155550110,1234\n+14155550111,99\n",
                                      name="<b>Spring</b>"))
    assert created.status_code == 201, created.get_json()
    task = created.get_json()["task"]
    assert (task["name"], task["status"], task["valid_rows"]) == (
        "<b>Spring</b>", "awaiting_confirmation", 1)
    assert created.get_json()["validation"]["errors"] == 1

    pending = m.get(f"/tasks/{task['id']}/records?status=pending").get_json()
    assert [r["phone_number"] for r in pending["items"]] == ["+14155550110"]
    assert m.get(f"/tasks/{task['id']}/records?status=nope").status_code == 400
    by_number = m.get(f"/tasks/{task['id']}/records?status=pending&phone_number=%2B1999")
    assert by_number.get_json()["total"] == 0
    assert m.post(f"/tasks/{task['id']}/stop").status_code == 409  # not sending yet
    assert m.post(f"/tasks/{task['id']}/confirm", {}).status_code == 400
    cancelled = m.post(f"/tasks/{task['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] == "cancelled"
    again = m.post(f"/tasks/{task['id']}/confirm", {"acknowledged": True})
    assert again.status_code == 409, again.get_json()
    shown = m.get(f"/tasks/{task['id']}").get_json()
    assert shown["task"]["status"] == "cancelled" and shown["progress"]["unsent"] == 1
    assert m.get("/tasks/2147483647").status_code == 404
    assert m.get("/tasks/99999999999").status_code == 404


def test_task_list_pages_and_region_filter(api: Flask, session: Session, shop: Shop) -> None:
    m = _full(api, session)
    ids = [m.post("/tasks", _draft(shop, b"+14155550110,1234\n")).get_json()["task"]["id"]
           for _ in range(3)]
    first = m.get("/tasks?page_size=2").get_json()
    assert (first["total"], [t["id"] for t in first["items"]]) == (3, ids[:0:-1])
    second = m.get("/tasks?page_size=2&page=2").get_json()
    assert [t["id"] for t in second["items"]] == [ids[0]]
    assert m.get("/tasks?region=mainland").get_json()["total"] == 0
    assert m.get("/tasks?region=international").get_json()["total"] == 3
    assert m.get("/tasks?region=moon").status_code == 400
    assert m.get("/tasks?page_size=101").status_code == 400


def test_task_scoped_to_its_application(api: Flask, session: Session, shop: Shop) -> None:
    other, _key = apps.create_app(shop.ctx, name="Other")
    session.commit()
    task_id = _full(api, session).post(
        "/tasks", _draft(shop, b"+14155550110,1234\n")).get_json()["task"]["id"]
    scoped = as_user(api.test_client(), session, make_user(session, "scoped@example.com",
                     policies=[doc(("allow", ["sms:*"], [f"sms:app/{other.sdk_app_id}"]))]))
    assert scoped.get(f"/tasks/{task_id}").status_code == 404
    assert scoped.get(f"/tasks/{task_id}/receipts").status_code == 404
    assert scoped.get("/tasks").get_json()["total"] == 0
    refused = scoped.post("/tasks", _draft(shop, b"+14155550110,1234\n"))
    assert refused.status_code in (403, 404), refused.get_json()


def test_statistics_filters(api: Flask, session: Session, shop: Shop) -> None:
    shop.send(["+14155550110", "+14155550111"])
    session.commit()
    m = _full(api, session)
    where = f"region=international&sdk_app_id={shop.app.sdk_app_id}"
    today = m.get(f"/statistics/overview?{where}").get_json()
    assert today["total"]["requests"] == 2 and today["hourly"] is True
    assert len(today["trend"]) in (23, 24, 25)
    week = m.get(f"/statistics/overview?{where}&period=7d").get_json()
    assert week["total"]["requests"] == 2 and len(week["trend"]) == 7
    other_template = m.get(f"/statistics/overview?{where}&template_id="
                           f"{shop.templates['marketing']}").get_json()
    assert other_template["total"]["requests"] == 0
    assert m.get(f"/statistics/overview?{where}&iso_code=CA").get_json()["total"][
        "requests"] == 0
    assert m.get("/statistics/overview?region=mainland").get_json()["total"]["requests"] == 0
    countries = m.get(f"/statistics/countries?{where}").get_json()
    assert [(c["iso_code"], c["calling_code"]) for c in countries["items"]] == [("US", "+1")]
    backwards = "period=custom&start=2026-02-01&end=2026-01-01"
    for bad, field in (("period=fortnight", "period"), (backwards, "period"),
                       ("signature_id=abc", "signature_id"), ("region=moon", "region"),
                       ("iso_code=1", "iso_code")):
        query = bad if bad.startswith("region=") else f"region=international&{bad}"
        refused = m.get(f"/statistics/failures?{query}")
        assert refused.status_code == 400, (bad, refused.get_json())
        assert field in refused.get_json()["error"]["fields"], refused.get_json()
    assert m.get("/statistics/countries?region=mainland").status_code == 400
    assert m.get("/statistics/receipts?region=mainland&sdk_app_id=1999999999").status_code \
        == 404
    custom = m.get(f"/statistics/verification?{where}&period=custom&start=2026-01-01"
                   "&end=2026-01-02")
    assert custom.status_code == 200 and custom.get_json()["items"] == []


def test_sms_log_pages_filters_and_scope(api: Flask, session: Session, shop: Shop) -> None:
    shop.send(["+14155550110", "+14155550111", "+14155550112"])
    other, _key = apps.create_app(shop.ctx, name="Other")
    session.commit()
    m = _full(api, session)
    page = m.get("/messages?page_size=2").get_json()
    assert (page["total"], len(page["items"]), page["page_size"]) == (3, 2, 2)
    assert page["items"][0]["sdk_app_id"] == shop.app.sdk_app_id
    assert m.get("/messages?phone_number=%2B14155550111").get_json()["total"] == 1
    assert m.get("/messages?phone_number=1415555011").get_json()["total"] == 3  # a prefix
    assert m.get("/messages?status=nope").status_code == 400
    assert m.get("/messages?period=yesterday").get_json()["total"] == 0
    assert m.get("/messages?period=custom").status_code == 400
    scoped = as_user(api.test_client(), session, make_user(session, "scoped@example.com",
                     policies=[doc(("allow", ["sms:*"], [f"sms:app/{other.sdk_app_id}"]))]))
    assert scoped.get("/messages").get_json()["total"] == 0
    assert scoped.get(f"/messages?sdk_app_id={shop.app.sdk_app_id}").get_json()["total"] == 0


def _alarm(session: Session, shop: Shop, app: Any, event: str = "threshold") -> int:
    alarm = Alarm(account_id=shop.app.account_id, app_id=app.id if app else None, event=event,
                  period=f"p{event}{app.id if app else 0}", subject="Threshold <reached>",
                  body="It was.", figures={"sdk_app_id": app.sdk_app_id if app else None})
    session.add(alarm)
    session.commit()
    return alarm.id


def test_alarms_list_and_acknowledge(api: Flask, session: Session, shop: Shop) -> None:
    other, _key = apps.create_app(shop.ctx, name="Other")
    mine = _alarm(session, shop, shop.app)
    theirs = _alarm(session, shop, other)
    account = _alarm(session, shop, None, "quota")
    m = _full(api, session)
    listed = [a for a in m.get("/alarms?page_size=100").get_json()["items"]
              if a["id"] in (mine, theirs, account)]  # the shop's reviews raised some too
    assert [a["id"] for a in listed] == [account, theirs, mine]
    assert listed[2]["subject"] == "Threshold <reached>"
    assert [a["id"] for a in m.get(f"/alarms?sdk_app_id={other.sdk_app_id}")
            .get_json()["items"]] == [theirs]
    assert m.get("/alarms?event=quota").get_json()["total"] == 1
    assert m.get("/alarms?since=2000-01-01&until=2000-01-02").get_json()["total"] == 0
    for bad in ("event=nope", "since=yesterday", "sdk_app_id=12"):
        assert m.get(f"/alarms?{bad}").status_code == 400, bad

    reader = as_user(api.test_client(), session, make_user(
        session, "reader@example.com", policies=[doc(
            ("allow", ["sms:DescribeAlarms"], [f"sms:app/{shop.app.sdk_app_id}"]))]))
    assert [a["id"] for a in reader.get("/alarms").get_json()["items"]] == [mine]
    assert reader.post(f"/alarms/{mine}/acknowledge").status_code == 403
    assert reader.post(f"/alarms/{theirs}/acknowledge").status_code == 404
    nobody = as_user(api.test_client(), session, make_user(
        session, "nobody@example.com", policies=[doc(
            ("allow", ["sms:DescribeAppList"], ["sms:app/*"]))]))
    assert nobody.get("/alarms").status_code == 403

    handler = as_user(api.test_client(), session, make_user(
        session, "handler@example.com", policies=[doc(
            ("allow", ["sms:DescribeAlarms", "sms:ModifyAlarms"],
             [f"sms:app/{shop.app.sdk_app_id}"]))]))
    done = handler.post(f"/alarms/{mine}/acknowledge")
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["acknowledged_by"] == "handler@example.com"
    assert handler.post(f"/alarms/{account}/acknowledge").status_code == 404
    second = m.post(f"/alarms/{mine}/acknowledge").get_json()
    assert second["acknowledged_by"] == "handler@example.com"  # the first person is kept


def test_every_row_error_of_a_task_and_the_standard_file(api: Flask, session: Session,
                                                         shop: Shop) -> None:
    m = _full(api, session)
    data = b"+14155550110,1234\n" + b"".join(b"12,%d\n" % n for n in range(150))
    created = m.post("/tasks", _draft(shop, data)).get_json()
    assert created["validation"]["errors"] == 150
    assert len(created["validation"]["first_errors"]) == 100
    task_id = created["task"]["id"]
    rest = m.get(f"/tasks/{task_id}/errors?page=2&page_size=100").get_json()
    assert (rest["total"], len(rest["items"])) == (150, 50), rest["total"]
    assert rest["items"][0] == {"row": 102, "column": "phone",
                                "reason": rest["items"][0]["reason"]}
    assert m.get("/tasks/2147483647/errors").status_code == 404

    columns = m.get(f"/templates/{shop.templates['international']}/standard-file")
    assert columns.status_code == 200, columns.get_json()
    body = columns.get_json()
    assert body["columns"] == ["phone", "{1}"] and body["example"][0] == "+14155550100"
    assert len(body["example"]) == 2


def test_send_to_a_group(api: Flask, session: Session, shop: Shop) -> None:
    m = _full(api, session)
    group = m.post("/groups/import", {"name": "Fans", "sms_type": "verification", "file": _file(
        b"phone,code\n+14155550110,1111\n+14155550111,2222\n13800138000,3333\n")}).get_json()
    gid = group["group"]["id"]
    same = m.post(f"/groups/{gid}/send", {"sdk_app_id": shop.app.sdk_app_id,
                                          "template_id": shop.templates["international"],
                                          "params": ["4321"]})
    assert same.status_code == 201, same.get_json()
    task = same.get_json()["task"]
    assert (task["status"], task["valid_rows"], task["error_rows"]) == (
        "awaiting_confirmation", 2, 1), task  # the mainland number is the other region
    assert task["name"] == "Group: Fans"
    own = m.post(f"/groups/{gid}/send", {"sdk_app_id": shop.app.sdk_app_id,
                                         "template_id": shop.templates["international"]})
    assert own.status_code == 201 and own.get_json()["task"]["valid_rows"] == 2  # own codes
    bad = m.post(f"/groups/{gid}/send", {"sdk_app_id": shop.app.sdk_app_id,
                                         "template_id": shop.templates["international"],
                                         "params": "4321"})
    assert bad.status_code == 400 and "params" in bad.get_json()["error"]["fields"]
    assert m.post("/groups/2147483647/send", {"sdk_app_id": shop.app.sdk_app_id,
                                              "template_id": 1}).status_code == 404


def test_alarms_unacknowledged_only(api: Flask, session: Session, shop: Shop) -> None:
    """The same filter as the alarm history page's, as a query parameter."""
    first, second = _alarm(session, shop, shop.app), _alarm(session, shop, None, "quota")
    m = _full(api, session)
    assert m.post(f"/alarms/{first}/acknowledge").status_code == 200
    every = {a["id"] for a in m.get("/alarms?page_size=100").get_json()["items"]}
    assert {first, second} <= every
    for yes in ("true", "1"):
        body = m.get(f"/alarms?unacknowledged={yes}&page_size=100").get_json()
        ids = [a["id"] for a in body["items"]]
        assert second in ids and first not in ids
        assert all(a["acknowledged_at"] is None for a in body["items"])
        assert body["total"] == len(ids)
    assert first in {a["id"] for a in m.get("/alarms?unacknowledged=false&page_size=100")
                     .get_json()["items"]}
    bad = m.get("/alarms?unacknowledged=maybe")
    assert bad.status_code == 400 and "unacknowledged" in bad.get_json()["error"]["fields"]
    doc_ = api.test_client().get("/api/v1/openapi.json").get_json()
    params = {p["name"]: p for p in doc_["paths"]["/api/v1/alarms"]["get"]["parameters"]}
    assert params["unacknowledged"]["schema"]["type"] == "boolean"
    assert "acknowledged" in params["unacknowledged"]["description"]


def test_sms_log_filters_fields_and_what_was_billed(api: Flask, session: Session,
                                                    shop: Shop) -> None:
    """Found from outside: the API's SMS log ignored its template, signature and country
    filters (every message came back), gave no characters, parts or reason (SPEC.md §7),
    said a message the carrier refused (never billed, its credit back) was billed, and
    "1380013806" found none of the +86 138 0013 806x numbers."""
    from sqlalchemy import update

    from app.models import Message

    shop.send(["+14155550110", "+447400123456"])
    refused = shop.send(["+14155550102"])[0]
    shop.send(["13800138061", "13800138062"], template="mainland", params=["1000"])
    session.execute(update(Message).where(Message.serial_no == refused.serial_no).values(
        status="failed", error_code="FailedOperation.GatewayRejected", carrier_code="MK:0012"))
    session.commit()
    m = _full(api, session)
    assert m.get("/messages").get_json()["total"] == 5
    intl = shop.templates["international"]
    assert m.get(f"/messages?template_id={intl}").get_json()["total"] == 3
    assert m.get(f"/messages?signature_id={shop.signatures['mainland']}").get_json()[
        "total"] == 2
    assert [r["phone_number"] for r in m.get("/messages?iso_code=GB").get_json()["items"]] \
        == ["+447400123456"]
    assert m.get("/messages?template_id=x").status_code == 400
    assert m.get("/messages?phone_number=1380013806").get_json()["total"] == 2
    assert m.get("/messages?phone_number=1380013806&region=international").get_json()[
        "total"] == 0
    assert m.get("/messages?phone_number=1415555011").get_json()["total"] == 1  # as before
    # No prefix left is no filter: found by a review, "+44" in the mainland log gave all.
    assert m.get("/messages?phone_number=%2B44&region=mainland").get_json()["total"] == 0
    row = next(r for r in m.get("/messages").get_json()["items"]
               if r["serial_no"] == refused.serial_no)
    assert (row["billed_items"], row["parts"], row["characters"] > 0) == (0, 1, True)
    assert row["reason"] and row["iso_code"] == "US"
    status = m.get("/messages?status=submitted")  # nothing left: every check passed, none sent
    assert status.status_code == 200
    assert m.get("/statistics/overview?period=today").status_code == 400  # which region?
