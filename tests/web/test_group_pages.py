"""Customer groups on the web."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import CustomerGroup, GroupMember
from app.services import audience
from tests.helpers import make_user, root_ctx
from tests.web.conftest import Client, soup, text_of


def test_pool_entry_creates_a_group_and_lists_bad_lines(root: Client, session: Session) -> None:
    page = root.get("/groups")
    assert page.status_code == 200 and "No groups yet" in text_of(page, "#groups")
    bad = root.post("/groups/numbers", {"numbers": "13800138000\n<b>x</b>\n4155550100",
                                         "group_id": "", "new_name": "Spring",
                                         "sms_type": "marketing"})
    assert bad.status_code == 422
    table = text_of(bad, "#bad-lines")
    assert "2 <b>x</b> Not a phone number" in table and "3 4155550100 Add the country" in table
    assert "<b>x</b>" not in bad.get_data(as_text=True)  # escaped
    assert session.scalar(select(CustomerGroup.id)) is None
    ok = root.post("/groups/numbers", {"numbers": "13800138000\n13800138000\n+14155550100",
                                        "group_id": "", "new_name": "Spring",
                                        "sms_type": "marketing"})
    assert ok.status_code == 302
    detail = root.get(ok.location)
    assert "Added 2 numbers; 1 already there or repeated, merged." in detail.get_data(
        as_text=True)
    assert "+8613800138000" in text_of(detail, "#member-rows")
    listing = root.get("/groups?q=spr")
    assert "Spring Marketing 2" in text_of(listing, "#groups")


def test_group_page_search_remove_rename_export_delete(root: Client, session: Session) -> None:
    c = root_ctx(session)
    group = audience.add_typed(c, text="13800138000\n13900139000\n+14155550100",
                               new_name="Ops", sms_type="notification").group
    session.commit()
    url = f"/groups/{group.id}"
    found = root.get(f"{url}?q=139", htmx=True)
    assert "+8613900139000" in found.get_data(as_text=True)
    assert "+8613800138000" not in found.get_data(as_text=True)
    assert root.get(f"{url}?q=zz").status_code == 200  # a clear error, not a 500
    member = session.scalar(select(GroupMember.id).where(
        GroupMember.phone_number == "+8613900139000"))
    assert root.post(f"{url}/numbers/delete", {"id": [str(member)]}).status_code == 302
    assert "2 numbers" in text_of(root.get(url), "main")
    assert root.post(f"{url}/rename", {"name": "=cmd|calc"}).status_code == 302
    export = root.get(f"{url}/export.csv")
    assert export.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(export.data.decode("utf-8-sig"))))
    assert rows[0] == ["phone_number"]  # typed numbers: no extra columns
    assert sorted(r[0] for r in rows[1:]) == ["'+14155550100", "'+8613800138000"]
    wrong = root.post(f"{url}/delete", {"confirm_name": "Ops"})
    assert wrong.status_code == 422 and "Type the group's name" in text_of(wrong, "main")
    assert root.post(f"{url}/delete", {"confirm_name": "=cmd|calc"}).status_code == 302
    assert root.get(url).status_code == 404


def test_read_only_user_sees_groups_but_no_forms(client: Client, session: Session) -> None:
    audience.add_typed(root_ctx(session), text="13800138000", new_name="Seen",
                       sms_type="marketing")
    make_user(session, "ro@example.com", presets=["SMSReadOnlyAccess"])
    session.commit()
    assert client.login("ro@example.com").status_code == 302
    page = client.get("/groups")
    assert "Seen" in text_of(page, "#groups")
    assert soup(page).select("form[action='/groups/numbers']") == []
    gid = session.scalar(select(CustomerGroup.id))
    refused = client.post(f"/groups/{gid}/numbers", {"numbers": "13900139000"})
    assert refused.status_code == 403
    assert client.post(f"/groups/{gid}/delete", {"confirm_name": "Seen"}).status_code == 403


def test_an_exported_group_imports_back_the_same(root: Client, session: Session) -> None:
    """Found from outside: the export joined a number's extra columns into one cell
    ("a | b"), so the file did not import back as the same group, and a task made from
    it had no valid row. Each extra column is now a column of its own."""
    c = root_ctx(session)
    data = b"phone,name,city\n13800138000,Ana,Hangzhou\n13900139000,Bo\n"
    group = audience.import_file(c, io.BytesIO(data), "list.csv", new_name="Ops",
                                 sms_type="notification").group
    session.commit()
    export = root.get(f"/groups/{group.id}/export.csv")
    rows = list(csv.reader(io.StringIO(export.data.decode("utf-8-sig"))))
    assert rows[0] == ["phone_number", "column_1", "column_2"]
    assert rows[1:] == [["'+8613800138000", "Ana", "Hangzhou"], ["'+8613900139000", "Bo", ""]]
    again = audience.import_file(c, io.BytesIO(export.data), "group.csv", new_name="Again",
                                 sms_type="notification").group
    session.commit()
    members = lambda gid: [(m.phone_number, [a for a in (m.attributes or []) if a])  # noqa: E731
                           for m in session.scalars(select(GroupMember).where(
                               GroupMember.group_id == gid).order_by(GroupMember.id))]
    assert members(again.id) == members(group.id)
