"""Bulk send tasks (SPEC.md §3, issue #10): a file → recipients → confirm → batches
through the one sending pipeline.

- create: the file is validated as it streams (app/sms/taskfile.py); valid rows are
  inserted in chunks as recipients, unusable ones as row errors. A file-level
  problem leaves nothing behind (a savepoint is rolled back).
- confirm: nothing is sent or reserved before it. Then `scheduled` (a time was
  given) or `sending`.
- dispatch (a job, `jobs.tasks.run`, in parallel lanes): claims a batch of pending
  recipients (SKIP LOCKED) by a conditional update in the same transaction that
  writes their messages through `sending.send_batch` (every SPEC.md §3 check, one
  Redis call per batch). The accepted ones are written already `submitting` under
  the step's own attempt and lease, so the same job submits them right after the
  commit: no claim statement and no job round trip per batch. A message's serial
  number is derived from (task, row) and is unique, so a recipient becomes a
  message at most once, and a killed dispatcher loses nothing: before the commit
  its transaction rolls back and the rows are still pending; after it, the batch
  is a held claim like any other, resolved by the sweeper when its lease expires
  (app/services/pipeline.py: claims, leases and the sweeper make every message go
  out exactly once). The sweeper also wakes a sending task whose dispatcher
  disappeared, and starts scheduled tasks that are due.
- stop: a sending task stops converting recipients; the batch each lane already
  converted still leaves (they are in flight together, so a stop takes effect
  within one batch's time). Cancel: an unconfirmed or scheduled task.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, delete, exists, func, select, update
from sqlalchemy.orm import Session

from app.db import core, utcnow
from app.gateways.base import Outbound
from app.models import (
    Account,
    Application,
    CreditPackage,
    FrequencyAllowlistEntry,
    Message,
    Signature,
    Template,
)
from app.models.content import EFFECTIVE
from app.models.sending import (
    ACCEPTED,
    DELIVERED,
    FAILED,
    NO_RECEIPT,
    REJECTED,
    SUBMITTED,
    SUBMITTING,
    UNKNOWN,
)
from app.models.tasks import (
    AWAITING_CONFIRMATION,
    CANCELLED,
    SCHEDULED,
    SENDING,
    SENT,
    STOPPED,
    TASK_STATUSES,
    SendTask,
    SendTaskError,
    SendTaskFigure,
    SendTaskRecipient,
)
from app.models.tasks import FAILED as TASK_FAILED
from app.services import alarms, apps, audit, bulk, exports, paging, pipeline, sending
from app.services.access import Actor
from app.services.apps import get_app
from app.services.context import Ctx
from app.services.errors import Conflict, NotFound, ValidationError, invalid
from app.services.limits import Limiter
from app.services.values import MAX_ID
from app.sms import numbers, outcomes, quiet, taskfile, templating
from app.sms.params import has_control, is_control
from app.sms.text import INTERNATIONAL, MAINLAND, REGIONS

RUN_JOB = "jobs.tasks.run"
# Brings the Slack progress message up to date at once (a task stopped or cancelled
# while no dispatcher of it runs; receipts after the last message left).
PROGRESS_JOB = "jobs.tasks.progress_now"
STOP_ACTION, CANCEL_ACTION = "ModifyTaskStatusStop", "CancelSendSMSTask"  # policy actions
# Recipients per dispatch transaction: how far a stop lags (about 0.3 s of a lane's
# time here). 2,000 rather than 1,000: each batch also costs a job round trip and
# ~25 statements, and halving those cut ~10% of the CPU per message (bench/README.md
# round 8).
BATCH = 2000
INSERT_CHUNK = 5000
COPY_ROWS = 20_000  # recipients (or row errors) per COPY / executemany on create
PAGE = 50


def held_key(task_id: int) -> str:
    """The hash of a task's recipients whose limits are reserved but whose batch has
    not committed yet (app/services/limits.py Limiter.holding)."""
    return f"smsops:task:held:{task_id}"


def serial_for(task_id: int, row_no: int) -> str:
    """The message serial of a task's row: unique, so a row is sent at most once."""
    return f"t{task_id}r{row_no}"


# --- reading ----------------------------------------------------------------------------


def _task(ctx: Ctx, task_id: int, action: str) -> tuple[SendTask, Application]:
    # (Asking the database for a larger id is an error there, not an empty answer.)
    # A URL's id past MAX_ID reaches here as -1 (its converter): not one to repeat.
    missing = NotFound(f"No task {task_id}." if task_id >= 0 else "No such task.")
    task = ctx.db.get(SendTask, task_id) if 1 <= task_id <= MAX_ID else None
    if task is None or task.account_id != ctx.actor.account_id:
        raise missing
    app = ctx.db.get(Application, task.app_id)
    assert app is not None
    if not ctx.actor.can("DescribeSendTasks", app.sdk_app_id) and not ctx.actor.can(
            action, app.sdk_app_id):
        raise missing  # out-of-scope users learn nothing
    ctx.actor.require(action, app.sdk_app_id)
    return task, app


def get_task(ctx: Ctx, task_id: int, action: str = "DescribeSendTasks"
             ) -> tuple[SendTask, Application]:
    """A task the actor may see, or do `action` to (a stop or cancel asked first)."""
    return _task(ctx, task_id, action)


def list_tasks(ctx: Ctx, region: str | None = None, *, page: int = 1,
               limit: int = PAGE) -> tuple[list[tuple[SendTask, str]], int]:
    """Tasks of the applications the actor may describe, newest first."""
    if region is not None and region not in REGIONS:
        raise invalid("region", "Choose mainland or international.")
    visible = apps.allowed(ctx, "DescribeSendTasks")
    if not visible:
        return [], 0
    q = select(SendTask).where(SendTask.account_id == ctx.actor.account_id,
                               SendTask.app_id.in_(visible))
    if region:
        q = q.where(SendTask.region == region)
    total = ctx.db.scalar(select(func.count()).select_from(q.subquery())) or 0
    rows = ctx.db.scalars(q.order_by(SendTask.id.desc()).limit(limit)
                          .offset((max(page, 1) - 1) * limit)).all()
    return [(t, visible[t.app_id]) for t in rows], total


@dataclass(frozen=True)
class Progress:
    total: int  # valid recipients
    submitted: int  # taken by the carrier (awaiting, delivered, failed by receipt, none)
    delivered: int
    failed: int  # refused by the carrier or by a check
    rejected: int  # of `failed`: refused by a check before leaving
    remaining: int  # not yet sent (pending, accepted, submitting)
    unsent: int  # left unsent for good (a stopped task's pending rows)
    rate: float  # messages per second since the start
    seconds_left: float | None
    awaiting_receipt: int = 0  # with the carrier, no receipt yet (the page keeps asking)
    paused_until: datetime | None = None  # a marketing task held by quiet hours (UTC)

    @property
    def percent(self) -> int:
        done = self.total - self.remaining - self.unsent
        return 0 if self.total == 0 else int(100 * done / self.total)  # 0: nothing to send

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "submitted": self.submitted, "delivered": self.delivered,
                "failed": self.failed, "remaining": self.remaining, "unsent": self.unsent,
                "rate": round(self.rate, 1), "seconds_left": self.seconds_left,
                "percent": self.percent, "paused_until": self.paused_until.isoformat()
                if self.paused_until else None}


def progress(ctx: Ctx, task: SendTask, now: datetime | None = None) -> Progress:
    """Counts from the task's figures and its pending recipients."""
    return progress_of(ctx, [task], now)[task.id]


def _figures(ctx: Ctx, ids: list[int]) -> dict[int, list[tuple[str, str, int]]]:
    """Tasks' messages per (outcome, carrier code), as kept by app/services/rollups.py
    (counting the messages took 0.3-0.46 s at 600,000, and a task page asks every
    second: bench/README.md round 14)."""
    found: dict[int, list[tuple[str, str, int]]] = {i: [] for i in ids}
    for f in ctx.db.scalars(select(SendTaskFigure).where(SendTaskFigure.task_id.in_(ids),
                                                         SendTaskFigure.count != 0)):
        found[f.task_id].append((f.outcome, f.carrier_code, f.count))
    return found


