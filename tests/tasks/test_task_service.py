"""Bulk send tasks through the service layer and a real RQ worker (burst): create
from a file, preflight, confirm, dispatch through the one pipeline, stop, cancel,
schedule, rate cap, quiet hours, policies."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app import create_app
from app.models import (
    Account,
    Alarm,
    Message,
    MuteEntry,
    SendTask,
    SendTaskError,
    SendTaskRecipient,
    Unsubscribe,
    User,
)
from app.queue import enqueue_deferred
from app.services import apps, content, rollups, tasks
from app.services.errors import Conflict, NotFound, PermissionDenied, ValidationError
from jobs import worker
from tests.conftest import Backend
from tests.helpers import ctx_for, doc, make_user
from tests.sending.conftest import Shop
from tests.stats import expected

DELIVERED, REFUSED, UNDELIVERED = "+8613900000001", "+8613900000002", "+8613900000003"


@pytest.fixture
def runner(backend: Backend, session: Session, tmp_path: Path) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "SIMULATOR_RECEIPT_DELAY_S": 0, "TASK_BATCH": 7})
    yield app
    app.extensions["db"].engine.dispose()


def csv_of(n: int, extra: str = "") -> bytes:
    lines = ["phone,code"] + [f"1380013{i:04d},{1000 + i}" for i in range(n)]
    return ("\n".join(lines) + "\n" + extra).encode()


def create(shop: Shop, data: bytes, **kw: object) -> SendTask:
    draft = tasks.Draft(shop.app.sdk_app_id, shop.templates["mainland"], name="Spring",
                        **kw)  # type: ignore[arg-type]
    task, _summary = tasks.create_task(shop.ctx, draft, io.BytesIO(data), "list.csv")
    return task


def run_worker(shop: Shop, session: Session, app: Flask) -> None:
    session.commit()
    enqueue_deferred(app.extensions["redis"], shop.ctx.deferred)
    assert worker.run(app, burst=True)
    session.expire_all()


def test_create_keeps_valid_rows_and_row_errors(shop: Shop, session: Session) -> None:
    task = create(shop, csv_of(5, "12345,1234\n13800130000,12\n"))
    assert (task.status, task.total_rows, task.valid_rows, task.error_rows,
            task.billed_items) == ("awaiting_confirmation", 7, 5, 2, 5)
    assert session.scalar(select(func.count()).select_from(SendTaskRecipient)) == 5
    errs = list(tasks.row_errors(shop.ctx, task))
    assert [(e.row_no, e.column) for e in errs] == [(7, "phone"), (8, "{1}")]
    assert session.scalar(select(func.count()).select_from(Message)) == 0  # nothing sent


def test_a_bad_file_leaves_no_task(shop: Shop, session: Session) -> None:
    with pytest.raises(ValidationError) as exc:
        create(shop, b"name,code\nAnn,1\n")
    assert "phone column" in exc.value.errors["file"]
    # Fails after rows were read: still nothing kept.
    bad = csv_of(20) + b"13800139999,\xff\xfe\n"
    with pytest.raises(ValidationError):
        create(shop, bad)
    for model in (SendTask, SendTaskRecipient, SendTaskError):
        assert session.scalar(select(func.count()).select_from(model)) == 0


def test_validate_only_creates_nothing(shop: Shop, session: Session) -> None:
    draft = tasks.Draft(shop.app.sdk_app_id, shop.templates["mainland"])
    summary = tasks.validate_file(shop.ctx, draft, io.BytesIO(csv_of(3, "1,2\n")), "a.csv")
    assert summary.as_dict() | {"seconds": 0} == {"rows": 4, "valid": 3, "errors": 1,
                                                  "billed_items": 3, "seconds": 0}
    assert session.scalar(select(func.count()).select_from(SendTask)) == 0


def test_preflight_cost_and_refusals_then_ack_required(shop: Shop, session: Session) -> None:
    tasks.set_unit_prices(shop.ctx, {"mainland": 4})
    session.add(MuteEntry(account_id=shop.app.account_id, phone_number="+8613800130001",
                          signature_id=shop.signatures["mainland"], sms_type=None,
                          consent_confirmed_by="t"))
    task = create(shop, csv_of(3))
    pre = tasks.preflight(shop.ctx, shop.limiter, task.id)
    assert (pre.valid, pre.skipped, pre.billed_items, pre.cost_cents) == (3, 0, 3, 12)
    assert pre.refusals == {"FailedOperation.PhoneNumberInMuteList": 1}
    with pytest.raises(ValidationError, match="Tick"):
        tasks.confirm(shop.ctx, task.id, acknowledged=False)
    assert session.get(SendTask, task.id).status == "awaiting_confirmation"  # type: ignore[union-attr]
    assert session.scalar(select(func.count()).select_from(Message)) == 0


def test_an_unpriced_country_leaves_only_its_recipients_out_of_the_cost(
        shop: Shop, session: Session) -> None:
    """Found from outside: one country without a price hid the whole estimate ("no unit
    prices set", though US and GB had prices)."""
    tasks.set_unit_prices(shop.ctx, {"US": 7, "GB": 5})
    draft = tasks.Draft(shop.app.sdk_app_id, shop.templates["international"], name="Intl")
    data = (b"+14155550110,123456\n+14155550111,123456\n+447400123456,123456\n"
            b"+4915123456789,123456\n")
    task, _summary = tasks.create_task(shop.ctx, draft, io.BytesIO(data), "list.csv")
    pre = tasks.preflight(shop.ctx, shop.limiter, task.id)
    assert (pre.valid, pre.cost_cents, pre.unpriced) == (4, 2 * 7 + 5, ("DE",))
    # Found from outside: "Estimated cost 0.19" named no unit, while prices are typed
    # in cents.
    assert pre.cost_text == "0.19 (19 cents at your unit prices), without DE: no unit price"
    tasks.set_unit_prices(shop.ctx, {})
    pre = tasks.preflight(shop.ctx, shop.limiter, task.id)
    assert (pre.cost_cents, pre.unpriced) == (None, ("DE", "GB", "US"))


def test_confirm_sends_every_recipient_once_through_the_pipeline(
        shop: Shop, session: Session, runner: Flask) -> None:
    rows = [DELIVERED, REFUSED, UNDELIVERED] + [f"1380013{i:04d}" for i in range(20)]
    data = ("\n".join(f"{n},{1000 + i}" for i, n in enumerate(rows)) + "\n").encode()
    session.add(MuteEntry(account_id=shop.app.account_id, phone_number="+8613800130005",
                          signature_id=shop.signatures["mainland"], sms_type=None,
                          consent_confirmed_by="t"))
    task = create(shop, data)
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    run_worker(shop, session, runner)
    session.refresh(task)
    assert task.status == "sent"
    msgs = session.scalars(select(Message).where(Message.task_id == task.id)).all()
    assert sorted(m.serial_no for m in msgs) == sorted(tasks.serial_for(task.id, r)
                                                       for r in range(1, 24))
    by_phone = {m.phone_number: (m.status, m.error_code) for m in msgs}
    assert by_phone["+8613900000001"] == ("delivered", None)
    assert by_phone["+8613900000002"] == ("failed", "FailedOperation.GatewayRejected")
    assert by_phone["+8613900000003"] == ("failed", "FailedOperation.Undelivered")
    # A check that refuses is a recorded message with its code, as in the API.
    assert by_phone["+8613800130005"] == ("rejected", "FailedOperation.PhoneNumberInMuteList")
    p = tasks.progress(shop.ctx, task)
    assert (p.total, p.remaining, p.delivered, p.failed, p.rejected) == (23, 0, 20, 3, 1)
    assert p.percent == 100
    # Found from outside: the one the carrier refused at submission was counted as
    # submitted too (submitted 22, failed 3 of 23). Submitted: the 20 delivered and the
    # one its receipt failed; the refused one never was.
    assert p.submitted == 21
    # Times in the export are in the account's zone (Asia/Shanghai), as the pages show
    # them (found from outside: UTC, so today's records looked like yesterday's).
    exported = list(csv.DictReader(io.StringIO(tasks.records_csv(
        shop.ctx, task.id, status="delivered").read().decode("utf-8-sig"))))
    assert exported and all(r["submitted_at"].endswith("+08:00") for r in exported)
    # Each recipient's row went with the batch that made its message.
    assert session.scalar(select(func.count()).select_from(SendTaskRecipient)) == 0
    # Statistics count the task's messages like API sends: rollups equal a direct count.
    assert expected.rolled(session) == expected.direct(session)
    assert expected.figures(session) == expected.figures_direct(session)


def test_stop_lets_at_most_one_batch_out(shop: Shop, session: Session) -> None:
    task = create(shop, csv_of(30))
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    step = tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=10)
    assert (step.converted, step.status) == (10, "sending")
    # While it sends, the rows left are its valid rows less its figures: the 20 there are.
    assert session.scalar(select(func.count()).select_from(SendTaskRecipient)) == 20
    p = tasks.progress(shop.ctx, task)
    assert (p.remaining, p.unsent, p.percent) == (30, 0, 0)  # 10 accepted, 20 to convert
    tasks.stop(shop.ctx, task.id)
    after = tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=10)
    assert (after.converted, after.status) == (0, "stopped")
    p = tasks.progress(shop.ctx, task)
    assert (p.unsent, p.remaining) == (20, 10)  # the batch already converted still leaves
    # What is left of a stopped task is exactly what it did not send: rows 12-31
    # (row 1 is the header).
    _task, unsent, total = tasks.records(shop.ctx, task.id, status="pending", limit=50)
    assert (total, [r.row_no for r in unsent]) == (20, list(range(12, 32)))
    # Found from outside: they were listed (and exported) as "pending", as if to come.
    assert {r.status for r in unsent} == {"unsent"}
    exported = tasks.records_csv(shop.ctx, task.id, status="pending").read().decode()
    assert ",unsent," in exported and ",pending," not in exported
    # Found from outside: "any" status listed only the messages, so who never got one
    # was in no export but "pending". Now: the 10 messages, then the 20 unsent rows,
    # across pages; "unsent" names those rows too.
    pages = [tasks.records(shop.ctx, task.id, page=n, limit=7) for n in (1, 2, 3, 4, 5)]
    assert {t for _t, _r, t in pages} == {30}
    listed = [r for _t, rows, _n in pages for r in rows]
    assert len(listed) == 30 and [r.row_no for r in listed[10:]] == list(range(12, 32))
    assert len({(r.row_no, r.status) for r in listed}) == 30
    assert tasks.records(shop.ctx, task.id, status="unsent")[2] == 20
    every = tasks.records_csv(shop.ctx, task.id).read().decode().splitlines()
    assert len(every) == 31 and sum(",unsent," in line for line in every) == 20
    with pytest.raises(Conflict, match="only a sending task"):
        tasks.stop(shop.ctx, task.id)
    with pytest.raises(Conflict, match="only a scheduled or unconfirmed"):
        tasks.cancel(shop.ctx, task.id)
    # The application's alarm contacts hear it, once.
    stopped = session.scalars(select(Alarm).where(Alarm.event == "task_stopped")).all()
    assert [a.figures["task_id"] for a in stopped] == [task.id]
    assert "Stopped by root@example.com" in stopped[0].body


