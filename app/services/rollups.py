"""Keeping the hourly statistics rollups (app/models/stats.py) equal to the messages.

Every writer of a message's state calls in here in the same transaction:
`count_new` for inserted messages, `snapshot` before and `moved` after a
conditional UPDATE. Counts move from the old outcome to the new one only for
rows the UPDATE really changed (its RETURNING), and `flush` applies a batch's
deltas in one upsert, so a job that dies and is retried rolls back its deltas with
its state changes and can never count a message twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.models import Account, Message
from app.models.stats import DAILY_KEY, ROLLUP_KEY, StatRollup, StatRollupDaily
from app.sms import captcha, outcomes

# What a message contributes to its bucket, besides its state: never changes.
DIMS = (Message.id, Message.account_id, Message.app_id, Message.region, Message.iso_code,
        Message.signature_id, Message.template_id, Message.sms_type, Message.content,
        Message.fee, Message.created_at, Message.status, Message.error_code,
        Message.carrier_code, Message.receipt_at)

Key = tuple[Any, ...]
# Rows per upsert statement: a batch of 1,000 messages rarely has more distinct keys,
# and 14 columns x 1,000 stays under SQLite's 32,766 bound parameters.
FLUSH_ROWS = 1000


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _base(m: Any) -> Key:
    """The fixed part of a message's key: hour … verification flag."""
    return (hour_of(m.created_at), m.account_id, m.app_id, m.region, m.iso_code or "",
            m.signature_id or 0, m.template_id or 0, m.sms_type or "",
            captcha.is_verification(m.sms_type or "", m.content or ""))


class Tally:
    """Deltas per rollup key: key → [count, billed items]."""

    def __init__(self) -> None:
        self.deltas: dict[Key, list[int]] = {}

    def add(self, base: Key, fee: int, state: tuple[str, str, str], sign: int) -> None:
        cell = self.deltas.setdefault(base + state, [0, 0])
        cell[0] += sign
        cell[1] += sign * (fee or 0)

    def add_message(self, m: Any, sign: int = 1) -> None:
        """A whole message row (with DIMS) in its current state."""
        self.add(_base(m), m.fee, outcomes.key(m.status, m.receipt_at is not None,
                                                m.error_code, m.carrier_code), sign)


def snapshot(db: Session, ids: Iterable[int]) -> dict[int, Any]:
    """The rows about to change, locked on PostgreSQL (in id order, so two batches
    never wait on each other in a cycle) so their state cannot move under us."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    q = select(*DIMS).where(Message.id.in_(wanted)).order_by(Message.id)
    if db.get_bind().dialect.name == "postgresql":
        q = q.with_for_update(of=Message)
    return {r.id: r for r in db.execute(q)}


def moved(db: Session, before: Mapping[int, Any], after: Sequence[Any]) -> None:
    """Move counts for the rows an UPDATE changed. `after`: RETURNING rows with id,
    status, error_code, carrier_code and receipt_at (new values)."""
    tally = Tally()
    for row in after:
        old = before.get(row.id)
        if old is None:
            continue
        base = _base(old)
        tally.add(base, old.fee, outcomes.key(old.status, old.receipt_at is not None,
                                              old.error_code, old.carrier_code), -1)
        tally.add(base, old.fee, outcomes.key(row.status, row.receipt_at is not None,
                                              row.error_code, row.carrier_code), 1)
    flush(db, tally)


def count_new(db: Session, rows: Iterable[Any]) -> None:
    """Messages just inserted (objects or mappings with the DIMS attributes)."""
    tally = Tally()
    for m in rows:
        tally.add_message(_Attrs(m) if isinstance(m, Mapping) else m)
    flush(db, tally)


class _Attrs:
    def __init__(self, values: Mapping[str, Any]) -> None:
        self._v = values

    def __getattr__(self, name: str) -> Any:
        return self._v.get(name)


def flush(db: Session | Connection, tally: Tally) -> None:
    """One upsert per table (hourly, then daily) for the whole batch; keys sorted so
    concurrent batches lock rollup rows in the same order (no deadlock between
    two workers)."""
    cells = [(k, v) for k, v in tally.deltas.items() if v[0] or v[1]]
    if not cells:
        return
    _upsert(db, StatRollup, ROLLUP_KEY, cells)
    # The local day of each hour, in its account's zone (one small query per batch).
    zones = {a: ZoneInfo(z) for a, z in db.execute(select(Account.id, Account.timezone).where(
        Account.id.in_({k[1] for k, _v in cells})))}
    daily: dict[Key, list[int]] = {}
    for k, v in cells:
        zone = zones.get(k[1], UTC)
        cell = daily.setdefault((k[0].astimezone(zone).date(), *k[1:]), [0, 0])
        cell[0] += v[0]
        cell[1] += v[1]
    _upsert(db, StatRollupDaily, DAILY_KEY, [(k, v) for k, v in daily.items() if v[0] or v[1]])


def _upsert(db: Session | Connection, model: Any, key: tuple[str, ...],
            cells: list[tuple[Key, list[int]]]) -> None:
    if not cells:
        return
    cells.sort(key=lambda kv: tuple(str(x) for x in kv[0]))
    rows = [dict(zip(key, k, strict=True), count=v[0], billed=v[1]) for k, v in cells]
    dialect = db.get_bind().dialect.name if isinstance(db, Session) else db.dialect.name
    ins: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)
    for start in range(0, len(rows), FLUSH_ROWS):
        stmt = ins.values(rows[start:start + FLUSH_ROWS])
        stmt = stmt.on_conflict_do_update(
            index_elements=list(key),
            set_={"count": model.count + stmt.excluded.count,
                  "billed": model.billed + stmt.excluded.billed})
        db.execute(stmt)


def rebuild(conn: Connection | Session, chunk: int = 5000) -> None:
    """Counts every message from scratch (the migration that adds the table, and
    repairs): empties the rollups, then reads messages in id order in chunks."""
    conn.execute(delete(StatRollup))
    conn.execute(delete(StatRollupDaily))
    last = 0
    while True:
        rows = conn.execute(select(*DIMS).where(Message.id > last).order_by(Message.id)
                            .limit(chunk)).all()
        if not rows:
            return
        tally = Tally()
        for m in rows:
            tally.add_message(m)
        flush(conn, tally)
        last = rows[-1].id