def _whole(ctx: Ctx, task: SendTask) -> bool:
    """Whether the task's figures are all of messages still stored: the figures keep
    purged messages (as the statistics do) and migration 0030 counted what was left,
    but retention purges none younger than its days, and no message is older than
    its task."""
    return task.created_at >= utcnow() - timedelta(days=ctx.settings.message_retention_days)


def rezoned(ctx: Ctx, account_id: int) -> int:
    """The account's time zone changed: its sending marketing tasks look at quiet hours
    again at once, in the new zone (found from outside: one paused until 08:00 in the
    old zone slept on through a new zone's working day). A task that was not paused
    gains a second dispatcher for a while: batches are claimed, never sent twice."""
    woken = ctx.db.scalars(select(SendTask.id).join(
        Template, Template.id == SendTask.template_id).where(
        SendTask.account_id == account_id, SendTask.status == SENDING,
        Template.sms_type == templating.MARKETING)).all()
    for task_id in woken:
        ctx.defer(RUN_JOB, task_id)
    return len(woken)


def _quiet_zones(ctx: Ctx, some: list[SendTask]) -> dict[int, ZoneInfo]:
    """Marketing tasks that started (quiet hours hold them): their accounts' zones."""
    started = [t.id for t in some if t.started_at is not None]
    if not started:
        return {}
    return {i: ZoneInfo(zone) for i, zone in ctx.db.execute(
        select(SendTask.id, Account.timezone).join(Account, Account.id == SendTask.account_id)
        .join(Template, Template.id == SendTask.template_id)
        .where(SendTask.id.in_(started), Template.sms_type == templating.MARKETING))}


def progress_of(ctx: Ctx, some: list[SendTask],
                now: datetime | None = None) -> dict[int, Progress]:
    """The progress of several tasks (a list page, the dashboard) in two queries (a
    third once any of them started: whether quiet hours hold it)."""
    ids = [t.id for t in some]
    by_task: dict[int, Counter[str]] = {i: Counter() for i in ids}
    for task_id, figures in (_figures(ctx, ids) if ids else {}).items():
        for out, _carrier, n in figures:
            by_task[task_id][out] += n
    # Recipients not yet sent. A batch deletes its recipients and adds their messages
    # to the figures in one transaction, so while a task sends they are its valid rows
    # less its figures (counting them walked every row left and every row deleted
    # since the last vacuum: 45-180 ms a look at 600,000). Before it sends, all of
    # them; once sent, none. Other states (stopped, cancelled, failed), and a task
    # older than the retention (its figures may count purged messages), are counted.
    pending = {t.id: 0 if t.status == SENT else t.valid_rows
               for t in some if t.status in (SENT, SCHEDULED, AWAITING_CONFIRMATION)}
    pending |= {t.id: max(t.valid_rows - by_task[t.id].total(), 0)
                for t in some if t.status == SENDING and _whole(ctx, t)}
    counted = [i for i in ids if i not in pending]
    if counted:
        pending |= dict(ctx.db.execute(  # type: ignore[arg-type]
            select(SendTaskRecipient.task_id, func.count())
            .where(SendTaskRecipient.task_id.in_(counted))
            .group_by(SendTaskRecipient.task_id)).all())
    zones = _quiet_zones(ctx, some)
    now = now or utcnow()
    return {t.id: _progress(t, by_task[t.id], pending.get(t.id, 0), now, zones.get(t.id))
            for t in some}


def _progress(task: SendTask, by_outcome: Counter[str], pending: int, now: datetime,
              quiet_zone: ZoneInfo | None) -> Progress:
    """`quiet_zone`: a marketing task's zone. Its rate leaves the nights' pauses out;
    while it sends it is paused in quiet hours, and its time left counts the pauses
    to come."""
    left = by_outcome[outcomes.SUBMITTED] + by_outcome[outcomes.DELIVERED] \
        + by_outcome[outcomes.NO_RECEIPT] + by_outcome[outcomes.UNKNOWN]
    carrier_failed = by_outcome[outcomes.FAILED] + by_outcome[outcomes.CARRIER_REFUSED]
    rejected = by_outcome[outcomes.REFUSED]
    in_flight = by_outcome[outcomes.PENDING]
    unsent = pending if task.status in (STOPPED, CANCELLED, "failed") else 0
    remaining = in_flight + (pending - unsent)
    done = left + carrier_failed + rejected
    rate = 0.0
    if task.started_at is not None:
        end = task.finished_at or now
        elapsed = (end - task.started_at).total_seconds() if quiet_zone is None else \
            quiet.sending_seconds(task.started_at.astimezone(quiet_zone),
                                  end.astimezone(quiet_zone))  # the nights' pauses left out
        rate = done / max(elapsed, 0.001)
    seconds_left = remaining / rate if rate > 0 and remaining else (0.0 if not remaining
                                                                    else None)
    paused_until = None
    if quiet_zone is not None and task.status == SENDING:
        local = now.astimezone(quiet_zone)
        resumes = quiet.until(local)
        paused_until = resumes.astimezone(now.tzinfo) if resumes else None
        if seconds_left:
            seconds_left = (quiet.finish_after(local, seconds_left) - local).total_seconds()
    # Submitted: what the carrier took (a receipt may fail it later); not what it refused.
    return Progress(task.valid_rows, left + by_outcome[outcomes.FAILED],
                    by_outcome[outcomes.DELIVERED],
                    carrier_failed + rejected, rejected, remaining, unsent, rate, seconds_left,
                    by_outcome[outcomes.SUBMITTED], paused_until)


def _row_errors(task: SendTask) -> Select[SendTaskError]:
    return select(SendTaskError).where(SendTaskError.task_id == task.id) \
        .order_by(SendTaskError.row_no, SendTaskError.id)


def row_errors(ctx: Ctx, task: SendTask, limit: int | None = taskfile.SHOWN_ERRORS
               ) -> Iterator[SendTaskError]:
    q = _row_errors(task)
    if limit is not None:
        q = q.limit(limit)
    yield from ctx.db.scalars(q.execution_options(yield_per=5000))


# --- creating -----------------------------------------------------------------------------


@dataclass
class Draft:
    """What a task is made from; the adapters fill it from a form, Slack or the CLI."""

    sdk_app_id: str
    template_id: int
    name: str = ""
    sign_name: str | None = None
    send_at: datetime | None = None  # aware; None: when confirmed
    rate_limit: int | None = None


@dataclass
class Summary:
    rows: int = 0
    valid: int = 0
    errors: int = 0
    billed_items: int = 0
    seconds: float = 0.0
    first_errors: list[taskfile.RowError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "valid": self.valid, "errors": self.errors,
                "billed_items": self.billed_items, "seconds": round(self.seconds, 3)}


def _content(ctx: Ctx, draft: Draft, action: str = "CreateSendTask"
             ) -> tuple[Application, Template, Signature | None]:
    app = get_app(ctx, draft.sdk_app_id, action)
    errors: dict[str, str] = {}
    template = ctx.db.get(Template, draft.template_id) \
        if 1 <= draft.template_id <= MAX_ID else None
    if template is None or template.account_id != app.account_id:
        raise invalid("template_id", f"No template {draft.template_id}.")
    if template.status != EFFECTIVE:
        errors["template_id"] = "Choose an approved (effective) template."
    signature = sending._signature(ctx, template.region, draft.sign_name)
    if signature is None and (draft.sign_name or template.region == MAINLAND):
        errors["sign_name"] = ("No approved signature of this region by that name."
                               if draft.sign_name else
                               "Mainland tasks need an approved signature.")
    if not app.enabled:
        errors["sdk_app_id"] = "This application is disabled: it sends nothing."
    if errors:
        raise ValidationError(errors)
    return app, template, signature