@pytest.mark.parametrize("change", ["disable", "delete_template"])
def test_a_task_that_can_no_longer_run_fails_with_its_reason(
        shop: Shop, session: Session, change: str) -> None:
    task = create(shop, csv_of(30))
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    assert tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=10).converted == 10
    if change == "disable":
        apps.set_enabled(shop.ctx, shop.app.sdk_app_id, False)
    else:
        content.delete_template(shop.ctx, shop.templates["mainland"])
    step = tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=10)
    assert (step.converted, step.status) == (0, "failed")
    session.refresh(task)
    assert task.failure_reason and ("disabled" in task.failure_reason
                                    or "template" in task.failure_reason)
    assert tasks.progress(shop.ctx, task).unsent == 20
    failed = session.scalars(select(Alarm).where(Alarm.event == "task_failed")).all()
    assert len(failed) == 1 and task.failure_reason in failed[0].body
    again = tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=10)
    assert again.status == "failed"
    assert session.scalar(select(func.count()).select_from(Alarm)
                          .where(Alarm.event == "task_failed")) == 1


def test_stop_from_another_session_wins_the_race(shop: Shop, session: Session,
                                                backend: Backend) -> None:
    task = create(shop, csv_of(30))
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    session.commit()
    other = backend.db.sessions()
    try:
        ctx2 = ctx_for(other, _root(other))
        tasks.stop(ctx2, task.id)
        other.commit()
    finally:
        other.close()
    session.expire_all()
    step = tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=10)
    assert step.converted == 0 and step.status == "stopped"
    with pytest.raises(Conflict):
        tasks.confirm(shop.ctx, task.id, acknowledged=True)


