"""The sending pipeline after acceptance: exactly once, never lost.

The database is the source of truth for what must be sent: the message table is
the outbox and the receipt inbox holds what came back. Redis and RQ only wake
workers up; losing every queued job loses no message, because the sweeper finds
the rows again.

States and who moves a message between them (each move is one conditional
UPDATE from the state before it, so two movers can never both win):

    accepted ──claim──► submitting ──record──► submitted ──receipt──► delivered | failed
       ▲  (the API/service       │  (the worker that       │
       │   writes it)            │   holds the attempt)    └──sweeper, validity over──► no_receipt
       │                         ├──record──► failed (refused by the carrier)
       └──sweeper: gateway says ─┤
          "never reached me"     └──sweeper, lease expired──► unknown (gateway cannot be asked)

- **accepted**: written by `sending.send` in the request's transaction. The API
  then wakes the drainer (a coalesced RQ job, see app/queue.py); if that wake is
  lost (Redis down, enqueue failed after the commit), the sweeper wakes it. A
  drainer that finds a partial batch lingers (DRAIN_LINGER_MS) and takes what
  gathered meanwhile, so one-number requests reach the carrier in batches.
- **submitting**: `claim` moves up to a batch of accepted rows in one statement
  (`FOR UPDATE SKIP LOCKED` on PostgreSQL; on SQLite writers are serialised, so a
  conditional UPDATE ... RETURNING is the same thing) and returns only the rows it
  moved, stamped with a fresh attempt id and a lease. The claim commits before
  anything leaves, so a message is handed to the gateway by exactly one attempt.
  A bulk task's dispatcher (app/services/tasks.py) writes the messages it accepts
  straight into `submitting` under its own attempt and lease, in the transaction
  that checks them, and submits them itself after the commit: the same held claim,
  born with the row, recovered the same way.
- **handed over**: just before its call to the gateway, the worker commits a row
  for its attempt in `submit_attempt` (`hand_over`). Without it, nothing of the
  batch can have reached the carrier; with it, anything may have.
- **submitted / failed**: `record_submissions` writes a batch's results in one
  statement, only where the row is still held by the same attempt; receipts the
  gateway already knows (the simulator) go into the inbox in the same transaction.
  A result the gateway marks `not_sent` (SMPP: never written to the socket, or
  throttled until the batch ran out of time) goes back to `accepted` under the
  same attempt check, to be claimed again. A message that went out in several
  parts keeps every part's carrier id (message_part): it is delivered once every
  part is, and failed as soon as one part fails.
- **delivered / failed (receipt)**: gateways and listeners append to the inbox;
  `apply_receipts` applies a batch in one statement on its own queue and deletes
  what it applied in the same transaction, so a killed applier applies nothing
  twice and loses nothing. A receipt that overtakes its submission record waits.
- **unknown**: the gateway cannot say whether the message reached the carrier (an
  SMPP submit written to the socket before the link dropped, a Tencent Cloud call
  answered after our timeout, a lease that ran out). It is never resent blindly; a
  late result from the same attempt still corrects it, and where the gateway may
  still find it (`asks_again`: Tencent Cloud, by the status reports that carry the
  attempt) the sweeper asks again after half the message's age (30 s to 1 h) until
  the receipt validity ends (`ask_carrier`, outside the sweep's transaction).
- **no_receipt**: submitted, and no receipt within the validity period
  (RECEIPT_VALIDITY_S, default 72 h). A late receipt still applies.

What recovers each fault:
- A worker killed after its claim but before its hand-over (or a task dispatcher
  after its commit): the lease expires (LEASE_S) and the sweeper finds no hand-over.
  It writes one that says "fenced" (`fenced`: the same key, so a worker that was
  only slow can no longer hand the batch over, and sends nothing) and puts the
  messages back in `accepted`, for any gateway, SMPP included.
- A worker killed after its hand-over: the lease expires and the sweeper
  asks the gateway about that attempt (`lookup`). The simulator answers exactly
  and fences the attempt, so rows it never saw go back to `accepted` and a
  straggler from the dead attempt cannot send them later. Tencent Cloud finds what
  it took by its reports; the rest stay unknown and are asked about again. SMPP
  cannot be asked → unknown.
- A worker killed after submitting but before recording: the same lookup finds
  the submissions and records them (with their receipts): nothing is resent.
- A receipts job killed or failed: its inbox rows were not deleted (one
  transaction); RQ retries it and the sweeper wakes it while due rows remain.
- Redis restarted empty: queued jobs are gone; the sweeper (a thread in every
  worker, not an RQ job) re-drives accepted rows and due receipts; workers
  reconnect, and list themselves in RQ's worker registry again, by themselves
  (jobs/worker.py).
- Database restarted: statements fail and their transactions roll back; the
  pool pings connections before use; a worker retries recording results it
  already has for up to the lease, and the sweeper finishes anything left.
- The carrier unreachable: the gateway raises GatewayUnavailable, the batch goes
  back to `accepted` under the same attempt check, and is drained again later;
  the sweeper keeps re-driving for as long as the outage lasts (no retry limit).
  The SMPP gateway never gives a bind up for good (capped back-off).
- The SMPP link dropping mid-batch: messages never written come back `not_sent`
  (→ accepted, sent again); those written but unanswered end `unknown`.

Assumptions and known gaps: a batch submit must finish within the lease (gateway
timeouts are shorter; a straggler past it is fenced by the simulator, and for other
gateways its late result still corrects `unknown`). SMPP cannot be asked: its
expired leases handed over end `unknown`. A Tencent Cloud message handed over but
never received (its worker killed between the hand-over and the call) cannot be
told from one whose report never came: it ends `unknown`, never resent. Status
callbacks are enqueued after the receipt batch commits: a crash in between loses
those callbacks (the receipts themselves are applied).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Integer,
    String,
    Table,
    any_,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from app.db import UTCDateTime, batch_json, core, utcnow
from app.gateways.base import GatewayUnavailable, Outbound, Receipt, SubmitResult
from app.models import Application, Message, ReceiptInbox, Signature, SubmitAttempt, Template
from app.models.sending import (
    ACCEPTED,
    DELIVERED,
    FAILED,
    NO_RECEIPT,
    SUBMITTED,
    SUBMITTING,
    UNKNOWN,
    MessagePart,
)
from app.services import rollups

BATCH = 1000  # messages per claim, receipts per apply
# The new state of rows an UPDATE changed, as app/services/rollups.py needs it.
_RETURNED = (Message.id, Message.status, Message.error_code, Message.carrier_code,
             Message.receipt_at)
# Receipts whose message is not recorded yet wait this long for it, then are dropped.
ORPHAN_RECEIPT_S = 3600
RECEIPT_RETRY_S = 2.0
APPLIABLE = (SUBMITTED, UNKNOWN, NO_RECEIPT)  # states a receipt may still settle
APP_DISABLED = "FailedOperation.AppDisabled"


@dataclass(frozen=True)
class PipelineSettings:
    lease_s: float = 30.0  # a claim's lifetime; a batch submit must finish within it
    receipt_validity_s: float = 72 * 3600.0
    redrive_after_s: float = 2.0  # accepted longer than this without a claim: wake
    batch: int = BATCH
    # A drainer or receipt applier that took a partial batch waits this long for
    # more before looking again (jobs/sending.py): one-number requests travel in
    # batches. Adds at most this much to a message's way out.
    linger_s: float = 0.05

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PipelineSettings:
        return cls(lease_s=float(config.get("LEASE_S", 30)),
                   receipt_validity_s=float(config.get("RECEIPT_VALIDITY_S", 72 * 3600)),
                   redrive_after_s=float(config.get("REDRIVE_AFTER_S", 2)),
                   batch=int(config.get("DRAIN_BATCH", BATCH)),
                   linger_s=float(config.get("DRAIN_LINGER_MS", 50)) / 1000)


@dataclass(frozen=True)
class Claimed:
    id: int
    phone_number: str
    content: str
    region: str
    template_id: int | None
    template_params: list[str] | None
    signature_id: int | None
    app_id: int | None = None  # a claim's rows carry it (refuse_disabled)


def new_attempt() -> str:
    return uuid.uuid4().hex


def _pg(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


def among(db: Session | Any, column: Any, values: Any) -> Any:
    """`column IN (values)`; on PostgreSQL one array parameter (`= ANY`), because a
    thousand placeholders cost SQLAlchemy and psycopg more than running the query:
    psycopg splits such a statement anew on every call."""
    values = list(values)
    dialect = db.get_bind().dialect.name if isinstance(db, Session) else db.dialect.name
    if dialect != "postgresql":
        return column.in_(values)
    item = BigInteger() if isinstance(column.type, Integer | BigInteger) else String()
    return column == any_(bindparam(None, values, type_=ARRAY(item)))


def _locked(db: Session, q: Any) -> Any:
    return q.with_for_update(skip_locked=True) if _pg(db) else q


def picked(db: Session, column: Any, pick: Any, *still: Any) -> list[Any]:
    """WHERE clauses for an UPDATE or DELETE of the rows `pick` (a SELECT of `column`,
    with its conditions `still` and a LIMIT) chooses, taking them in one statement.

    PostgreSQL: `pick` locks its rows (SKIP LOCKED, so two workers never wait on or
    take each other's) and runs once, as an array (`= ANY(array(...))`); the lock
    holds `still` true until the UPDATE, so it is not repeated. `IN (pick)` let the
    planner, which in steady state expects no waiting row, run the pick once per
    outer row: 1,000 times for a batch of 1,000 (491 ms against 27 ms on a
    1.5M-row table); a repeated `still` let it scan a whole backlog by the status
    index (1.1 s with 200,000 waiting). SQLite: writers are serialised, so `IN`
    and `still` together are the same thing."""
    if _pg(db):
        return [column == any_(func.array(_locked(db, pick).scalar_subquery()))]
    return [column.in_(pick.scalar_subquery()), *still]


def claim(db: Session, attempt: str, settings: PipelineSettings,
          ids: list[int] | None = None) -> list[Claimed]:
    """Move up to a batch of accepted messages (or only `ids`) to submitting under
    `attempt`, in one statement; returns exactly the rows this call moved. The
    caller commits before submitting anything."""
    now = utcnow()
    pick = select(Message.id).where(Message.status == ACCEPTED)
    if ids is not None:
        pick = pick.where(among(db, Message.id, ids))
    pick = pick.order_by(Message.id).limit(settings.batch)
    stmt = (update(Message)
            .where(*picked(db, Message.id, pick, Message.status == ACCEPTED))
            .values(status=SUBMITTING, attempt_id=attempt,
                    lease_until=now + timedelta(seconds=settings.lease_s))
            .returning(Message.id, Message.phone_number, Message.content, Message.region,
                       Message.template_id, Message.template_params, Message.signature_id,
                       Message.app_id)
            .execution_options(synchronize_session=False))
    rows = [Claimed(*tuple(r)) for r in db.execute(stmt).all()]
    rows.sort(key=lambda c: c.id)
    return rows


def refuse_disabled(db: Session, attempt: str, claimed: list[Claimed]
                    ) -> tuple[list[Claimed], list[int]]:
    """A disabled application sends nothing (SPEC.md §1), not even what it accepted
    before it was disabled: those of `claimed` end failed here, before anything leaves
    (a small look-up per batch). Returns the rest, and the ids that were failed."""
    app_ids = {c.app_id for c in claimed if c.app_id is not None}
    off = set(db.scalars(select(Application.id).where(
        among(db, Application.id, app_ids), Application.enabled.is_(False)))) if app_ids else set()
    if not off:
        return claimed, []
    ids = [c.id for c in claimed if c.app_id in off]
    before = rollups.snapshot(db, ids)
    changed = db.execute(update(Message).where(
        among(db, Message.id, ids), Message.attempt_id == attempt, Message.status == SUBMITTING)
        .values(status=FAILED, error_code=APP_DISABLED, lease_until=None)
        .returning(*_RETURNED).execution_options(synchronize_session=False)).all()
    rollups.moved(db, before, changed)
    return [c for c in claimed if c.app_id not in off], [r.id for r in changed]


def outbound(db: Session, claimed: list[Claimed], attempt: str | None = None) -> list[Outbound]:
    """What the gateway needs: the text, and for template carriers the template's id
    there, its parameters and the signature text (two look-ups per batch)."""
    template_ids = {m.template_id for m in claimed if m.template_id}
    signature_ids = {m.signature_id for m in claimed if m.signature_id}
    refs: dict[Any, Any] = dict(db.execute(  # type: ignore[arg-type]
        select(Template.id, Template.carrier_template_id)
        .where(Template.id.in_(template_ids))).all()) if template_ids else {}
    signs: dict[Any, Any] = dict(db.execute(  # type: ignore[arg-type]
        select(Signature.id, Signature.content)
        .where(Signature.id.in_(signature_ids))).all()) if signature_ids else {}
    return [Outbound(m.id, m.phone_number, m.content, m.region,
                     template_ref=refs.get(m.template_id), params=tuple(m.template_params or ()),
                     sign_name=signs.get(m.signature_id), attempt_id=attempt) for m in claimed]


def hand_over(db: Session, attempt: str, first_id: int) -> bool:
    """Say that `attempt`'s batch (whose first message is `first_id`) goes to the
    gateway now; the caller commits, then calls. False: the attempt was fenced (its
    lease ran out and the sweeper put its messages back in the queue), so nothing may
    be sent. The row's key makes hand-over and fence exclusive; the message check
    catches a fence already cleared away (fenced_or_handed, prune_attempts)."""
    done = db.execute(text(
        "INSERT INTO submit_attempt (attempt_id, handed, created_at) "
        "SELECT CAST(:attempt AS VARCHAR), :handed, :now WHERE EXISTS (SELECT 1 FROM message "
        "WHERE id = :id AND attempt_id = :attempt AND status = :status) "
        "ON CONFLICT DO NOTHING").bindparams(
            bindparam("handed", type_=Boolean()), bindparam("now", type_=UTCDateTime())),
        {"attempt": attempt, "handed": True, "now": utcnow(), "id": first_id,
         "status": SUBMITTING})
    return bool(done.rowcount == 1)  # type: ignore[attr-defined]


def fenced(db: Session, attempts: set[str]) -> set[str]:
    """Of these attempts, whose leases ran out, those never handed to the gateway:
    fenced now (so that their worker, if it lives, can no longer hand them over) or
    earlier. Their messages can be sent again by anyone, safely."""
    attempts = {a for a in attempts if a}
    if not attempts:
        return set()
    now = utcnow()
    fence = text("INSERT INTO submit_attempt (attempt_id, handed, created_at) "
                 "VALUES (:attempt, :handed, :now) ON CONFLICT DO NOTHING").bindparams(
        bindparam("handed", type_=Boolean()), bindparam("now", type_=UTCDateTime()))
    for attempt in sorted(attempts):  # a sweep meets one or two attempts
        db.execute(fence, {"attempt": attempt, "handed": False, "now": now})
    return set(db.scalars(select(SubmitAttempt.attempt_id).where(
        among(db, SubmitAttempt.attempt_id, sorted(attempts)),
        SubmitAttempt.handed.is_(False))))


# A hand-over or fence row is only read while messages are held by its attempt; kept
# a while longer so that the sweeper does not rewrite the table every few seconds.
ATTEMPT_KEEP_S = 600


def prune_attempts(db: Session, now: datetime) -> int:
    """Drop hand-over and fence rows no message is held under any more."""
    held = select(Message.attempt_id).where(Message.status == SUBMITTING,
                                             Message.attempt_id.is_not(None))
    done = db.execute(delete(SubmitAttempt).where(
        SubmitAttempt.created_at < now - timedelta(seconds=ATTEMPT_KEEP_S),
        SubmitAttempt.attempt_id.not_in(held)).execution_options(synchronize_session=False))
    return int(done.rowcount or 0)  # type: ignore[attr-defined]


def _batch_table(db: Session, columns: dict[str, str]) -> str:
    """SQL for a derived table `j` over the JSON parameter :data, with typed columns."""
    if _pg(db):
        cols = ", ".join(f"{name} {typ}" for name, typ in columns.items())
        return f"jsonb_to_recordset(CAST(:data AS jsonb)) AS j({cols})"
    cols = ", ".join(f"json_extract(value, '$.{name}') AS {name}" for name in columns)
    return f"(SELECT {cols} FROM json_each(:data)) AS j"  # noqa: S608 - our own names


def _when(db: Session) -> Any:
    """Formats an aware datetime the way this backend stores UTCDateTime inside a
    JSON batch: SQLite keeps SQLAlchemy's text form; for PostgreSQL, batch_json writes
    the datetime itself as ISO 8601, which it parses."""
    if _pg(db):
        return lambda value: value

    def fmt(value: datetime | None) -> Any:
        if value is None:
            return None
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return fmt


def record_submissions(db: Session, attempt: str, results: list[SubmitResult],
                       settled: list[int] | None = None) -> int:
    """A batch's results in one statement, only where `attempt` still holds the row
    (or the sweeper marked it unknown meanwhile: a real result corrects that).
    Receipts the gateway already knows go into the inbox in the same transaction;
    results `not_sent` go back to accepted. `settled` gets the ids that this made
    failed or unknown (their status callbacks)."""
    back = [r.message_id for r in results if r.not_sent]
    if back:
        release(db, attempt, back, (SUBMITTING, UNKNOWN))
    results = [r for r in results if not r.not_sent]
    if not results:
        return 0
    before = rollups.snapshot(db, [r.message_id for r in results])
    if _pg(db):  # the snapshot locked the rows: the check is made here (see _held)
        results = [r for r in results if (old := before.get(r.message_id)) is not None
                   and old.attempt_id == attempt and old.status in (SUBMITTING, UNKNOWN)]
        if not results:
            return 0
    now = utcnow()
    rows = []
    for r in results:
        if r.unknown:
            status, error = UNKNOWN, "FailedOperation.OutcomeUnknown"
        elif r.accepted:
            status, error = SUBMITTED, None
        else:
            status, error = FAILED, r.error_code
        rows.append({"id": r.message_id, "status": status, "gid": r.gateway_id, "err": error,
                     "carrier": r.carrier_code})
    table = _batch_table(db, {"id": "bigint", "status": "text", "gid": "text", "err": "text",
                              "carrier": "text"})
    target, col = _target(db)
    held = _held(db, f"{col}attempt_id = :attempt AND {col}status IN ('{SUBMITTING}', "
                     f"'{UNKNOWN}')")
    stmt = text(
        f"UPDATE {target} SET status = j.status, gateway_message_id = j.gid, "  # noqa: S608
        f"error_code = j.err, carrier_code = j.carrier, submitted_at = :now, "
        f"lease_until = NULL FROM {table} "
        f"WHERE {col}id = j.id{held} RETURNING {_RETURNING(col)}"
    ).bindparams(bindparam("now", type_=UTCDateTime()))
    changed = db.execute(stmt, {"data": batch_json(rows), "now": now, "attempt": attempt}).all()
    rollups.moved(db, before, changed)
    done = {r.id for r in changed}
    if settled is not None:
        settled.extend(r.id for r in changed if r.status in (FAILED, UNKNOWN))
    # An `unknown` message keeps the parts that did go out too; a part with no id can
    # never be delivered, so the message is not settled as delivered by the others.
    parts = [{"message_id": r.message_id, "part": n, "gateway_id": gid,
              "state": None if gid else UNKNOWN}
             for r in results if (r.accepted or r.unknown) and r.part_ids
             and r.message_id in done for n, gid in enumerate(r.part_ids, start=1)]
    if parts:  # a later result of the same attempt (correcting `unknown`) replaces them
        db.execute(delete(MessagePart).where(among(db, MessagePart.message_id,
                                                   {p["message_id"] for p in parts})))
        db.execute(insert(MessagePart), parts)
    add_receipts(db, [(r.receipt, r.message_id, r.receipt_after_s) for r in results
                      if r.receipt is not None and r.accepted and r.message_id in done])
    return len(done)


def _target(db: Session) -> tuple[str, str]:
    """The message table in a batch UPDATE ... FROM j, and the prefix of its columns."""
    return ("message AS m", "m.") if _pg(db) else ("message", "message.")


def _held(db: Session, condition: str) -> str:
    """A batch UPDATE's check that each row is still in the state it is moved from:
    in the statement on SQLite (writers are serialised, the statement is the check),
    and on PostgreSQL made by the caller on rows rollups.snapshot locked in this
    transaction. A restriction on message there let stale statistics (nothing in
    flight when they were taken) expect one matching row and join the batch's JSON as
    a nested loop that parsed it once per row and compared every pair: 215-357 ms
    for a batch of 1,000, half of PostgreSQL's time end to end. Joined by id alone,
    each row of the batch finds its message by the primary key."""
    return "" if _pg(db) else f" AND {condition}"


def _RETURNING(col: str) -> str:
    """What rollups.moved needs from an UPDATE's changed rows (new values). The time
    itself, not `receipt_at IS NOT NULL`: SQLite 3.40 answers 1 for that expression
    in the RETURNING of an UPDATE ... FROM even where receipt_at is NULL."""
    return (f"{col}id, {col}status, {col}error_code, {col}carrier_code, "
            f"{col}receipt_at")


def add_receipts(db: Session, receipts: list[tuple[Receipt, int | None, float]]) -> None:
    """Append delivery reports to the inbox (one multi-row insert):
    (receipt, our message id if known, seconds before it may be applied)."""
    if not receipts:
        return
    now = utcnow()
    fmt = _when(db)
    rows = [{"mid": message_id or r.message_id, "gid": r.gateway_id,
             "ok": 1 if r.delivered else 0, "code": r.carrier_code or "", "at": fmt(r.at),
             "due": fmt(now + timedelta(seconds=after) if after else now)}
            for r, message_id, after in receipts]
    table = _batch_table(db, {"mid": "bigint", "gid": "text", "ok": "int", "code": "text",
                              "at": "timestamptz", "due": "timestamptz"})
    # One statement and one parameter for the whole batch (no per-row placeholders).
    db.execute(text(
        "INSERT INTO receipt_inbox (message_id, gateway_id, delivered, carrier_code, at, "  # noqa: S608
        f"due_at, created_at) SELECT j.mid, j.gid, j.ok <> 0, j.code, j.at, j.due, :now "
        f"FROM {table}").bindparams(bindparam("now", type_=UTCDateTime())),
        {"data": batch_json(rows), "now": now})


def release(db: Session, attempt: str, ids: list[int],
            states: tuple[str, ...] = (SUBMITTING,)) -> None:
    """Nothing left (the carrier could not be reached): back to accepted."""
    # submitting and accepted are one outcome; only rows leaving `unknown` move counts.
    before = rollups.snapshot(db, ids) if UNKNOWN in states else {}
    changed = db.execute(update(Message).where(
        among(db, Message.id, ids), Message.attempt_id == attempt, Message.status.in_(states))
        .values(status=ACCEPTED, attempt_id=None, lease_until=None)
        .returning(*_RETURNED).execution_options(synchronize_session=False)).all()
    rollups.moved(db, before, changed)


def apply_receipts(db: Session, limit: int = BATCH) -> tuple[list[int], int]:
    """Apply up to `limit` due receipts in one UPDATE; returns (the ids of messages that
    changed, how many inbox rows were taken). Applied and useless rows are deleted in
    the same transaction; receipts whose message is not recorded yet wait."""
    now = utcnow()
    inbox = core(db).execute(_locked(db, select(
        ReceiptInbox.id, ReceiptInbox.message_id, ReceiptInbox.gateway_id,
        ReceiptInbox.delivered, ReceiptInbox.carrier_code, ReceiptInbox.at,
        ReceiptInbox.created_at).where(ReceiptInbox.due_at <= now)
        .order_by(ReceiptInbox.id).limit(limit))).all()
    if not inbox:
        return [], 0
    parts = _part_receipts(db, inbox)
    by_id = {r.message_id for r in inbox if r.message_id} | {m for m, _ in parts.values()}
    by_gid = {r.gateway_id for r in inbox if not r.message_id and r.gateway_id
              and r.id not in parts}
    gid_to_id: dict[str | None, int] = {}
    if by_gid:
        for row in db.execute(select(Message.id, Message.gateway_message_id)
                              .where(among(db, Message.gateway_message_id, by_gid))):
            gid_to_id[row.gateway_message_id] = row.id
    # Read and locked once: the states decide below, and the rollups move from them.
    before = rollups.snapshot(db, by_id | set(gid_to_id.values()))
    found: dict[int, str] = {mid: row.status for mid, row in before.items()}
    latest: dict[int, Any] = {}
    waiting: list[int] = []
    for r in inbox:
        if r.id in parts:  # a part of a multi-part message
            of, verdict = parts[r.id]
            if verdict is not None and found.get(of) in APPLIABLE:
                latest[of] = verdict
            continue
        mid: int | None = r.message_id or gid_to_id.get(r.gateway_id)
        status = found.get(mid) if mid else None
        if status in APPLIABLE:
            latest[mid] = r  # type: ignore[index]  # the newest report wins
        elif (status in (ACCEPTED, SUBMITTING) or status is None) and (
                now - r.created_at).total_seconds() < ORPHAN_RECEIPT_S:
            waiting.append(r.id)  # its submission is not recorded yet
    changed: list[int] = []
    if latest:
        fmt = _when(db)
        rows = [{"id": mid, "status": DELIVERED if r.delivered else FAILED,
                 "carrier": r.carrier_code,
                 "err": None if r.delivered else "FailedOperation.Undelivered",
                 "at": fmt(r.at or now)} for mid, r in latest.items()]
        table = _batch_table(db, {"id": "bigint", "status": "text", "carrier": "text",
                                  "err": "text", "at": "timestamptz"})
        target, col = _target(db)
        appliable = ", ".join(f"'{s}'" for s in APPLIABLE)
        stmt = text(
            f"UPDATE {target} SET status = j.status, carrier_code = j.carrier, "  # noqa: S608
            f"error_code = j.err, receipt_at = j.at FROM {table} "
            f"WHERE {col}id = j.id{_held(db, f'{col}status IN ({appliable})')} "
            f"RETURNING {_RETURNING(col)}")
        moved = db.execute(stmt, {"data": batch_json(rows)}).all()
        rollups.moved(db, before, moved)
        changed = [r.id for r in moved]
    taken = [r.id for r in inbox]
    held = set(waiting)
    done = [i for i in taken if i not in held]
    if done:
        db.execute(delete(ReceiptInbox).where(among(db, ReceiptInbox.id, done)))
    if waiting:
        db.execute(update(ReceiptInbox).where(among(db, ReceiptInbox.id, waiting))
                   .values(due_at=now + timedelta(seconds=RECEIPT_RETRY_S)))
    return changed, len(taken)


@dataclass(frozen=True)
class _Verdict:
    """What a message's parts say together (shaped like an inbox row)."""

    delivered: bool
    carrier_code: str
    at: datetime | None


def _part_receipts(db: Session, inbox: Sequence[Any]) -> dict[int, tuple[int, _Verdict | None]]:
    """Receipts for parts of multi-part messages: inbox row id → (message id, what
    the parts say so far: None while a part is still out and none failed). A message
    is delivered once every part is, and failed as soon as one part fails (the
    recipient cannot read it whole). Every part of those messages is locked, so two
    appliers settling parts of one message see each other's."""
    gids = {r.gateway_id for r in inbox if not r.message_id and r.gateway_id}
    if not gids:
        return {}
    mids = set(db.scalars(select(MessagePart.message_id)
                          .where(among(db, MessagePart.gateway_id, gids))))
    if not mids:
        return {}
    q = select(MessagePart.id, MessagePart.message_id, MessagePart.gateway_id,
               MessagePart.state, MessagePart.carrier_code).where(
        among(db, MessagePart.message_id, mids)).order_by(MessagePart.id)
    all_parts: list[list[Any]] = [list(p) for p in db.execute(
        q.with_for_update() if _pg(db) else q)]
    by_gid = {p[2]: p for p in all_parts}
    taken: dict[int, int] = {}
    changed: dict[int, list[Any]] = {}
    for r in inbox:
        p = None if r.message_id else by_gid.get(r.gateway_id)
        if p is None:
            continue
        if p[3] != FAILED:  # a failed part stays failed
            p[3], p[4] = (DELIVERED if r.delivered else FAILED), r.carrier_code
            changed[p[0]] = p
        taken[r.id] = p[1]
    if changed:
        db.execute(update(MessagePart), [{"id": p[0], "state": p[3], "carrier_code": p[4]}
                                         for p in changed.values()])
    at = {r.id: r.at for r in inbox}
    verdicts: dict[int, _Verdict | None] = {}
    for mid in set(taken.values()):
        mine = [p for p in all_parts if p[1] == mid]
        failed = next((p for p in mine if p[3] == FAILED), None)
        if failed is not None:
            verdicts[mid] = _Verdict(False, failed[4] or "", None)
        elif all(p[3] == DELIVERED for p in mine):
            verdicts[mid] = _Verdict(True, mine[-1][4] or "", None)
        else:
            verdicts[mid] = None
    out: dict[int, tuple[int, _Verdict | None]] = {}
    for rid, mid in taken.items():
        v = verdicts[mid]
        out[rid] = (mid, None if v is None else _Verdict(v.delivered, v.carrier_code, at[rid]))
    return out


# --- the sweeper ---------------------------------------------------------------


@dataclass
class SweepReport:
    redrive: bool = False  # accepted rows wait with no claim: wake the drainer
    receipts_due: bool = False  # the inbox has due rows: wake the applier
    resolved_sent: int = 0  # expired leases the gateway confirmed
    requeued: int = 0  # expired leases the gateway never saw: accepted again
    unknown: int = 0  # expired leases nobody can resolve (yet)
    resolved_unknown: int = 0  # unknown messages the gateway has found since
    expired: int = 0  # submitted → no_receipt
    # Messages this pass left failed, unknown or no_receipt: their status callbacks.
    settled: list[int] = field(default_factory=list)


# What asking the gateway about a message needs (Claimed, the attempt, its acceptance).
_ASKED = (Message.id, Message.phone_number, Message.content, Message.region,
          Message.template_id, Message.template_params, Message.signature_id,
          Message.attempt_id, Message.created_at)


def resolve_expired(db: Session, gateway: Any, limit: int = BATCH) -> SweepReport:
    """Expired leases: ask the gateway where it can answer, else `unknown`."""
    report = SweepReport()
    now = utcnow()
    rows = db.execute(_locked(db, select(*_ASKED).where(
        Message.status == SUBMITTING, Message.lease_until < now)
        .order_by(Message.id).limit(limit))).all()
    lookup = getattr(gateway, "lookup", None)
    by_attempt = _by_attempt(rows)
    never_handed = _requeue_unhanded(db, by_attempt, report)
    for attempt, claimed in by_attempt.items():
        if attempt in never_handed:
            continue
        if lookup is None:
            ids = [c.id for c in claimed]
            before = rollups.snapshot(db, ids)  # already ours (locked by the select above)
            changed = db.execute(update(Message).where(
                among(db, Message.id, ids), Message.status == SUBMITTING,
                Message.attempt_id == attempt)
                .values(status=UNKNOWN, error_code="FailedOperation.OutcomeUnknown",
                        lease_until=None)
                .returning(*_RETURNED).execution_options(synchronize_session=False)).all()
            rollups.moved(db, before, changed)
            report.settled += [r.id for r in changed]
            report.unknown += len(claimed)
            continue
        try:
            answers = list(lookup(_outbound_since(db, claimed, attempt, rows)))
        except GatewayUnavailable:
            break  # cannot ask now: these and the rest still held, asked next sweep
        seen = [a for a in answers if a is not None]
        never = [c.id for c, a in zip(claimed, answers, strict=True) if a is None]
        record_submissions(db, attempt, seen, report.settled)  # `unknown` ones as such
        release(db, attempt, never)
        report.unknown += sum(1 for a in seen if a.unknown)
        report.resolved_sent += sum(1 for a in seen if not a.unknown)
        report.requeued += len(never)
    return report


# An `unknown` message of a gateway that may still find it is asked about again after
# half its age, within these bounds (first 30 s after it became unknown): about 80
# questions over a 72-hour validity.
ASK_AGAIN_S = (30.0, 3600.0)
# Messages such a gateway is asked about per sweep, expired leases and unknown ones
# together: one carrier call each (Tencent allows 20 a second for it; every worker
# sweeps every few seconds).
ASK_BATCH = 50


def ask_carrier(work: Callable[[], AbstractContextManager[Session]], gateway: Any,
                settings: PipelineSettings, limit: int = ASK_BATCH) -> SweepReport:
    """For a gateway asked one message at a time over the network (`asks_again`:
    Tencent Cloud, by the status reports that carry the attempt): its expired leases
    and due `unknown` messages, at most `limit`. Three short transactions from
    `work`, none open while the carrier is asked (a write lock held across network
    calls stalled SQLite's other writers, and row locks deadlocked with a straggler
    recording the same attempt): take the rows, moving their lease or next question
    on so that no other sweeper takes them; ask; record. A found message is recorded
    as submitted with its receipt; an expired lease not found ends `unknown`; an
    unknown one not found is asked again after half its age (ASK_AGAIN_S) until the
    receipt validity ends."""
    report = SweepReport()
    low, high = ASK_AGAIN_S
    now = utcnow()
    with work() as db:
        # Taken as `claim` takes rows: one conditional UPDATE each, returning what it
        # moved, so two sweepers never take the same row (SQLite too).
        rows = _take(db, [Message.status == SUBMITTING, Message.lease_until < now],
                     now + timedelta(seconds=settings.lease_s), limit)
        if len(rows) < limit:
            rows += _take(db, [
                Message.status == UNKNOWN, Message.attempt_id.is_not(None),
                Message.submitted_at > now - timedelta(seconds=settings.receipt_validity_s),
                Message.submitted_at <= now - timedelta(seconds=low),
                (Message.lease_until.is_(None)) | (Message.lease_until <= now)],
                now + timedelta(seconds=low), limit - len(rows))
        if not rows:
            return report
        never_handed = _requeue_unhanded(
            db, _by_attempt([r for r in rows if r.status == SUBMITTING]), report)
        rows = [r for r in rows  # not asked about
                if r.status != SUBMITTING or r.attempt_id not in never_handed]
        asks = [(attempt, claimed, _outbound_since(db, claimed, attempt, rows))
                for attempt, claimed in _by_attempt(rows).items()]
    answered: list[tuple[str, list[Claimed], list[SubmitResult | None]]] = []
    for attempt, claimed, outbound_ in asks:
        try:
            answered.append((attempt, claimed, list(gateway.lookup(outbound_))))
        except GatewayUnavailable:
            break  # cannot ask now: the rest wait for their lease or next question
    was = {r.id: r for r in rows}
    with work() as db:
        for attempt, claimed, answers in answered:
            expired = [a for c, a in zip(claimed, answers, strict=True)
                       if was[c.id].status == SUBMITTING and a is not None]
            found = [a for c, a in zip(claimed, answers, strict=True)
                     if was[c.id].status == UNKNOWN and a is not None and not a.unknown]
            record_submissions(db, attempt, expired + found,  # checks attempt and state
                               report.settled)
            report.unknown += sum(1 for a in expired if a.unknown)
            report.resolved_sent += sum(1 for a in expired if not a.unknown)
            report.resolved_unknown += len(found)
            never = [c.id for c, a in zip(claimed, answers, strict=True)
                     if was[c.id].status == SUBMITTING and a is None]
            release(db, attempt, never)
            report.requeued += len(never)
            later = [{"b_id": c.id, "b_attempt": attempt, "b_lease": now + timedelta(
                seconds=min(high, max(low, (now - (was[c.id].submitted_at or now))
                                      .total_seconds() / 2)))}
                for c, a in zip(claimed, answers, strict=True)
                if was[c.id].status == UNKNOWN and (a is None or a.unknown)]
            if later:  # only rows still unknown under that attempt (one executemany)
                table = cast(Table, Message.__table__)
                db.execute(update(table).where(
                    table.c.id == bindparam("b_id"), table.c.status == UNKNOWN,
                    table.c.attempt_id == bindparam("b_attempt"))
                    .values(lease_until=bindparam("b_lease", type_=UTCDateTime())), later)
    return report


def _requeue_unhanded(db: Session, by_attempt: dict[str, list[Claimed]],
                      report: SweepReport) -> set[str]:
    """Expired leases never handed over (their worker died before calling): fenced and
    back to `accepted`, to be sent again. Returns those attempts."""
    never_handed = fenced(db, set(by_attempt))
    for attempt in never_handed:
        release(db, attempt, [c.id for c in by_attempt[attempt]])
        report.requeued += len(by_attempt[attempt])
    return never_handed


def _take(db: Session, conditions: list[Any], lease: datetime, limit: int) -> list[Any]:
    pick = select(Message.id).where(*conditions).order_by(Message.id).limit(limit)
    taken = db.execute(update(Message).where(*picked(db, Message.id, pick, *conditions))
                       .values(lease_until=lease)
                       .returning(*_ASKED, Message.submitted_at, Message.status)
                       .execution_options(synchronize_session=False)).all()
    return sorted(taken, key=lambda r: r.id)


def _by_attempt(rows: Sequence[Any]) -> dict[str, list[Claimed]]:
    by_attempt: dict[str, list[Claimed]] = {}
    for r in rows:
        by_attempt.setdefault(r.attempt_id or "", []).append(
            Claimed(r.id, r.phone_number, r.content, r.region, r.template_id,
                    r.template_params, r.signature_id))
    return by_attempt


def _outbound_since(db: Session, claimed: list[Claimed], attempt: str,
                    rows: Sequence[Any]) -> list[Outbound]:
    since = {r.id: r.created_at for r in rows}
    return [replace(o, since=since[o.message_id]) for o in outbound(db, claimed, attempt)]


def sweep(db: Session, gateway: Any, settings: PipelineSettings) -> SweepReport:
    """One pass; safe to run concurrently from several workers. The caller commits."""
    # A gateway asked over the network one message at a time is asked outside this
    # transaction, by the caller (ask_carrier).
    report = SweepReport() if getattr(gateway, "asks_again", False) else \
        resolve_expired(db, gateway, settings.batch)
    now = utcnow()
    # A batch at a time, picked and locked in id order (rows a receipt applier holds
    # are skipped, not waited on), so the rollups move with exactly the rows changed.
    due = db.scalars(_locked(db, select(Message.id).where(
        Message.status == SUBMITTED,
        Message.submitted_at < now - timedelta(seconds=settings.receipt_validity_s))
        .order_by(Message.id).limit(settings.batch))).all()
    if due:
        before = rollups.snapshot(db, due)
        expired = db.execute(update(Message).where(
            among(db, Message.id, due), Message.status == SUBMITTED)
            .values(status=NO_RECEIPT, error_code="FailedOperation.NoReceipt")
            .returning(*_RETURNED).execution_options(synchronize_session=False)).all()
        rollups.moved(db, before, expired)
        report.expired = len(expired)
        report.settled += [r.id for r in expired]
    prune_attempts(db, now)
    report.redrive = bool(report.requeued) or bool(db.scalar(select(exists().where(
        Message.status == ACCEPTED,
        Message.created_at < now - timedelta(seconds=settings.redrive_after_s)))))
    report.receipts_due = bool(db.scalar(select(exists().where(ReceiptInbox.due_at <= now))))
    return report


def pending_count(db: Session) -> int:
    """Messages not yet in a final state (for tests and health checks)."""
    from sqlalchemy import func

    return int(db.scalar(select(func.count()).select_from(Message).where(
        Message.status.in_((ACCEPTED, SUBMITTING, SUBMITTED)))) or 0)
