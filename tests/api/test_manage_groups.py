"""Customer groups through the management API."""

from __future__ import annotations

import base64
import io
import zipfile

import openpyxl
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import CustomerGroup, GroupMember
from tests.api.mgmt import as_user
from tests.helpers import make_user


def test_group_cycle_through_the_api(api: Flask, session: Session) -> None:
    m = as_user(api.test_client(), session,
                make_user(session, "ops@example.com", presets=["SMSFullAccess"]))
    created = m.post("/groups", {"name": "VIP", "sms_type": "marketing"})
    assert created.status_code == 201, created.get_json()
    gid = created.get_json()["id"]
    bad = m.post(f"/groups/{gid}/numbers", {"phone_numbers": ["13800138000", "4155550100",
                                                              "nope"]})
    assert bad.status_code == 400
    fields = bad.get_json()["error"]["fields"]
    assert set(fields) == {"phone_numbers[1]", "phone_numbers[2]"}
    assert m.get(f"/groups/{gid}").get_json()["numbers"] == 0  # all or nothing
    added = m.post(f"/groups/{gid}/numbers", {"phone_numbers": [
        "13800138000", "+86 138 0013 8000", "+14155550100"]}).get_json()
    assert (added["added"], added["merged"], added["group"]["numbers"]) == (2, 1, 2)
    split = m.post(f"/groups/{gid}/numbers", {"phone_numbers": ["13800138000\n+14155550199"]})
    assert split.status_code == 400
    page = m.get(f"/groups/{gid}/numbers?page_size=1").get_json()
    assert (page["total"], page["page_size"], len(page["items"])) == (2, 1, 1)
    us = m.get(f"/groups/{gid}/numbers?prefix=%2B1").get_json()
    assert [i["phone_number"] for i in us["items"]] == ["+14155550100"]
    listed = m.get("/groups?name=vi").get_json()
    assert listed["total"] == 1 and listed["items"][0]["name"] == "VIP"
    removed = m.post(f"/groups/{gid}/numbers/remove", {"ids": [us["items"][0]["id"]]})
    assert removed.get_json() == {"removed": 1}
    assert m.put(f"/groups/{gid}", {"name": "VIP 2"}).get_json()["name"] == "VIP 2"
    assert m.call("DELETE", f"/groups/{gid}").get_json() == {"deleted": gid}
    assert m.get(f"/groups/{gid}").status_code == 404


def _file(data: bytes, name: str = "numbers.csv") -> dict[str, str]:
    return {"filename": name, "data_base64": base64.b64encode(data).decode()}