def _root(session: Session) -> User:
    return session.scalar(select(User).where(User.is_root.is_(True)))


def test_scheduled_task_cancel_and_start(shop: Shop, session: Session) -> None:
    later = datetime.now(UTC) + timedelta(hours=1)
    task = create(shop, csv_of(3), send_at=later)
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    assert task.status == "scheduled"
    assert shop.ctx.deferred[-1] == (tasks.RUN_JOB, (task.id, later))
    assert tasks.dispatch_step(shop.ctx, shop.limiter, task.id).converted == 0  # not yet
    tasks.cancel(shop.ctx, task.id)
    assert task.status == "cancelled"
    other = create(shop, csv_of(3), send_at=later)
    tasks.confirm(shop.ctx, other.id, acknowledged=True)
    other.send_at = datetime.now(UTC) - timedelta(seconds=1)  # its time has come
    session.flush()
    assert other.id in tasks.due_tasks(session)
    step = tasks.dispatch_step(shop.ctx, shop.limiter, other.id)
    assert (step.converted, step.status) == (3, "sending")


def test_rate_cap_is_a_shared_token_bucket(shop: Shop, session: Session) -> None:
    task = create(shop, csv_of(30), rate_limit=5)
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    first = tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=100)
    second = tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=100)
    assert first.converted == 5
    assert second.converted <= 1 and second.wait_s > 0  # the bucket is empty for now
    granted, wait = tasks.take_tokens(shop.limiter.conn, "smsops:test:bucket", 100, 250)
    assert granted == 100 and wait > 0