def _spec(ctx: Ctx, template: Template, signature: Signature | None) -> taskfile.Template:
    return taskfile.Template(template.content, template.sms_type, template.region,
                             signature.content if signature else None,
                             ctx.settings.template_param_max_length,
                             template.allow_url_params)


def _checked_draft(draft: Draft) -> None:
    errors: dict[str, str] = {}
    if len(draft.name) > 100:
        errors["name"] = "At most 100 characters."
    elif has_control(draft.name):
        errors["name"] = "Use letters, digits and punctuation: no control characters."
    if draft.rate_limit is not None and not 1 <= draft.rate_limit <= 100_000:
        errors["rate_limit"] = "Give a rate between 1 and 100,000 messages per second."
    if draft.send_at is not None:
        if draft.send_at.tzinfo is None:
            errors["send_at"] = "Give the time with its zone."
        elif draft.send_at > utcnow() + timedelta(days=30):
            errors["send_at"] = "Schedule at most 30 days ahead."
        elif draft.send_at < utcnow() - timedelta(hours=1):
            # (A minute or two late is a form filled in at that time: it goes at once.)
            errors["send_at"] = ("That time has passed: pick a time ahead, or leave it "
                                 "empty to send at once.")
    if errors:
        raise ValidationError(errors)


def validate_file(ctx: Ctx, draft: Draft, f: IO[bytes], filename: str, *,
                  max_bytes: int = taskfile.MAX_BYTES) -> Summary:
    """Validate without creating anything (CLI `task validate`)."""
    _app, template, signature = _content(ctx, draft)
    summary = Summary()
    start = time.perf_counter()
    try:
        for batch in taskfile.scan(f, filename, _spec(ctx, template, signature),
                                   max_bytes=max_bytes):
            _tally(summary, batch)
    except taskfile.FileError as exc:
        raise invalid("file", str(exc)) from None
    summary.seconds = time.perf_counter() - start
    return summary


def _tally(summary: Summary, batch: taskfile.Batch) -> None:
    summary.rows += batch.rows
    summary.valid += batch.valid
    summary.errors += len(batch.errors)
    summary.billed_items += batch.billed
    room = taskfile.SHOWN_ERRORS - len(summary.first_errors)
    if room > 0:
        summary.first_errors += batch.errors[:room]


class _Recipients:
    """A task's recipients and row errors into their tables in bulk
    (app/services/bulk.py) as the file is validated: on PostgreSQL one COPY of the
    recipients stays open, so the server stores them while the file is read on; row
    errors (and SQLite's rows) go a statement per COPY_ROWS."""

    # (COPY, executemany INSERT) per table
    RECIPIENTS = ("COPY send_task_recipient (task_id, row_no, phone_number, iso_code, params, "
                  "fee) FROM STDIN",
                  "INSERT INTO send_task_recipient (task_id, row_no, phone_number, iso_code, "
                  "params, fee) VALUES (?, ?, ?, ?, ?, ?)")
    ERRORS = ('COPY send_task_error (task_id, row_no, "column", reason) FROM STDIN',
              'INSERT INTO send_task_error (task_id, row_no, "column", reason) '
              "VALUES (?, ?, ?, ?)")

    def __init__(self, ctx: Ctx, task_id: int) -> None:
        self.conn = ctx.db.connection()
        self.copy = self.conn.dialect.name == "postgresql"
        self.stream = bulk.CopyIn(self.conn, self.RECIPIENTS[0])
        self.task_id = task_id
        self.rows: list[Any] = []  # SQLite's
        self.errors: list[Any] = []

    def add(self, batch: taskfile.Batch) -> None:
        if batch.valid and self.copy:
            self.stream.write("".join(self._lines(batch)))
        elif batch.valid:
            self.rows += self._tuples(batch)
        for e in batch.errors:
            self.errors.append(f"{self.task_id}\t{e.row}\t{bulk.copy_field(e.column)}\t"
                               f"{bulk.copy_field(e.reason)}\n" if self.copy else
                               (self.task_id, e.row, e.column, e.reason))
        if len(self.rows) >= COPY_ROWS or len(self.errors) >= COPY_ROWS:
            self.flush()

    def flush(self) -> None:
        """Everything so far into the tables (the open COPY ended)."""
        self.stream.close()
        for table, rows in ((self.RECIPIENTS, self.rows), (self.ERRORS, self.errors)):
            if not rows:
                continue
            copy_sql, insert_sql = table
            if self.copy:
                bulk.copy(self.conn, copy_sql, rows)
            else:
                bulk.executemany(self.conn, insert_sql, rows)
            rows.clear()

    def _params(self, batch: taskfile.Batch) -> tuple[Any, ...] | None:
        """Fast rows' parameters as JSON text, formatted in bulk when they need no
        escaping (json.dumps gives the same text: ASCII, no quote, backslash or
        control character, which the fast path's characters never are)."""
        cols = batch.columns
        if cols is None or not all(all(map(str.isascii, c)) for c in cols[2]):
            return None
        first, nationals, values, fees = cols
        params = map(("[" + ", ".join(['"{}"'] * len(values)) + "]").format, *values) \
            if values else itertools.repeat("[]")
        return range(first, first + len(fees)), nationals, params, fees

    def _lines(self, batch: taskfile.Batch) -> list[str]:
        columns = self._params(batch)
        if columns is not None:
            return list(map(f"{self.task_id}\t{{}}\t+86{{}}\t{numbers.MAINLAND}\t{{}}\t{{}}\n"
                            .format, *columns))
        return [f"{self.task_id}\t{r.row}\t{r.phone}\t{r.iso}\t"
                f"{bulk.copy_field(json.dumps(r.params))}\t{r.fee}\n"
                for r in batch.accepted()]

    def _tuples(self, batch: taskfile.Batch) -> list[tuple[Any, ...]]:
        columns = self._params(batch)
        if columns is not None:
            rows, nationals, params, fees = columns
            return list(zip(itertools.repeat(self.task_id), rows,
                            map("+86".__add__, nationals),
                            itertools.repeat(numbers.MAINLAND), params, fees))
        return [(self.task_id, r.row, r.phone, r.iso, json.dumps(r.params), r.fee)
                for r in batch.accepted()]


def create_task(ctx: Ctx, draft: Draft, f: IO[bytes], filename: str, *,
                max_bytes: int = taskfile.MAX_BYTES) -> tuple[SendTask, Summary]:
    """Validate the file while inserting its recipients; the task then awaits
    confirmation (or, when no row is usable, has failed validation). A file-level
    problem raises and leaves nothing behind. Like every
    service, it only flushes: the caller's rollback undoes all of it."""
    _checked_draft(draft)
    app, template, signature = _content(ctx, draft)
    spec = _spec(ctx, template, signature)
    # The upload's own name, only shown: without control characters (PostgreSQL
    # refuses a NUL in text), line separators or direction controls (the one-line
    # rule of every name: they break a Slack line or turn "gpj.exe" round).
    filename = "".join(c for c in filename if not is_control(c)).strip()
    task = SendTask(account_id=app.account_id, app_id=app.id,
                    name=draft.name.strip() or filename[:100] or "Task", region=template.region,
                    signature_id=signature.id if signature else None, template_id=template.id,
                    status="validating", file_name=filename[:255], send_at=draft.send_at,
                    rate_limit=draft.rate_limit, created_by=ctx.actor.user_id,
                    total_rows=0, valid_rows=0, error_rows=0, billed_items=0)
    ctx.db.add(task)
    ctx.db.flush()
    summary = Summary()
    start = time.perf_counter()
    out = _Recipients(ctx, task.id)
    try:
        for batch in taskfile.scan(f, filename, spec, max_bytes=max_bytes):
            _tally(summary, batch)
            out.add(batch)
        out.flush()
    except taskfile.FileError as exc:
        # Nothing of a refused file is kept, even if the caller commits. (Explicit
        # deletes, not a savepoint: pysqlite's SAVEPOINT can be the outermost
        # transaction, and releasing it would commit.)
        out.stream.close()
        for model in (SendTaskRecipient, SendTaskError):
            ctx.db.execute(delete(model).where(model.task_id == task.id))
        ctx.db.delete(task)
        ctx.db.flush()
        raise invalid("file", str(exc)) from None
    except BaseException as exc:
        out.stream.abort(exc)  # the transaction is lost: the caller rolls back
        raise
    summary.seconds = time.perf_counter() - start
    task.total_rows, task.valid_rows = summary.rows, summary.valid
    task.error_rows, task.billed_items = summary.errors, summary.billed_items
    if summary.valid:
        task.status = AWAITING_CONFIRMATION
    else:  # validation failed: nothing to confirm, ever (the row errors stay listed)
        task.status, task.finished_at = TASK_FAILED, utcnow()
        task.failure_reason = ("No row of the file can be sent: every row has an error "
                               "(see the row errors).")
    ctx.db.flush()
    audit.record(ctx, "CreateSendTask", "send_task", task.id, None,
                 {"app": app.sdk_app_id, "template": template.id, "rows": summary.rows,
                  "valid": summary.valid})
    return task, summary