def _xlsx(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _counts(session: Session) -> tuple[int, int]:
    session.expire_all()
    return (session.scalar(select(func.count()).select_from(CustomerGroup)) or 0,
            session.scalar(select(func.count()).select_from(GroupMember)) or 0)


def test_import_a_file_into_a_new_or_an_existing_group(api: Flask, session: Session) -> None:
    """The web import's service through the API: CSV (any encoding) or XLSX, into a
    new group (name + message type) or an existing one; repeats merged."""
    m = as_user(api.test_client(), session,
                make_user(session, "ops@example.com", presets=["SMSFullAccess"]))
    csv = "手机号,城市\n13800138000,上海\n+14155550100,NYC\n138 0013 8000,\n".encode("gb18030")
    made = m.post("/groups/import", {"name": "Fans", "sms_type": "marketing",
                                     "file": _file(csv)})
    assert made.status_code == 200, made.get_json()
    body = made.get_json()
    assert (body["added"], body["merged"], body["group"]["numbers"]) == (2, 1, 2)
    assert (body["group"]["name"], body["group"]["sms_type"]) == ("Fans", "marketing")
    gid = body["group"]["id"]
    book = _xlsx([["phone"], [13900139000], ["+14155550100"]])
    more = m.post("/groups/import", {"group_id": gid, "file": _file(book, "more.xlsx")})
    assert more.status_code == 200, more.get_json()
    assert (more.get_json()["added"], more.get_json()["merged"]) == (1, 1)
    listed = m.get(f"/groups/{gid}/numbers").get_json()
    assert sorted(i["phone_number"] for i in listed["items"]) == [
        "+14155550100", "+8613800138000", "+8613900139000"]
    other_type = m.post("/groups/import", {"group_id": gid, "sms_type": "notification",
                                           "file": _file(b"13700137000\n")})
    assert other_type.status_code == 400 and "sms_type" in other_type.get_json()["error"][
        "fields"]
    assert m.post("/groups/import", {"group_id": 2147483647, "file": _file(b"13700137000\n")}
                  ).status_code == 404


def test_import_is_all_or_nothing_with_the_rows_listed_like_a_task(
        api: Flask, session: Session) -> None:
    m = as_user(api.test_client(), session,
                make_user(session, "ops@example.com", presets=["SMSFullAccess"]))
    data = b"phone\n13800138000\n4155550100\nnope\n1.38001E+10\n"
    refused = m.post("/groups/import", {"name": "Fans", "sms_type": "marketing",
                                        "file": _file(data)})
    assert refused.status_code == 400, refused.get_json()
    error = refused.get_json()["error"]
    assert error["code"] == "InvalidParameter" and "3 rows" in error["fields"]["file"]
    # The same shape as a task's validation: how many, then the first ones.
    assert error["errors"] == 3
    assert [(e["row"], e["column"]) for e in error["first_errors"]] == [
        (3, "phone"), (4, "phone"), (5, "phone")]
    assert "scientific notation" in error["first_errors"][2]["reason"]
    assert _counts(session) == (0, 0)  # not even the new group
    for bad, problem in (
        ({"name": "G", "sms_type": "marketing", "file": _file(b"")}, "empty"),
        ({"name": "G", "sms_type": "marketing", "file": _file(b"PK\x03\x04junk", "x.xlsx")},
         ""),
        ({"name": "G", "sms_type": "marketing"}, "Required"),
        ({"name": "G", "sms_type": "marketing",
          "file": {"filename": "a.csv", "data_base64": "%%"}}, "base64"),
        ({"name": "G", "sms_type": "marketing", "file": _file(b"13800138000\n", "")}, "name"),
        ({"name": "", "sms_type": "marketing", "file": _file(b"13800138000\n")}, ""),
    ):
        resp = m.post("/groups/import", bad)
        assert resp.status_code == 400, (bad, resp.get_json())
        fields = resp.get_json()["error"]["fields"]
        assert problem in " ".join(fields.values()), (bad, fields)
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<x/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (60 * 1024 * 1024))
    zipped = m.post("/groups/import", {"name": "G", "sms_type": "marketing",
                                       "file": _file(bomb.getvalue(), "b.xlsx")})
    assert zipped.status_code == 400 and "zip bomb" in zipped.get_json()["error"]["fields"][
        "file"]
    assert _counts(session) == (0, 0)


def test_import_size_limits(api: Flask, session: Session) -> None:
    """The task upload's limit (TASK_MAX_UPLOAD_MB): a file over it is refused by the
    reader; a body far over it is refused before it is read."""
    api.config["TASK_MAX_UPLOAD_MB"] = 1
    m = as_user(api.test_client(), session,
                make_user(session, "ops@example.com", presets=["SMSFullAccess"]))
    over = b"13800138000\n" * (1024 * 1024 // 12 + 1)
    resp = m.post("/groups/import", {"name": "G", "sms_type": "marketing",
                                     "file": _file(over)})
    assert resp.status_code == 400, resp.get_json()
    assert "at most 1 MB" in resp.get_json()["error"]["fields"]["file"]
    huge = m.post("/groups/import", {"name": "G", "sms_type": "marketing",
                                     "file": _file(over * 2)})
    assert (huge.status_code, huge.get_json()["error"]["code"]) == (413, "RequestTooLarge")
    assert _counts(session) == (0, 0)


def test_import_honours_the_idempotency_key(api: Flask, session: Session) -> None:
    m = as_user(api.test_client(), session,
                make_user(session, "ops@example.com", presets=["SMSFullAccess"]))
    body = {"name": "Fans", "sms_type": "marketing", "file": _file(b"13800138000\n")}
    first = m.post("/groups/import", body, headers={"Idempotency-Key": "crm-import-1"})
    again = m.post("/groups/import", body, headers={"Idempotency-Key": "crm-import-1"})
    assert first.status_code == again.status_code == 200, (first.get_json(), again.get_json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert first.get_json() == again.get_json()
    assert _counts(session) == (1, 1)
    plain = m.post("/groups/import", body)  # no key: a second import of a taken name
    assert plain.status_code == 400 and "name" in plain.get_json()["error"]["fields"]