def test_rate_capped_task_keeps_at_most_a_second_of_messages_waiting(
        shop: Shop, session: Session) -> None:
    """Messages of a task that wait in `accepted` (the carrier down, or throttling)
    leave through the drainer, outside the task's bucket. A capped task converts no
    more while a second's worth waits (before: up to a whole batch, 1,000, piled up
    in an outage and went out at once, 200 times a cap of 5 a second)."""
    task = create(shop, csv_of(30), rate_limit=5)
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    assert tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=100).converted == 5
    shop.limiter.conn.delete(f"smsops:task:rate:{task.id}")  # a second later: tokens again
    step = tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=100)
    assert (step.converted, step.status) == (0, "sending") and step.wait_s > 0
    session.execute(update(Message).where(Message.task_id == task.id)
                    .values(status="submitted"))  # the pipeline took them
    assert tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=100).converted == 5


def test_marketing_task_pauses_in_quiet_hours(shop: Shop, session: Session) -> None:
    from app.services import content, reviews

    t = content.create_template(shop.ctx, "mainland", {
        "name": "sale", "sms_type": "marketing", "content": "大促{1}折 回T退订"})
    reviewer = ctx_for(session, make_user(session, "r2@example.com", presets=["SMSReviewer"]))
    reviews.approve(reviewer, "template", t.id, revision=t.revision)
    draft = tasks.Draft(shop.app.sdk_app_id, t.id)
    task, _s = tasks.create_task(shop.ctx, draft, io.BytesIO(b"13800138000,8\n"), "a.csv")
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    night = datetime(2026, 11, 25, 22, 30, tzinfo=UTC) - timedelta(hours=8)  # 22:30 Shanghai
    step = tasks.dispatch_step(shop.ctx, shop.limiter, task.id, now=night)
    assert step.converted == 0 and step.wait_s == pytest.approx(9.5 * 3600)
    day = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # 09:00 Shanghai
    assert tasks.quiet_until(_account(session), day) is None
    resumed = tasks.dispatch_step(shop.ctx, shop.limiter, task.id, now=day)
    assert (resumed.converted, resumed.status) == (1, "sending")  # resumes, never fails


def _marketing(shop: Shop, session: Session, rows: int, **draft: Any) -> SendTask:
    from app.services import content, reviews

    t = content.create_template(shop.ctx, "mainland", {
        "name": f"sale {rows}", "sms_type": "marketing", "content": "大促{1}折 回T退订"})
    reviewer = ctx_for(session, make_user(session, f"r{rows}@example.com",
                                          presets=["SMSReviewer"]))
    reviews.approve(reviewer, "template", t.id, revision=t.revision)
    data = "".join(f"1380013{i:04d},8\n" for i in range(rows)).encode()
    task, _s = tasks.create_task(shop.ctx, tasks.Draft(shop.app.sdk_app_id, t.id, **draft),
                                 io.BytesIO(data), "a.csv")
    return task


def test_confirm_says_when_a_marketing_task_will_finish(shop: Shop, session: Session) -> None:
    """Found from outside: the confirm step only said a task confirmed in quiet hours
    would start at 08:00, never when it would finish (issue #10: "the confirm step
    says when it will finish"). With a rate, the finish counts the nights' pauses."""
    task = _marketing(shop, session, 30, rate_limit=1)  # 30 s of sending
    evening = datetime(2026, 11, 25, 20, 59, 45, tzinfo=UTC) - timedelta(hours=8)
    pre = tasks.preflight(shop.ctx, shop.limiter, task.id, now=evening)
    assert pre.finish_estimate is not None
    assert "2026-11-26 08:00" in pre.finish_estimate, pre.finish_estimate  # 15 s + a night
    night = datetime(2026, 11, 25, 22, 30, tzinfo=UTC) - timedelta(hours=8)
    pre = tasks.preflight(shop.ctx, shop.limiter, task.id, now=night)
    assert "starts at 2026-11-26 08:00" in pre.finish_estimate
    assert "2026-11-26 08:00" in pre.finish_estimate
    uncapped = _marketing(shop, session, 3)
    pre = tasks.preflight(shop.ctx, shop.limiter, uncapped.id, now=night)
    assert "starts at 2026-11-26 08:00" in pre.finish_estimate  # no rate: no finish


def test_progress_shows_a_task_paused_for_quiet_hours(shop: Shop, session: Session) -> None:
    """Found from outside: a marketing task held by quiet hours showed "sending 0%,
    0.0 msg/s" on the web, in the CLI and in Slack, with no word of the pause."""
    task = _marketing(shop, session, 2)
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    night = datetime(2026, 11, 25, 22, 30, tzinfo=UTC) - timedelta(hours=8)
    p = tasks.progress_of(shop.ctx, [task], now=night)[task.id]
    assert p.paused_until == datetime(2026, 11, 26, 0, 0, tzinfo=UTC)  # 08:00 Shanghai
    assert p.as_dict()["paused_until"] == "2026-11-26T00:00:00+00:00"
    day = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)
    assert tasks.progress_of(shop.ctx, [task], now=day)[task.id].paused_until is None
    plain = create(shop, csv_of(2))
    tasks.confirm(shop.ctx, plain.id, acknowledged=True)
    assert tasks.progress_of(shop.ctx, [plain], now=night)[plain.id].paused_until is None