# --- confirming -------------------------------------------------------------------------


@dataclass(frozen=True)
class Preflight:
    valid: int
    skipped: int
    billed_items: int
    cost_cents: int | None  # of the priced recipients; None: none of them is priced
    refusals: dict[str, int]  # error code → recipients the checks would refuse now
    notes: list[str]
    finish_estimate: str | None  # marketing tasks in quiet hours: when it resumes
    unpriced: tuple[str, ...] = ()  # countries (or "mainland") with no unit price

    @property
    def cost_text(self) -> str:
        """The estimate in words: prices are set in cents, so the sum says so."""
        if self.cost_cents is None:
            return "no unit prices set"
        return (f"{self.cost_cents / 100:,.2f} ({self.cost_cents:,} cents at your unit prices)"
                + (f", without {', '.join(self.unpriced)}: no unit price"
                   if self.unpriced else ""))


def _prices(account: Account) -> dict[str, int]:
    return {str(k): int(v) for k, v in (account.unit_prices or {}).items()
            if isinstance(v, int) and not isinstance(v, bool)}


def set_unit_prices(ctx: Ctx, prices: dict[str, int]) -> None:
    """Cents per billed item: "mainland" and ISO country codes."""
    ctx.actor.require("ModifyAccountSettings")
    from app.sms import numbers

    for key, value in prices.items():
        if key != "mainland" and not numbers.is_country_code(key):
            raise invalid("unit_prices", f"{key!r} is neither mainland nor a country code.")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 100_000:
            raise invalid("unit_prices", f"Price for {key}: whole cents from 0 to 100,000.")
    account = ctx.db.get(Account, ctx.actor.account_id)
    assert account is not None
    before = account.unit_prices
    account.unit_prices = dict(prices)
    ctx.db.flush()
    audit.record_changes(ctx, "ModifyAccountSettings", "account", account.id,
                         {"unit_prices": before}, {"unit_prices": dict(prices)})


def update_unit_prices(ctx: Ctx, mainland: str, countries: str) -> dict[str, int]:
    """Unit prices as the settings form gives them: the mainland's cents (empty: none)
    and one "ISO code, cents" per line. Every line's problem is told at once."""
    errors: dict[str, str] = {}
    prices: dict[str, int] = {}
    text = mainland.strip()
    if text:
        if not (text.isascii() and text.isdigit()) or len(text) > 6:
            errors["mainland_price"] = "Whole cents from 0 to 100,000, or empty for none."
        else:
            prices["mainland"] = int(text)
    bad = []
    seen: dict[str, int] = {}  # ISO code → its line
    for n, line in enumerate(countries.splitlines()[:1000], start=1):
        if not line.strip():
            continue
        iso, _sep, cents = (part.strip() for part in line.replace(";", ",").partition(","))
        shown = f"line {n} ({line.strip()[:20]})"
        if not (iso.isascii() and len(iso) == 2) or not (cents.isascii() and cents.isdigit()) \
                or len(cents) > 6:
            bad.append(shown)
            continue
        iso = iso.upper()
        if iso == numbers.MAINLAND:
            bad.append(f"{shown}: the mainland has its own price, above")
        elif iso in seen:
            bad.append(f"{shown}: {iso} is priced on line {seen[iso]} already")
        else:
            seen[iso] = n
            prices[iso] = int(cents)
    if bad:
        errors["country_prices"] = ("Write one \"ISO code, cents\" a line, such as US, 5: "
                                    + "; ".join(bad[:5]) + (" …" if len(bad) > 5 else ""))
    if errors:
        raise ValidationError(errors)
    try:
        set_unit_prices(ctx, prices)
    except ValidationError as exc:
        raise ValidationError({"country_prices": next(iter(exc.errors.values()))}) from None
    return prices


def _beyond(task: SendTask, items: int) -> int:
    """About how many recipients a budget of `items` billed items leaves out (the
    checks take them in row order until it runs out)."""
    short = task.billed_items - max(items, 0)
    return max(0, math.ceil(short / max(task.billed_items, 1) * task.valid_rows))


def preflight(ctx: Ctx, limiter: Limiter, task_id: int,
              now: datetime | None = None) -> Preflight:
    """What confirming would do, computed without reserving anything."""
    now = now or utcnow()
    task, app = _task(ctx, task_id, "CreateSendTask")
    account = ctx.db.get(Account, app.account_id)
    assert account is not None
    prices = _prices(account)
    by_country = ctx.db.execute(
        select(SendTaskRecipient.iso_code, func.sum(SendTaskRecipient.fee), func.count())
        .where(SendTaskRecipient.task_id == task.id).group_by(SendTaskRecipient.iso_code)).all()
    # A country without a price leaves its recipients out of the estimate, and says so
    # (found from outside: one unpriced country hid the whole estimate).
    cost: int | None = None
    unpriced: set[str] = set()
    for iso, items, _n in by_country:
        key = "mainland" if task.region == MAINLAND else iso
        price = prices.get(key)
        if price is None:
            unpriced.add(key or "unknown")
        else:
            cost = (cost or 0) + price * int(items or 0)
    refusals: dict[str, int] = {}
    notes: list[str] = []

    def add(code: str, n: int) -> None:
        if n:
            refusals[code] = refusals.get(code, 0) + n

    if not app.enabled:
        add("FailedOperation.AppDisabled", task.valid_rows)
    template = ctx.db.get(Template, task.template_id)
    if template is None or template.status != EFFECTIVE:
        add("FailedOperation.TemplateNotEffective", task.valid_rows)
    signature = ctx.db.get(Signature, task.signature_id) if task.signature_id else None
    if signature is not None and template is not None:
        # Counted in the database (1M recipients: one pass, not a query a thousand).
        rules = (app.account_id, signature.id, template.sms_type)
        muted = SendTaskRecipient.phone_number.in_(sending.muted_numbers(*rules))
        unsubscribed = SendTaskRecipient.phone_number.in_(sending.unsubscribed_numbers(*rules))
        n_muted, n_unsubscribed = ctx.db.execute(
            select(func.count().filter(muted), func.count().filter(~muted & unsubscribed))
            .where(SendTaskRecipient.task_id == task.id)).one()
        add("FailedOperation.PhoneNumberInMuteList", n_muted)
        add("FailedOperation.PhoneNumberUnsubscribed", n_unsubscribed)
    allowed = {c.iso_code for c in app.countries}
    if task.region == INTERNATIONAL and allowed:
        add("FailedOperation.CountryNotAllowed",
            sum(n for iso, _items, n in by_country if iso not in allowed))
    # Daily limit headroom and credit, against today's counters (read, not reserved).
    day, _local = sending._local_day(account, now)
    limit = app.mainland_daily_limit if task.region == MAINLAND else app.intl_daily_limit
    if limit is not None:
        used = limiter.used(sending.app_day_key(app.id, task.region, day))
        if task.billed_items > limit - used:
            notes.append(f"Daily limit: {max(limit - used, 0):,} billed items left today of "
                         f"{limit:,}; the task needs {task.billed_items:,}. The rest will be "
                         "refused (LimitExceeded.AppDailyLimit).")
            add("LimitExceeded.AppDailyLimit", _beyond(task, max(limit - used, 0)))
    if task.region == INTERNATIONAL:
        used = limiter.used(sending.account_day_key(account.id, day))
        left = account.intl_daily_quota - used
        if task.billed_items > left:
            notes.append(f"Account international quota: {max(left, 0):,} billed items left "
                         f"today; the task needs {task.billed_items:,}.")
    if task.region == MAINLAND:
        packages = ctx.db.scalars(select(CreditPackage).where(
            CreditPackage.account_id == account.id, CreditPackage.expires_at > now)).all()
        any_packages = ctx.db.scalar(select(func.count()).select_from(CreditPackage).where(
            CreditPackage.account_id == account.id)) or 0
        balance = sum(p.remaining for p in packages)
        if any_packages and task.billed_items > balance:
            notes.append(f"Credit: {balance:,} billed items left in packages; the task needs "
                         f"{task.billed_items:,}.")
            add("FailedOperation.InsufficientBalanceInSmsPackage", _beyond(task, balance))
    for code, n in _frequency_refusals(ctx, limiter, task, app, account, day, now, notes):
        add(code, n)
    marketing = template is not None and template.sms_type == templating.MARKETING
    if marketing:
        notes.append("Marketing: sending pauses at 21:00 and resumes at 08:00 "
                     f"({account.timezone}).")
    start = max(now, task.send_at) if task.send_at else now
    finish = _finish_estimate(task, start.astimezone(ZoneInfo(account.timezone)), marketing)
    return Preflight(task.valid_rows, task.error_rows, task.billed_items, cost, refusals,
                     notes, finish, tuple(sorted(unpriced)))


