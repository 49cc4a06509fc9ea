"""Customer groups through the management API."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session

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