def _account(session: Session) -> Account:
    return session.scalar(select(Account))


def test_policies_per_application(shop: Shop, session: Session) -> None:
    task = create(shop, csv_of(2))
    other_app = f"sms:app/{int(shop.app.sdk_app_id) + 1}"
    reader = ctx_for(session, make_user(session, "read@example.com", policies=[doc(
        ("allow", ["sms:DescribeSendTasks", "sms:DescribeAppList"],
         [f"sms:app/{shop.app.sdk_app_id}"]))]))
    stranger = ctx_for(session, make_user(session, "far@example.com", policies=[doc(
        ("allow", ["sms:*"], [other_app]))]))
    assert tasks.get_task(reader, task.id)[0].id == task.id
    assert [t.id for t, _a in tasks.list_tasks(reader, "mainland")[0]] == [task.id]
    with pytest.raises(PermissionDenied):
        tasks.cancel(reader, task.id)
    with pytest.raises(PermissionDenied):
        tasks.create_task(reader, tasks.Draft(shop.app.sdk_app_id, shop.templates["mainland"]),
                          io.BytesIO(csv_of(1)), "a.csv")
    with pytest.raises(NotFound):
        tasks.get_task(stranger, task.id)
    assert tasks.list_tasks(stranger)[0] == []


def test_a_batch_held_by_a_dead_dispatcher_is_resolved_and_sent_once(
        shop: Shop, session: Session, tmp_path: Path, backend: Backend) -> None:
    """A dispatcher writes its batch as `submitting` under its own attempt, commits,
    then submits. Killed in between: the lease expires, the sweeper finds that the
    batch was never handed over (fenced, back to accepted), the drainer sends each
    message once,
    and the dead attempt can never send them later."""
    from app.db import utcnow
    from app.gateways.simulator import SimulatorGateway
    from app.services import pipeline, sending
    from jobs import runtime
    from jobs import sending as sending_job

    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "SIMULATOR_RECEIPT_DELAY_S": 0,
                      "SIMULATOR_LEDGER": str(tmp_path / "carrier.db")})
    runtime.use(app)
    try:
        task = create(shop, csv_of(12))
        tasks.confirm(shop.ctx, task.id, acknowledged=True)
        claim = sending.Claim("d" * 32, utcnow() + timedelta(seconds=30))
        step = tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=10, claim=claim)
        session.commit()  # ... and the dispatcher dies before submitting
        assert (step.converted, step.accepted, len(step.outbound)) == (10, 10, 10)
        held = dict(session.execute(select(Message.id, Message.status)).all())  # type: ignore[arg-type]
        assert set(held.values()) == {"submitting"}  # nobody else may claim them
        assert sending_job.drain() == 0
        session.execute(update(Message).values(lease_until=utcnow() - timedelta(seconds=1)))
        session.commit()
        assert sending_job.sweep_once(app).requeued == 10
        assert sending_job.drain() == 10
        gateway: SimulatorGateway = app.extensions["gateway"]
        # The dead attempt's straggler (had it only hung): fenced, it sends nothing.
        sending_job.submit_claimed(app, pipeline.PipelineSettings(), "d" * 32, step.outbound)
        assert gateway.ledger.counts() == dict.fromkeys(held, 1)
        # The rest of the task goes out through the same path, then it settles.
        rest = tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=10,
                                   claim=sending.Claim("e" * 32, claim.lease_until))
        session.commit()
        assert rest.converted == 2
        sending_job.submit_claimed(app, pipeline.PipelineSettings(), "e" * 32, rest.outbound)
        sending_job.apply_receipts()
        session.expire_all()
        assert tasks.dispatch_step(shop.ctx, shop.limiter, task.id).status == "sent"
        counts = gateway.ledger.counts()
        assert len(counts) == 12 and set(counts.values()) == {1}
        assert expected.rolled(session) == expected.direct(session)
        assert expected.figures(session) == expected.figures_direct(session)
    finally:
        app.extensions["db"].engine.dispose()


@pytest.mark.parametrize("task_id", [0, -1, 2**31, 99_999_999_999_999, 2**63])
def test_an_id_out_of_range_names_no_task(shop: Shop, session: Session, task_id: int) -> None:
    """Ids are 32-bit in the database: a larger one (a typed or forged URL, the CLI's
    argument) names nothing, as on the API. It was a DataError on PostgreSQL and an
    OverflowError on SQLite: a 500 on /tasks/<id>, a traceback from `smsops task show`."""
    for call in (tasks.get_task, tasks.stop, tasks.cancel, tasks.errors_csv,
                 tasks.receipt_analysis, lambda c, i: tasks.confirm(c, i, acknowledged=True),
                 lambda c, i: tasks.preflight(c, shop.limiter, i)):
        # -1 is also what a URL's too-large id becomes: "No task -1" named none it had.
        with pytest.raises(NotFound, match=f"No task {task_id}" if task_id >= 0
                           else "No such task"):
            call(shop.ctx, task_id)
    with pytest.raises(ValidationError) as exc:
        tasks.create_task(shop.ctx, tasks.Draft(shop.app.sdk_app_id, task_id),
                          io.BytesIO(csv_of(1)), "a.csv")
    assert exc.value.errors == {"template_id": f"No template {task_id}."}
    with pytest.raises(NotFound):
        tasks.standard_file(shop.ctx, task_id, "csv")
    assert tasks.list_tasks(shop.ctx)[1] == 0  # the session is still usable