# Recipients whose numbers the confirm step looks up in the frequency counters; a
# larger task is estimated from an even sample of this many (two reads a number).
FREQUENCY_SAMPLE = 20_000


def _frequency_refusals(ctx: Ctx, limiter: Limiter, task: SendTask, app: Application,
                        account: Account, day: str, now: datetime,
                        notes: list[str]) -> list[tuple[str, int]]:
    """The recipients whose numbers have already reached their hour or day limit (as
    the checks see them now; the first rule that refuses names the refusal), counted
    from the counters the sends keep in Redis. The 30-second rule is per text, and
    only bites within 30 s: it is left to the sending."""
    freq = sending.frequency_limits(app, account.account_type)
    rules = [(rule, span, code, limit) for rule, span, code in sending.FREQUENCY_RULES
             if rule != "30s" and (limit := freq[rule]) is not None]
    if freq["30s"] is not None:
        notes.append("The 30-second frequency rule is checked as each message leaves.")
    if not rules:
        return []
    listed = select(FrequencyAllowlistEntry.phone_number).where(
        FrequencyAllowlistEntry.app_id == app.id)
    pick = select(SendTaskRecipient.phone_number).where(
        SendTaskRecipient.task_id == task.id, SendTaskRecipient.phone_number.not_in(listed))
    stride = -(-task.valid_rows // FREQUENCY_SAMPLE)
    if stride > 1:  # ids are consecutive within a task: every stride-th, evenly
        pick = pick.where(SendTaskRecipient.id % stride == 0)
    numbers = list(ctx.db.scalars(pick))
    keys = [(sending.frequency_key(rule, app.id, number, day if rule == "day" else ""),
             0 if rule == "day" else span) for number in numbers for rule, span, _c, _l in rules]
    counts = limiter.counted(keys, int(now.timestamp() * 1000))
    refused: dict[str, int] = {}
    for i in range(len(numbers)):
        for n, (_rule, _span, code, limit) in enumerate(rules):
            if counts[i * len(rules) + n] >= limit:
                refused[code] = refused.get(code, 0) + 1
                break
    if stride > 1 and refused:
        scale = task.valid_rows / max(len(numbers), 1)
        refused = {code: round(n * scale) for code, n in refused.items()}
        notes.append(f"Frequency limits: estimated from {len(numbers):,} of the "
                     f"{task.valid_rows:,} recipients.")
    return list(refused.items())


def _finish_estimate(task: SendTask, start: datetime, marketing: bool) -> str | None:
    """When the task would start and, at its rate cap, finish (local time, the nights'
    pauses counted for marketing). Without a cap the carrier sets the pace: no finish."""
    zone, shown = str(start.tzinfo), "%Y-%m-%d %H:%M"
    begins = quiet.resume_at(start) if marketing else start
    said = []
    if begins != start:
        said.append(f"It is quiet hours then (21:00 to 08:00, {zone}): sending starts at "
                    f"{begins:{shown}}.")
    if task.rate_limit:
        seconds = task.valid_rows / task.rate_limit
        ends = quiet.finish_after(begins, seconds) if marketing else \
            begins + timedelta(seconds=seconds)
        nights = " counting the pauses from 21:00 to 08:00" if ends.astimezone(UTC) - \
            begins.astimezone(UTC) > timedelta(seconds=seconds + 1) else ""
        said.append(f"At {task.rate_limit:,} messages/s it finishes about {ends:{shown}} "
                    f"({zone}){nights}.")
    elif marketing:
        said.append("Without a rate cap it goes as fast as the carrier takes it; what is "
                    "left at 21:00 waits until 08:00.")
    return " ".join(said) or None


def confirm(ctx: Ctx, task_id: int, *, acknowledged: bool) -> SendTask:
    task, app = _task(ctx, task_id, "CreateSendTask")
    if task.valid_rows == 0:
        raise invalid("", "This task has no valid recipients to send to.")
    if task.status != AWAITING_CONFIRMATION:
        raise Conflict(f"Task {task.id} is {task.status.replace('_', ' ')}: only a task "
                       "awaiting confirmation can be confirmed.")
    # Changed since the file was checked (a template rejected, the application
    # disabled): confirming would only start a task that fails at its first batch.
    problem = _cannot_run(app, ctx.db.get(Template, task.template_id),
                          ctx.db.get(Signature, task.signature_id) if task.signature_id
                          else None, task.signature_id)
    if problem is not None:
        raise Conflict(f"This task cannot be sent: {problem[0].lower()}{problem[1:]} "
                       "Cancel it and create it again once that is put right.")
    if not acknowledged:
        raise invalid("acknowledge", "Tick the box to confirm you want these messages sent.")
    now = utcnow()
    scheduled = task.send_at is not None and task.send_at > now
    new = SCHEDULED if scheduled else SENDING
    done = ctx.db.execute(update(SendTask).where(
        SendTask.id == task.id, SendTask.status == AWAITING_CONFIRMATION)
        .values(status=new, confirmed_at=now, started_at=None if scheduled else now)
        .execution_options(synchronize_session=False))
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict(f"Task {task.id} changed meanwhile; reload it.")
    ctx.db.refresh(task)
    if scheduled:
        assert task.send_at is not None
        ctx.defer(RUN_JOB, task.id, task.send_at)  # RQ's scheduler; the sweeper backs it up
    else:
        ctx.defer(RUN_JOB, task.id)
    audit.record(ctx, "ConfirmSendTask", "send_task", task.id, {"status": AWAITING_CONFIRMATION},
                 {"status": new})
    return task


STOPPABLE = (SENDING,)
CANCELLABLE = (AWAITING_CONFIRMATION, SCHEDULED)


def _not_stoppable(task: SendTask) -> Conflict:
    return Conflict(f"Task {task.id} is {task.status.replace('_', ' ')}: only a sending "
                    "task can be stopped" + (" (cancel a scheduled one)."
                                              if task.status == SCHEDULED else "."))


def _not_cancellable(task: SendTask) -> Conflict:
    return Conflict(f"Task {task.id} is {task.status.replace('_', ' ')}: only a scheduled "
                    "or unconfirmed task can be cancelled" + (" (stop a sending one)."
                                                              if task.status == SENDING
                                                              else "."))


def can_stop(ctx: Ctx, task_id: int) -> SendTask:
    """The task, if the actor may stop it and it is sending now (asked before a
    confirmation is offered; `stop` decides at the click)."""
    task, _app = _task(ctx, task_id, STOP_ACTION)
    if task.status not in STOPPABLE:
        raise _not_stoppable(task)
    return task


def can_cancel(ctx: Ctx, task_id: int) -> SendTask:
    """As `can_stop`, for a cancel."""
    task, _app = _task(ctx, task_id, CANCEL_ACTION)
    if task.status not in CANCELLABLE:
        raise _not_cancellable(task)
    return task


def stop(ctx: Ctx, task_id: int) -> SendTask:
    task, app = _task(ctx, task_id, STOP_ACTION)
    done = ctx.db.execute(update(SendTask).where(SendTask.id == task.id,
                                                 SendTask.status.in_(STOPPABLE))
                          .values(status=STOPPED, finished_at=utcnow())
                          .execution_options(synchronize_session=False))
    ctx.db.refresh(task)
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise _not_stoppable(task)
    audit.record(ctx, STOP_ACTION, "send_task", task.id, {"status": SENDING},
                 {"status": STOPPED})
    ctx.defer(PROGRESS_JOB, task.id)
    # Once by nature (the conditional update above): no period to guard in Redis.
    alarms.raise_task_event(ctx, None, app, task.id, STOPPED, f"Stopped by {ctx.actor.label}.")
    return task


def cancel(ctx: Ctx, task_id: int) -> SendTask:
    task, _app = _task(ctx, task_id, CANCEL_ACTION)
    was = task.status
    done = ctx.db.execute(update(SendTask).where(
        SendTask.id == task.id, SendTask.status.in_(CANCELLABLE))
        .values(status=CANCELLED, finished_at=utcnow())
        .execution_options(synchronize_session=False))
    ctx.db.refresh(task)
    if done.rowcount != 1:  # type: ignore[attr-defined]
        raise _not_cancellable(task)
    audit.record(ctx, CANCEL_ACTION, "send_task", task.id, {"status": was},
                 {"status": CANCELLED})
    ctx.defer(PROGRESS_JOB, task.id)
    return task


# --- dispatching (called by jobs/tasks.py in its own unit of work) ------------------------


def system_actor(task: SendTask) -> Actor:
    """The dispatcher acts for the account: the policy was checked at confirm."""
    return Actor(account_id=task.account_id, label=f"task:{task.id}", is_root=True)


@dataclass(frozen=True)
class Step:
    converted: int
    accepted: int
    status: str  # the task's status after the step
    wait_s: float = 0.0  # > 0: come back later (rate cap or quiet hours)
    # With a claim: the accepted messages, already `submitting` under it, for the
    # caller to submit once this step commits (app/gateways/base.py Outbound).
    outbound: list[Any] = field(default_factory=list)
    # The serial numbers of the recipients converted: once the step commits, their
    # reservations need no longer be remembered (Limiter.forget, held_key).
    serials: list[str] = field(default_factory=list)


def quiet_until(account: Account, now: datetime) -> datetime | None:
    """The end of quiet hours when `now` is inside them (account's zone), else None."""
    return quiet.until(now.astimezone(ZoneInfo(account.timezone)))


def dispatch_step(ctx: Ctx, limiter: Limiter, task_id: int, *, batch: int = BATCH,
                  now: datetime | None = None, claim: sending.Claim | None = None) -> Step:
    """Turn up to one batch of a sending task's pending recipients into messages,
    in the caller's transaction; settles the task when nothing is left. With
    `claim`, the accepted ones are held for the caller to submit (Step.outbound)
    instead of waking the drainer."""
    task = ctx.db.get(SendTask, task_id)
    if task is None:
        return Step(0, 0, "missing")
    if task.status == SCHEDULED and task.send_at is not None and task.send_at <= utcnow():
        # Its time has come (RQ's scheduler or the sweeper): start it, once.
        ctx.db.execute(update(SendTask).where(SendTask.id == task.id,
                                              SendTask.status == SCHEDULED)
                       .values(status=SENDING, started_at=utcnow())
                       .execution_options(synchronize_session=False))
        ctx.db.refresh(task)
    if task.status != SENDING:
        return Step(0, 0, task.status)
    app = ctx.db.get(Application, task.app_id)
    account = ctx.db.get(Account, task.account_id)
    template = ctx.db.get(Template, task.template_id)
    assert app is not None and account is not None
    signature = ctx.db.get(Signature, task.signature_id) if task.signature_id else None
    problem = _cannot_run(app, template, signature, task.signature_id)
    if problem is not None:
        _fail(ctx, limiter, task, app, problem)
        return Step(0, 0, task.status)
    if template is not None and template.sms_type == templating.MARKETING:
        resume = quiet_until(account, now or utcnow())
        if resume is not None:
            return Step(0, 0, SENDING, (resume - (now or utcnow())).total_seconds())
    # Back-pressure: at most one batch converted ahead of the pipeline, so a stop
    # leaves at most that batch to go out. With a rate cap, at most one second's worth:
    # messages waiting in `accepted` (the carrier was down, or throttled them) go out
    # through the drainer, outside the bucket, so a backlog of them would be a burst
    # far over the cap when the carrier comes back.
    most = min(batch, task.rate_limit) if task.rate_limit else batch
    ahead = ctx.db.scalar(select(func.count()).select_from(
        select(Message.id).where(Message.task_id == task.id, Message.status == ACCEPTED)
        .limit(most).subquery())) or 0
    if ahead >= most:
        return Step(0, 0, SENDING, 0.05)
    want = batch
    wait = 0.0
    if task.rate_limit:
        granted, wait = take_tokens(limiter.conn, f"smsops:task:rate:{task.id}",
                                    task.rate_limit, batch)
        if granted == 0:
            return Step(0, 0, SENDING, wait)
        want = granted
    # Taken by deleting them: an UPDATE to a "dispatched" state left a dead row and
    # three index entries behind for every recipient (bench/README.md round 14).
    pick = select(SendTaskRecipient.id).where(SendTaskRecipient.task_id == task.id) \
        .order_by(SendTaskRecipient.row_no).limit(want)
    claimed = core(ctx.db).execute(
        delete(SendTaskRecipient)
        .where(*pipeline.picked(ctx.db, SendTaskRecipient.id, pick))
        .returning(SendTaskRecipient.row_no, SendTaskRecipient.phone_number,
                   SendTaskRecipient.iso_code, SendTaskRecipient.params)
        .execution_options(synchronize_session=False)).all()
    if not claimed:
        if ctx.db.scalar(select(exists().where(SendTaskRecipient.task_id == task.id))):
            # Pending rows this pick skipped: another lane is converting them, not yet
            # committed. Settling now would leave them behind if that lane died.
            return Step(0, 0, SENDING, 0.05)
        _settle(ctx, task)
        return Step(0, 0, task.status)
    items = [sending.BatchItem(serial_for(task.id, r[0]), r[1], r[2], list(r[3]))
             for r in sorted(claimed, key=lambda r: r[0])]
    # A batch is dispatched again whenever its transaction died before the commit:
    # the reservations of that attempt are held for the same serial numbers, not
    # made twice (nor refused by the first attempt's own).
    done = sending.send_batch(ctx, limiter.holding(held_key(task.id)), app, template,
                              signature, task.region, items,
                              request_id=f"task-{task.id}-{uuid.uuid4().hex[:8]}",
                              task_id=task.id, claim=claim)
    outbound = [Outbound(m.id, m.phone_number, m.content, m.region,
                         template_ref=template.carrier_template_id if template else None,
                         params=tuple(m.template_params or ()),
                         sign_name=signature.content if signature else None,
                         attempt_id=claim.attempt) for m in done.claimed] if claim else []
    return Step(len(items), done.accepted, SENDING, wait, outbound,
                [i.serial_no for i in items])


def _cannot_run(app: Application, template: Template | None, signature: Signature | None,
                signature_id: int | None) -> str | None:
    """Why a confirmed task can no longer send at all (changed since it was confirmed)."""
    if not app.enabled:
        return "The application was disabled."
    if template is None or template.status != EFFECTIVE:
        return "The template was deleted or is no longer approved."
    if signature_id is not None and (signature is None or not signature.usable):
        return "The signature was deleted or can no longer be used."
    return None


def _fail(ctx: Ctx, limiter: Limiter, task: SendTask, app: Application, reason: str) -> None:
    """The task could not run: failed with its reason (the rest stays unsent), once,
    and the application's alarm contacts hear it."""
    done = ctx.db.execute(update(SendTask).where(SendTask.id == task.id,
                                                 SendTask.status == SENDING)
                          .values(status=TASK_FAILED, failure_reason=reason,
                                  finished_at=utcnow())
                          .execution_options(synchronize_session=False))
    ctx.db.refresh(task)
    if done.rowcount == 1:  # type: ignore[attr-defined]
        alarms.raise_task_event(ctx, limiter.conn, app, task.id, TASK_FAILED, reason)


def _settle(ctx: Ctx, task: SendTask) -> None:
    """Every recipient converted: `sent` once no message of it is still on its way."""
    in_flight = ctx.db.scalar(select(func.count()).select_from(Message).where(
        Message.task_id == task.id, Message.status.in_((ACCEPTED, SUBMITTING)))) or 0
    if in_flight == 0:
        ctx.db.execute(update(SendTask).where(SendTask.id == task.id,
                                              SendTask.status == SENDING)
                       .values(status=SENT, finished_at=utcnow())
                       .execution_options(synchronize_session=False))
        ctx.db.refresh(task)


def figures_moved(db: Session, message_ids: list[int]) -> dict[int, bool]:
    """The tasks these messages (just settled by receipts) belong to, each with whether
    its figures are now final: the task no longer sends and none of its messages is
    still waiting for the carrier or a receipt."""
    if not message_ids:
        return {}
    found = {t for t in db.scalars(select(Message.task_id).where(
        pipeline.among(db, Message.id, message_ids), Message.task_id.is_not(None)))
        if t is not None}
    out: dict[int, bool] = {}
    for task_id in found:
        status = db.scalar(select(SendTask.status).where(SendTask.id == task_id))
        out[task_id] = status not in (SENDING, SCHEDULED) and not db.scalar(select(exists().where(
            Message.task_id == task_id, Message.status.in_((ACCEPTED, SUBMITTING, SUBMITTED)))))
    return out


def due_tasks(db: Session) -> list[int]:
    """For the sweeper: sending tasks (their dispatcher may be gone) and scheduled
    tasks whose time has come."""
    return list(db.scalars(select(SendTask.id).where(
        (SendTask.status == SENDING)
        | ((SendTask.status == SCHEDULED) & (SendTask.send_at <= utcnow())))))


# A token bucket per task in Redis, shared by every worker: `rate` tokens a second,
# at most one second's worth banked. Returns (granted, seconds until the next token).
RATE_SCRIPT = """
local rate = tonumber(ARGV[1]); local want = tonumber(ARGV[2])
local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local b = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(b[1]) or rate; local at = tonumber(b[2]) or now
tokens = math.min(rate, tokens + (now - at) * rate)
local granted = math.min(want, math.floor(tokens))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 60)
local wait = 0
if granted < want then wait = (math.min(want, rate) - tokens) / rate end
return {granted, tostring(wait)}
"""


def take_tokens(conn: Any, key: str, rate: int, want: int) -> tuple[int, float]:
    granted, wait = conn.eval(RATE_SCRIPT, 1, key, rate, want)
    return int(granted), float(wait)


STATUS_LABELS = {s: s.replace("_", " ") for s in TASK_STATUSES}


# --- files and details ------------------------------------------------------------------


def row_errors_page(ctx: Ctx, task_id: int, page: int,
                    page_size: int) -> tuple[list[SendTaskError], int]:
    """Every row the task's file could not use, in row order, a page at a time."""
    task, _app = get_task(ctx, task_id)
    return paging.page_of(ctx.db, _row_errors(task), page, page_size)


def errors_csv(ctx: Ctx, task_id: int) -> IO[bytes]:
    task, _app = get_task(ctx, task_id)
    return exports.spooled_csv(["row", "column", "reason"],
                        ([e.row_no, e.column, e.reason] for e in row_errors(ctx, task, None)))


# "pending" and "unsent" are the rows no message was made for yet: to come, or (a task
# stopped, cancelled or failed) never; either name lists them.
RECORD_STATUSES = ("pending", "unsent", ACCEPTED, SUBMITTING, SUBMITTED, DELIVERED, FAILED,
                   REJECTED, UNKNOWN, NO_RECEIPT)
_ROWS_LEFT = ("pending", "unsent")


@dataclass(frozen=True)
class Record:
    row_no: int | None
    phone_number: str
    status: str
    content: str
    fee: int
    error_code: str | None
    carrier_code: str | None
    submitted_at: datetime | None
    receipt_at: datetime | None


def _record_query(ctx: Ctx, task: SendTask, status: str, number: str) -> Any:
    if status and status not in RECORD_STATUSES:
        raise invalid("status", f"Choose a status: {', '.join(RECORD_STATUSES)}.")
    number = number.strip()
    if number:
        from app.sms import numbers

        with contextlib.suppress(numbers.NumberError):
            number = numbers.parse_any(number)
    if status in _ROWS_LEFT:
        q = select(SendTaskRecipient).where(SendTaskRecipient.task_id == task.id)
        if number:
            q = q.where(SendTaskRecipient.phone_number == number)
        return q.order_by(SendTaskRecipient.row_no)
    m = select(Message).where(Message.task_id == task.id)
    if status:
        m = m.where(Message.status == status)
    if number:
        m = m.where(Message.phone_number == number)
    return m.order_by(Message.id)


def _record(obj: Any, task: SendTask) -> Record:
    if isinstance(obj, SendTaskRecipient):
        # A row the task will never send (stopped, cancelled, failed) is unsent, not
        # pending: nothing is to come for it.
        left = "unsent" if task.status in (STOPPED, CANCELLED, TASK_FAILED) else "pending"
        return Record(obj.row_no, obj.phone_number, left, "", 0, None, None, None, None)
    row = int(obj.serial_no.rsplit("r", 1)[1]) if obj.serial_no.startswith("t") else None
    return Record(row, obj.phone_number, obj.status, obj.content, outcomes.billed_items(obj),
                  obj.error_code, obj.carrier_code, obj.submitted_at, obj.receipt_at)


def records(ctx: Ctx, task_id: int, *, status: str = "", number: str = "",
            page: int = 1, limit: int = PAGE) -> tuple[SendTask, list[Record], int]:
    """A task's per-recipient records, paged; `pending` (or `unsent`) lists the rows no
    message was made for; any status: the messages, then those rows (found from
    outside: "any" left out a stopped task's unsent recipients, page and CSV alike)."""
    task, _app = get_task(ctx, task_id)
    q = _record_query(ctx, task, status, number)
    counted = _OUTCOMES_OF.get(status) if not number.strip() and _whole(ctx, task) else None
    if counted is not None:  # from the task's figures, not a count of its messages
        total = sum(n for out, _c, n in _figures(ctx, [task.id])[task.id] if out in counted)
    else:
        total = ctx.db.scalar(select(func.count()).select_from(q.subquery())) or 0
    skip = (max(page, 1) - 1) * limit
    rows: list[Any] = list(ctx.db.scalars(q.limit(limit).offset(skip))) if skip < total else []
    if not status:
        left = _record_query(ctx, task, "pending", number)
        if len(rows) < limit:
            rows += ctx.db.scalars(left.limit(limit - len(rows))
                                   .offset(max(skip - total, 0))).all()
        total += ctx.db.scalar(select(func.count()).select_from(left.subquery())) or 0
    return task, [_record(r, task) for r in rows], total


# A record status (a message status) → the outcomes that are exactly its messages;
# `accepted` and `submitting` share one, and `pending` rows are no messages.
_OUTCOMES_OF = {"": set(outcomes.OUTCOMES), SUBMITTED: {outcomes.SUBMITTED},
                DELIVERED: {outcomes.DELIVERED}, FAILED: {outcomes.FAILED,
                                                          outcomes.CARRIER_REFUSED},
                REJECTED: {outcomes.REFUSED}, NO_RECEIPT: {outcomes.NO_RECEIPT},
                UNKNOWN: {outcomes.UNKNOWN}}


def records_csv(ctx: Ctx, task_id: int, *, status: str = "", number: str = "") -> IO[bytes]:
    task, app = get_task(ctx, task_id)
    account = ctx.db.get(Account, app.account_id)
    zone = ZoneInfo(account.timezone if account is not None else "UTC")

    def at(moment: datetime | None) -> str:  # in the account's zone, as the pages show
        return moment.astimezone(zone).isoformat() if moment else ""

    queries = [_record_query(ctx, task, status, number)]
    if not status:  # the messages, then the rows none was made for
        queries.append(_record_query(ctx, task, "pending", number))
    found = itertools.chain.from_iterable(
        ctx.db.scalars(q.execution_options(yield_per=5000)) for q in queries)
    return exports.spooled_csv(
        ["row", "phone_number", "status", "content", "billed_items", "error_code",
         "carrier_code", "submitted_at", "receipt_at"],
        ([r.row_no, r.phone_number, r.status, r.content, r.fee, r.error_code or "",
          r.carrier_code or "", at(r.submitted_at), at(r.receipt_at)]
         for r in (_record(obj, task) for obj in found)))


@dataclass(frozen=True)
class ReceiptAnalysis:
    """SPEC.md §7 definitions, over the task's messages."""

    with_receipt: int
    without_receipt: int
    delivered: int
    failed: int
    reasons: list[tuple[str, int]]  # carrier code → count, most first

    @property
    def receipt_rate(self) -> float | None:
        seen = self.with_receipt + self.without_receipt
        return self.with_receipt / seen if seen else None

    @property
    def delivery_rate(self) -> float | None:
        return self.delivered / self.with_receipt if self.with_receipt else None


def receipt_analysis(ctx: Ctx, task_id: int) -> ReceiptAnalysis:
    task, _app = get_task(ctx, task_id)
    with_r = without = delivered = failed = 0
    reasons: dict[str, int] = {}
    # The statistics pages' buckets (app/sms/outcomes.py), so both agree: a carrier's
    # refusal at submission expects no receipt, and `unknown` may never have left.
    for out, carrier, n in _figures(ctx, [task.id])[task.id]:
        if out in outcomes.WITH_RECEIPT:
            with_r += n
            if out == outcomes.DELIVERED:
                delivered += n
            else:
                failed += n
                reasons[carrier or "?"] = reasons.get(carrier or "?", 0) + n
        elif out in outcomes.WITHOUT_RECEIPT:
            without += n
    return ReceiptAnalysis(with_r, without, delivered, failed,
                           sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))


