"""Customer groups from files, and sending to a group as a bulk task through a real
RQ worker (SPEC.md §4)."""

from __future__ import annotations

import io

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import CustomerGroup, GroupMember, Message
from app.services import audience, tasks
from app.services.errors import ValidationError
from tests.sending.conftest import Shop
from tests.tasks.test_task_service import run_worker
from tests.tasks.test_task_service import runner as runner  # a worker's app


def _members(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(GroupMember)) or 0


def test_a_file_makes_a_group_merging_repeats_and_keeping_columns(shop: Shop,
                                                                   session: Session) -> None:
    data = ("\ufeffname,mobile,city\nAnn,13800138000,Shanghai\nBob,'+14155550100 ,NYC\n"
            "Ann again,138 0013 8000,\n,13900139000.0\n\n").encode()
    result = audience.import_file(shop.ctx, io.BytesIO(data), "list.csv", new_name="Fans",
                                  sms_type="marketing")
    assert (result.added, result.merged, result.group.member_count) == (3, 1, 3)
    _, rows = audience.all_numbers(shop.ctx, result.group.id)
    assert list(rows) == [("+8613800138000", ["Ann", "Shanghai"]), ("+14155550100", ["Bob", "NYC"]),
                          ("+8613900139000", None)]
    again = audience.import_file(shop.ctx, io.BytesIO(b"13800138000\n13700137000\n"), "b.csv",
                                 group_id=result.group.id)
    assert (again.added, again.merged, again.group.member_count) == (1, 1, 4)


def test_one_bad_row_or_a_bad_file_imports_nothing(shop: Shop, session: Session) -> None:
    rows = "\n".join([f"1380013{i:04d}" for i in range(3000)] + ["4155550100", "x", "1.38001E+10"])
    with pytest.raises(audience.BadLines) as caught:
        audience.import_file(shop.ctx, io.BytesIO(rows.encode()), "big.csv", new_name="Big",
                             sms_type="marketing")
    assert caught.value.count == 3 and [b.line for b in caught.value.lines] == [3001, 3002, 3003]
    assert "Excel stored this number in scientific notation" in caught.value.lines[2].reason
    assert "3 rows cannot be added" in caught.value.errors["file"]
    assert _members(session) == 0 and session.scalar(select(CustomerGroup.id)) is None
    for data, name, problem in ((b"", "e.csv", "empty"), (b"PK\x03\x04junk", "x.xlsx", ""),
                                (b"name,city\nAnn,X\n", "h.csv", "phone column")):
        with pytest.raises(ValidationError) as exc:
            audience.import_file(shop.ctx, io.BytesIO(data), name, new_name="G",
                                 sms_type="marketing")
        assert problem in exc.value.errors["file"]
    assert _members(session) == 0


def test_what_a_spreadsheet_shows_instead_of_a_value_is_refused(shop: Shop,
                                                                 session: Session) -> None:
    """Found from outside: a group import kept "#DIV/0!" and "1.23457E+17" as a number's
    columns, which a task file refuses; they surfaced only as row errors when the group
    was sent to. The import refuses them, naming the row and column."""
    data = b"mobile,code,ref\n13800138000,#DIV/0!,a\n13800138001,7,1.23457E+17\n13800138002,8,b\n"
    with pytest.raises(audience.BadLines) as caught:
        audience.import_file(shop.ctx, io.BytesIO(data), "list.csv", new_name="Fans",
                             sms_type="marketing")
    assert [(b.line, b.text) for b in caught.value.lines] == [(2, "column 2"),
                                                                (3, "column 3")]
    assert "spreadsheet error (#DIV/0!)" in caught.value.lines[0].reason
    assert "scientific notation" in caught.value.lines[1].reason
    assert _members(session) == 0


def test_send_to_a_group_is_a_task_that_reaches_every_number_once(
        shop: Shop, session: Session, runner: Flask) -> None:
    typed = "\n".join(["13900000001", "13900000003", "+14155550100"]
                      + [f"1380013{i:04d}" for i in range(10)])
    group = audience.add_typed(shop.ctx, text=typed, new_name="Mixed",
                               sms_type="verification").group
    draft = tasks.Draft(shop.app.sdk_app_id, shop.templates["mainland"])
    task, summary = audience.send_to_group(shop.ctx, draft, group.id, params=["4321"])
    assert task.name == "Group: Mixed" and task.status == "awaiting_confirmation"
    # The international number is a skipped row of a mainland task, with its reason.
    assert (summary.rows, summary.valid, summary.errors) == (13, 12, 1)
    assert "mainland" in summary.first_errors[0].reason.lower()
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    run_worker(shop, session, runner)
    session.refresh(task)
    assert task.status == "sent"
    msgs = session.scalars(select(Message).where(Message.task_id == task.id)).all()
    assert len(msgs) == 12 == len({m.phone_number for m in msgs})
    assert all(m.content.endswith("您的验证码为4321") for m in msgs)
    assert {m.status for m in msgs} == {"delivered", "failed"}


def test_send_with_each_numbers_own_columns(shop: Shop, session: Session) -> None:
    data = b"phone,code\n13800138000,1111\n13900139000,2222\n13700137000,\n"
    group = audience.import_file(shop.ctx, io.BytesIO(data), "codes.csv", new_name="Codes",
                                 sms_type="verification").group
    draft = tasks.Draft(shop.app.sdk_app_id, shop.templates["mainland"], name="Own codes")
    task, summary = audience.send_to_group(shop.ctx, draft, group.id, params=None)
    assert task.name == "Own codes"
    # The number imported without a code cannot fill {1}: a skipped row, not a guess.
    assert (summary.valid, summary.errors) == (2, 1)
    assert summary.first_errors[0].column == "{1}"