@pytest.mark.parametrize("change", ["reject_template", "disable_app", "delete_signature"])
def test_confirm_refuses_a_task_that_could_no_longer_send(shop: Shop, session: Session,
                                                          change: str) -> None:
    """Its template rejected since the file was checked (or the application disabled, the
    signature gone): confirming said "Task confirmed.", the task went `sending`, then
    `failed` at its first batch with an alarm to the contacts. Now confirm says why and
    the task stays awaiting confirmation (it can still be cancelled)."""
    from app.services import reviews

    task = create(shop, csv_of(3))
    if change == "reject_template":
        template = content.set_carrier_template_id(shop.ctx, shop.templates["mainland"], "T1")
        assert template.status == "pending"  # back to review...
        reviewer = ctx_for(session, session.scalar(select(User).where(
            User.email == "rev@example.com")))
        reviews.reject(reviewer, "template", template.id, "Not our wording.",
                       revision=template.revision)  # ... and rejected
    elif change == "disable_app":
        apps.set_enabled(shop.ctx, shop.app.sdk_app_id, False)
    else:
        content.delete_signature(shop.ctx, shop.signatures["mainland"])
    shop.ctx.deferred.clear()
    with pytest.raises(Conflict) as exc:
        tasks.confirm(shop.ctx, task.id, acknowledged=True)
    assert exc.value.message.startswith("This task cannot be sent: ")
    assert any(word in exc.value.message for word in ("template", "disabled", "signature"))
    session.refresh(task)
    assert task.status == "awaiting_confirmation" and task.confirmed_at is None
    assert not shop.ctx.deferred  # no dispatcher started
    assert session.scalar(select(func.count()).select_from(Alarm)
                          .where(Alarm.event == "task_failed")) == 0
    assert tasks.cancel(shop.ctx, task.id).status == "cancelled"


def test_a_file_with_no_usable_row_makes_a_failed_task(shop: Shop, session: Session) -> None:
    """Every row has an error: validation failed (SPEC.md §3, issue #10: `failed` with
    the reason), a final status. It stayed `awaiting confirmation` for good, with a
    confirm step that could only answer "no valid recipients"."""
    task = create(shop, b"12345,1234\n13800138000,12\n")
    assert (task.status, task.valid_rows, task.error_rows) == ("failed", 0, 2)
    assert task.failure_reason == ("No row of the file can be sent: every row has an error "
                                   "(see the row errors).")
    assert task.finished_at is not None
    assert [e.row_no for e in tasks.row_errors(shop.ctx, task)] == [1, 2]  # still listed
    with pytest.raises(ValidationError, match="no valid recipients"):
        tasks.confirm(shop.ctx, task.id, acknowledged=True)
    with pytest.raises(Conflict):
        tasks.cancel(shop.ctx, task.id)
    assert session.scalar(select(func.count()).select_from(Alarm)
                          .where(Alarm.event == "task_failed")) == 0  # nothing ran


def test_control_characters_in_the_file_name_or_task_name(shop: Shop, session: Session) -> None:
    """A NUL in an upload's file name (the web's multipart header, the API's) was a
    DataError on PostgreSQL, a 500; the file name is kept without its control
    characters. The task's name is the user's own words: refused with a reason."""
    draft = tasks.Draft(shop.app.sdk_app_id, shop.templates["mainland"])
    task, _s = tasks.create_task(shop.ctx, draft, io.BytesIO(csv_of(1)), "list\x00\x1b.csv")
    session.flush()
    assert (task.file_name, task.name) == ("list.csv", "list.csv")
    with pytest.raises(ValidationError) as exc:
        tasks.create_task(
            shop.ctx, tasks.Draft(shop.app.sdk_app_id, shop.templates["mainland"],
                                  name="Spring\x00"), io.BytesIO(csv_of(1)), "a.csv")
    assert exc.value.errors == {"name": "Use letters, digits and punctuation: no control "
                                        "characters."}
    assert tasks.list_tasks(shop.ctx)[1] == 1  # the session is still usable
    wide, _s = tasks.create_task(shop.ctx, tasks.Draft(
        shop.app.sdk_app_id, shop.templates["mainland"], name="春季\u3000促销\xa0A"),
        io.BytesIO(csv_of(1)), "a.csv")
    assert wide.name == "春季\u3000促销\xa0A"  # spaces of every kind are text


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\u202e", "\u2066"])
def test_line_separators_and_direction_overrides_in_names(shop: Shop, session: Session,
                                                          char: str) -> None:
    """Found from outside: a task's name took U+2028 (a line break in Slack and in a
    CSV export) and U+202E (which turns "gpj.exe" round), which every other one-line
    name refuses; a file name kept them too, and it is the default name."""
    with pytest.raises(ValidationError) as exc:
        tasks.create_task(
            shop.ctx, tasks.Draft(shop.app.sdk_app_id, shop.templates["mainland"],
                                  name=f"Spring{char}FAKE: approved"),
            io.BytesIO(csv_of(1)), "a.csv")
    assert set(exc.value.errors) == {"name"}
    task, _s = tasks.create_task(shop.ctx, tasks.Draft(
        shop.app.sdk_app_id, shop.templates["mainland"]), io.BytesIO(csv_of(1)),
        f"list{char}x.csv")
    session.flush()
    assert (task.file_name, task.name) == ("listx.csv", "listx.csv")