def _may_choose_content(ctx: Ctx, action: str) -> None:
    """Templates and signatures are the account's, not an application's: the form of a
    task lists them to whoever may list them on an application they may create tasks
    in, not only on every application (found from outside: allowed both on one
    application, a user got 403 for the form and the standard file). A deny still
    wins: it takes the action away on the applications it names."""
    if ctx.actor.can(action):
        return
    creatable = apps.allowed(ctx, "CreateSendTask").values()
    if not any(ctx.actor.can(action, sdk_app_id) for sdk_app_id in creatable):
        ctx.actor.require(action)


def content_choices(ctx: Ctx, region: str) -> tuple[list[Template], list[Signature]]:
    """The effective templates and usable signatures of a region, for a new task."""
    if region not in REGIONS:
        raise invalid("region", "Choose mainland or international.")
    _may_choose_content(ctx, "DescribeSmsTemplateList")
    _may_choose_content(ctx, "DescribeSmsSignList")
    mine = ctx.actor.account_id
    templates = ctx.db.scalars(select(Template).where(
        Template.account_id == mine, Template.region == region,
        Template.status == EFFECTIVE).order_by(Template.id)).all()
    signatures = ctx.db.scalars(select(Signature).where(
        Signature.account_id == mine, Signature.region == region,
        Signature.status == EFFECTIVE).order_by(Signature.id)).all()
    return list(templates), [s for s in signatures if s.usable]


