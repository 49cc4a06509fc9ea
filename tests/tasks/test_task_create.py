"""Creating a task writes exactly what validation decided: COPY on PostgreSQL,
executemany on SQLite, in several statements, and nothing of a file refused part way."""

from __future__ import annotations

import io
import json

import openpyxl
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from app.models import SendTask, SendTaskError, SendTaskRecipient
from app.services import content, reviews, tasks
from app.services.errors import ValidationError
from app.sms import taskfile
from tests.helpers import ctx_for, make_user
from tests.sending.conftest import Shop

LINES = ["phone,name,order"] + [f"1380013{i:04d},Ann{i},A{i}" for i in range(12)] + [
    "13900139000,张三,B1",  # non-ASCII parameters: JSON escapes them
    '13900139001,"back\\slash","say ""hi"""',  # quoted, a backslash and quotes
    "13900139002,😀,C1",  # outside the BMP
    "12345,x,y",  # a row error
    "13800130000,Ann again,A0",  # a repeated number
    "13900139003,x",  # a missing variable
    '13900139004,"a\tb",D1',  # a control character
]


def notification(shop: Shop, session: Session) -> int:
    t = content.create_template(shop.ctx, "mainland", {
        "name": "shipped", "sms_type": "notification", "content": "{1}您好 订单{2}已发货"})
    reviewer = ctx_for(session, make_user(session, "rev2@example.com", presets=["SMSReviewer"]))
    reviews.approve(reviewer, "template", t.id, revision=t.revision)
    return t.id


@pytest.mark.parametrize("chunk", [3, tasks.COPY_ROWS])
def test_recipients_and_errors_are_what_validation_decided(
        shop: Shop, session: Session, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(tasks, "COPY_ROWS", chunk)
    monkeypatch.setattr(taskfile, "BLOCK_CHARS", 64)  # blocks of the common shape, and not
    data = ("\n".join(LINES) + "\n").encode()
    draft = tasks.Draft(shop.app.sdk_app_id, notification(shop, session), name="T")
    task, summary = tasks.create_task(shop.ctx, draft, io.BytesIO(data), "list.csv")
    spec = taskfile.Template("{1}您好 订单{2}已发货", "notification", "mainland", "Shop")
    verdicts = list(taskfile.validate(io.BytesIO(data), "list.csv", spec))
    rows = [v for v in verdicts if isinstance(v, taskfile.Row)]
    stored = session.execute(text(
        "SELECT row_no, phone_number, iso_code, CAST(params AS TEXT), fee "
        "FROM send_task_recipient WHERE task_id = :t ORDER BY row_no"), {"t": task.id}).all()
    assert [tuple(s) for s in stored] == [
        (r.row, r.phone, r.iso, json.dumps(r.params), r.fee) for r in rows]
    assert [r.params for r in session.scalars(select(SendTaskRecipient).where(
        SendTaskRecipient.task_id == task.id).order_by(SendTaskRecipient.row_no))] == [
        r.params for r in rows]
    assert ["back\\slash", 'say "hi"'] in [r.params for r in rows]
    errors = session.scalars(select(SendTaskError).where(SendTaskError.task_id == task.id)
                             .order_by(SendTaskError.row_no)).all()
    assert [(e.row_no, e.column, e.reason) for e in errors] == [
        tuple(v) for v in verdicts if isinstance(v, taskfile.RowError)]
    assert len(errors) == 4 and (summary.valid, summary.errors) == (len(rows), 4) == (15, 4)
    assert (task.valid_rows, task.billed_items) == (15, sum(r.fee for r in rows))


def test_a_file_refused_after_rows_were_written_leaves_nothing(
        shop: Shop, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tasks, "COPY_ROWS", 2)
    monkeypatch.setattr(taskfile, "BLOCK_CHARS", 64)
    # Not UTF-8, so read as GB18030, where the last byte is invalid: found at the end.
    data = "".join(f"1380013{i:04d},{1000 + i}\n" for i in range(30)).encode() + b"\xff\n"
    draft = tasks.Draft(shop.app.sdk_app_id, shop.templates["mainland"], name="T")
    with pytest.raises(ValidationError) as exc:
        tasks.create_task(shop.ctx, draft, io.BytesIO(data), "list.csv")
    assert "neither UTF-8 nor Chinese" in exc.value.errors["file"]
    for model in (SendTask, SendTaskRecipient, SendTaskError):
        assert session.scalar(select(func.count()).select_from(model)) == 0


def test_an_xlsx_with_formulas_never_calculated_makes_no_task(
        shop: Shop, session: Session) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["phone", "code"])
    for i in range(30):
        sheet.append([13800130000 + i, 1000 + i if i != 20 else "=1000+20"])
    out = io.BytesIO()
    book.save(out)
    draft = tasks.Draft(shop.app.sdk_app_id, shop.templates["mainland"], name="T")
    with pytest.raises(ValidationError) as exc:
        tasks.create_task(shop.ctx, draft, io.BytesIO(out.getvalue()), "list.xlsx")
    assert "formulas that were never calculated (1 cell: B22)" in exc.value.errors["file"]
    for model in (SendTask, SendTaskRecipient, SendTaskError):
        assert session.scalar(select(func.count()).select_from(model)) == 0


def test_a_failure_part_way_loses_the_transaction_not_the_connection(
        shop: Shop, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    real_scan = taskfile.scan

    def scan_then_fail(*args: object, **kw: object) -> object:
        yield from real_scan(*args, **kw)  # type: ignore[arg-type]
        raise RuntimeError("disk gone")

    monkeypatch.setattr(taskfile, "scan", scan_then_fail)
    data = "".join(f"1380013{i:04d},{1000 + i}\n" for i in range(30)).encode()
    draft = tasks.Draft(shop.app.sdk_app_id, shop.templates["mainland"], name="T")
    with pytest.raises(RuntimeError, match="disk gone"):
        tasks.create_task(shop.ctx, draft, io.BytesIO(data), "list.csv")
    session.rollback()  # what the edge does; the connection still works after it
    assert session.scalar(select(func.count()).select_from(SendTaskRecipient)) == 0