def test_receipt_analysis_follows_the_statistics_definitions(
        shop: Shop, session: Session, runner: Flask) -> None:
    """SPEC.md §7 as the statistics pages count it (app/sms/outcomes.py): without
    receipt means taken by the carrier with no receipt (yet, or within the validity
    period). A message left `unknown` (the carrier may never have had it) is neither:
    the task's analysis counted it as without receipt, so its receipt rate disagreed
    with the statistics page for the same messages."""
    from app.sms import outcomes

    data = ("\n".join([DELIVERED, UNDELIVERED] + [f"1380013{i:04d}" for i in range(4)])
            .replace("\n", ",1234\n") + ",1234\n").encode()
    task = create(shop, data)
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    run_worker(shop, session, runner)
    lost, waiting, expired = session.scalars(
        select(Message.id).where(Message.task_id == task.id, Message.status == "delivered")
        .order_by(Message.id).limit(3)).all()
    for message_id, status in ((lost, "unknown"), (waiting, "submitted"),
                               (expired, "no_receipt")):
        session.execute(update(Message).where(Message.id == message_id)
                        .values(status=status, receipt_at=None))
    rollups.rebuild(session)  # the rows were moved by hand: counted again
    messages = session.execute(select(Message.status, Message.receipt_at.is_not(None))
                               .where(Message.task_id == task.id)).all()
    by_outcome = [outcomes.outcome(s, r) for s, r in messages]
    a = tasks.receipt_analysis(shop.ctx, task.id)
    assert (a.with_receipt, a.without_receipt, a.delivered, a.failed) == (
        sum(o in outcomes.WITH_RECEIPT for o in by_outcome),
        sum(o in outcomes.WITHOUT_RECEIPT for o in by_outcome),
        by_outcome.count(outcomes.DELIVERED), by_outcome.count(outcomes.FAILED))
    assert (a.with_receipt, a.without_receipt) == (3, 2)


def test_preflight_refusals_are_those_the_dispatch_records(shop: Shop, session: Session,
                                                          runner: Flask) -> None:
    """The confirm page's counts of muted and unsubscribed recipients (counted in the
    database, not number by number) match what sending the task then refuses."""
    mainland = shop.signatures["mainland"]
    account = shop.app.account_id
    session.add_all([
        MuteEntry(account_id=account, phone_number="+8613800130000", signature_id=mainland,
                  sms_type=None, consent_confirmed_by="t"),  # muted for every type
        MuteEntry(account_id=account, phone_number="+8613800130001", signature_id=mainland,
                  sms_type="marketing", consent_confirmed_by="t"),  # another type: sent
        MuteEntry(account_id=account, phone_number="+8613800130002", signature_id=mainland,
                  sms_type="verification", consent_confirmed_by="t"),
        Unsubscribe(account_id=account, phone_number="+8613800130002", signature_id=mainland,
                    sms_type="verification"),  # muted and unsubscribed: the mute list says
        Unsubscribe(account_id=account, phone_number="+8613800130003", signature_id=mainland,
                    sms_type="verification"),
        Unsubscribe(account_id=account, phone_number="+8613800130004", signature_id=mainland,
                    sms_type="marketing"),  # another type: sent
        Unsubscribe(account_id=account, phone_number="+8613800130005",
                    signature_id=shop.signatures["international"], sms_type="verification"),
    ])
    task = create(shop, csv_of(8))
    pre = tasks.preflight(shop.ctx, shop.limiter, task.id)
    assert pre.refusals == {"FailedOperation.PhoneNumberInMuteList": 2,
                            "FailedOperation.PhoneNumberUnsubscribed": 1}
    assert _sent_refusals(shop, session, runner, task) == pre.refusals


def _sent_refusals(shop: Shop, session: Session, runner: Flask,
                   task: SendTask) -> dict[str, int]:
    """Confirms and sends the task: what its checks refused, by code."""
    tasks.confirm(shop.ctx, task.id, acknowledged=True)
    run_worker(shop, session, runner)
    return dict(session.execute(select(Message.error_code, func.count()).where(  # type: ignore[arg-type]
        Message.task_id == task.id, Message.status == "rejected")
        .group_by(Message.error_code)).all())