def standard_columns(ctx: Ctx, template_id: int, *, for_task: bool = False
                     ) -> tuple[Template, list[str], list[str]]:
    """A template, the exact columns a task file for it has, and one example row.
    `for_task`: asked from a new task's form (`_may_choose_content`); otherwise, as the
    templates' own operation, the right to list them on every application."""
    if for_task:
        _may_choose_content(ctx, "DescribeSmsTemplateList")
    else:
        ctx.actor.require("DescribeSmsTemplateList")
    template = ctx.db.get(Template, template_id) if 1 <= template_id <= MAX_ID else None
    if template is None or template.account_id != ctx.actor.account_id:
        raise NotFound("No such template.")
    return (template, taskfile.standard_columns(template.content),
            taskfile.example_row(template.content, template.sms_type, template.region))


def standard_file(ctx: Ctx, template_id: int, fmt: str, *, for_task: bool = False
                  ) -> tuple[bytes, str, str]:
    """The exact columns to fill for a template, with one example row: (data,
    mimetype, file name). XLSX adds a sheet explaining each column."""
    template, columns, example = standard_columns(ctx, template_id, for_task=for_task)
    if fmt == "csv":
        out = exports.spooled_csv(columns, iter([example]))
        return out.read(), "text/csv", f"template-{template.id}.csv"
    if fmt != "xlsx":
        raise invalid("format", "Choose csv or xlsx.")
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Recipients")
    sheet.append(columns)
    sheet.append(example)
    notes = book.create_sheet("Columns")
    notes.append(["column", "what to enter"])
    phone_help = ("Mainland China mobile number: 11 digits, or +86 and 11 digits."
                  if template.region == MAINLAND else
                  "Phone number with + and the country code, e.g. +14155550100.")
    notes.append(["phone", phone_help + " Format the column as text so Excel keeps "
                  "every digit."])
    for n in templating.variables(template.content):
        rule = ("the verification code: 4 to 8 letters or digits"
                if n == 1 and template.sms_type == templating.VERIFICATION else
                f"at most {ctx.settings.template_param_max_length} characters, one line"
                + ("" if template.allow_url_params else ", no links"))
        notes.append([f"{{{n}}}", f"Replaces {{{n}}} in: {template.content} ({rule})"])
    buf = io.BytesIO()
    book.save(buf)
    return (buf.getvalue(),
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            f"template-{template.id}.xlsx")