def test_preflight_counts_the_numbers_at_their_frequency_limit(
        shop: Shop, session: Session, runner: Flask) -> None:
    """Found from outside: the confirm step never counted recipients whose numbers had
    already reached a frequency limit (it said they would be refused 'as each message
    leaves'). It counts them now, and the dispatch then refuses exactly those."""
    from app.models import Account
    from app.services import app_config, sending

    app_config.set_frequency(shop.ctx, shop.app.sdk_app_id, {
        "30s": (False, 1), "hour": (True, 1), "day": (True, 3)})
    shop.send(["+8613800130000"], template="mainland", params=["1000"])  # hour reached
    account = session.get(Account, shop.app.account_id)
    day, _local = sending._local_day(account, datetime.now(UTC))
    # Sent three times earlier today, over an hour ago: the day is reached.
    shop.limiter.conn.set(sending.frequency_key("day", shop.app.id, "+8613800130001", day), 3)
    app_config.add_allowlist(shop.ctx, shop.app.sdk_app_id, "+8613800130002")
    shop.limiter.conn.set(sending.frequency_key("day", shop.app.id, "+8613800130002", day), 3)
    session.commit()
    shop.ctx.deferred.clear()  # the API message stays accepted: no worker runs it here
    task = create(shop, csv_of(6))
    pre = tasks.preflight(shop.ctx, shop.limiter, task.id)
    assert pre.refusals == {"LimitExceeded.PhoneNumberOneHourLimit": 1,
                            "LimitExceeded.PhoneNumberDailyLimit": 1}
    assert _sent_refusals(shop, session, runner, task) == pre.refusals


def test_a_large_task_estimates_frequency_refusals_from_a_sample(
        shop: Shop, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.models import Account
    from app.services import app_config, sending

    app_config.set_frequency(shop.ctx, shop.app.sdk_app_id, {
        "30s": (False, 1), "hour": (False, 1), "day": (True, 3)})
    account = session.get(Account, shop.app.account_id)
    day, _local = sending._local_day(account, datetime.now(UTC))
    for i in range(6):
        shop.limiter.conn.set(sending.frequency_key(
            "day", shop.app.id, f"+86138001300{i:02d}", day), 3)
    task = create(shop, csv_of(6))
    monkeypatch.setattr(tasks, "FREQUENCY_SAMPLE", 2)  # 2 of the 6 are looked up
    pre = tasks.preflight(shop.ctx, shop.limiter, task.id)
    assert pre.refusals == {"LimitExceeded.PhoneNumberDailyLimit": 6}
    assert "Frequency limits: estimated from 2 of the 6 recipients." in pre.notes


def test_preflight_counts_the_recipients_credit_would_refuse(shop: Shop, session: Session) -> None:
    """Credit is taken message by message in row order (sending._after_reserve): with
    1 item left, 2 of 3 one-item recipients are refused. The confirm step said 1,
    whatever the shortfall."""
    from app.db import utcnow
    from app.models import CreditPackage

    session.add(CreditPackage(account_id=shop.app.account_id, name="last", size=10,
                              remaining=1, expires_at=utcnow() + timedelta(days=30)))
    task = create(shop, csv_of(3))
    pre = tasks.preflight(shop.ctx, shop.limiter, task.id)
    assert pre.refusals == {"FailedOperation.InsufficientBalanceInSmsPackage": 2}
    assert any("Credit: 1 billed items left" in n for n in pre.notes)


def test_the_configured_batch_is_the_one_the_service_chose(tmp_path: Path) -> None:
    """Round 8 of bench/README.md moved the dispatch batch to 2,000 in the service, but
    the configuration's default (1,000) overrode it in every real worker."""
    from app.config import defaults

    assert defaults(tmp_path)["TASK_BATCH"] == tasks.BATCH


def test_a_paused_marketing_task_looks_again_when_the_zone_changes(
        shop: Shop, session: Session, runner: Flask) -> None:
    """Found from outside: paused until 08:00 in the old zone, a marketing task slept on
    after the account moved to a zone where it was working hours."""
    from app.services import accounts
    from tests.helpers import zone_at_hour
    from tests.tasks.conftest import task_in_quiet_hours

    task_id = task_in_quiet_hours(shop, session)
    run_worker(shop, session, runner)
    assert session.scalar(select(func.count()).select_from(Message)) == 0  # paused
    shop.ctx.deferred.clear()
    accounts.update_settings(shop.ctx, account_type="enterprise", timezone=zone_at_hour(12),
                             intl_daily_quota=100, reply_callback_url="",
                             reply_callback_enabled=False)
    run_worker(shop, session, runner)
    assert session.get(SendTask, task_id).status == "sent"  # type: ignore[union-attr]
    assert session.scalar(select(func.count()).select_from(Message)) == 1
