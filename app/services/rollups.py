"""Keeping the statistics rollups (app/models/stats.py) equal to the messages, and
with them each bulk task's figures (send_task_figure: its messages per outcome).

Every writer of a message's state calls in here in the same transaction:
`count_new` for inserted messages, `snapshot` before and `moved` after a
conditional UPDATE. Counts move from the old outcome to the new one only for
rows the UPDATE really changed (its RETURNING), and `flush` applies a batch's
deltas to every rollup table at once (on PostgreSQL one statement, one JSON
parameter), so a job that dies and is retried rolls back its deltas with its
state changes and can never count a message twice.
"""

from __future__ import annotations

import functools
from collections import Counter, namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    Connection,
    TextClause,
    any_,
    bindparam,
    func,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from app.db import batch_json, core
from app.models import Account, Application, Message
from app.models.stats import (
    APPS_DAILY_KEY,
    CODES_DAILY_KEY,
    COUNTRIES_DAILY_KEY,
    DAILY_KEY,
    DIMENSIONS,
    OUTCOME_COLUMNS,
    TOTALS_DAILY_KEY,
    TOTALS_HOURLY_KEY,
    StatAppsDaily,
    StatCodesDaily,
    StatCountriesDaily,
    StatRollup,
    StatRollupDaily,
    StatTotalsDaily,
    StatTotalsHourly,
)
from app.sms import captcha, outcomes

# What a message contributes to its bucket (its state too: status … receipt_at), and
# the attempt holding it, which the pipeline's batch updates check (pipeline._held).
DIMS = (Message.id, Message.account_id, Message.app_id, Message.region, Message.iso_code,
        Message.signature_id, Message.template_id, Message.sms_type, Message.content,
        Message.fee, Message.created_at, Message.status, Message.error_code,
        Message.carrier_code, Message.receipt_at, Message.attempt_id, Message.task_id)

_Old = namedtuple("_Old", [c.key for c in DIMS])  # type: ignore[misc]  # a snapshot row
Key = tuple[Any, ...]


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _base(m: Any) -> Key:
    """The fixed part of a message's key: hour … verification flag."""
    return _raw_base(_raw(functools.partial(getattr, m)))


class Tally:
    """Deltas per rollup key: key → [count, billed items]; and per task figure:
    (task, outcome, carrier code) → count."""

    def __init__(self) -> None:
        self.deltas: dict[Key, list[int]] = {}
        self.tasks: Counter[tuple[int, str, str]] = Counter()

    def add(self, base: Key, fee: int, state: tuple[str, str, str], sign: int,
            task_id: int | None = None) -> None:
        cell = self.deltas.setdefault(base + state, [0, 0])
        cell[0] += sign
        cell[1] += sign * (fee or 0)
        if task_id is not None:
            self.tasks[(task_id, state[0], state[2])] += sign

    def add_message(self, m: Any, sign: int = 1) -> None:
        """A whole message row (with DIMS) in its current state."""
        self.add(_base(m), m.fee, outcomes.key(m.status, m.receipt_at is not None,
                                                m.error_code, m.carrier_code), sign,
                 getattr(m, "task_id", None))


def snapshot(db: Session, ids: Iterable[int]) -> dict[int, Any]:
    """The rows about to change, locked on PostgreSQL (in id order, so two batches
    never wait on each other in a cycle) so their state cannot move under us. The
    lock waits (no SKIP LOCKED): the pipeline's batch updates check the state on these
    rows instead of in their statement (pipeline._held, tests/sending/
    test_held_races.py)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    if db.get_bind().dialect.name == "postgresql":
        # One array parameter, not a thousand placeholders to render and split.
        ids = bindparam("ids", wanted, type_=postgresql.ARRAY(BigInteger()))
        q = select(*DIMS).where(Message.id == any_(ids)).order_by(Message.id) \
            .with_for_update(of=Message)
    else:
        q = select(*DIMS).where(Message.id.in_(wanted)).order_by(Message.id)
    # Core rows, as plain named tuples: a Row's attribute access costs microseconds, per
    # row and field.
    return {r[0]: _Old._make(r) for r in core(db).execute(q)}


def moved(db: Session, before: Mapping[int, Any], after: Sequence[Any]) -> None:
    """Move counts for the rows an UPDATE changed. `after`: RETURNING rows with id,
    status, error_code, carrier_code and receipt_at (new values)."""
    flush(db, moved_tally(before, after))


def moved_tally(before: Mapping[int, Any], after: Sequence[Any]) -> Tally:
    """What `moved` flushes. A batch's rows share a few keys (an hour, a template, a
    move from one state to another): they are counted per distinct key first, and each
    key is built once (per row it was most of a worker's statistics time)."""
    moves: Counter[tuple[Any, ...]] = Counter()
    for r in after:
        old = before.get(r.id)
        if old is not None:
            moves[(*_raw(old.__getattribute__), old.status, old.receipt_at is not None,
                   old.error_code, old.carrier_code, r.status, r.receipt_at is not None,
                   r.error_code, r.carrier_code, old.task_id)] += 1
    tally = Tally()
    for key, n in moves.items():
        base, fee = _raw_base(key), key[8]
        tally.add(base, fee, outcomes.key(*key[10:14]), -n, key[18])
        tally.add(base, fee, outcomes.key(*key[14:18]), n, key[18])
    return tally


def count_new(db: Session, rows: Iterable[Any],
              zones: Mapping[int, ZoneInfo] | None = None) -> None:
    """Messages just inserted (objects or mappings with the DIMS attributes).
    `zones`: time zones of their accounts, where the caller has them."""
    flush(db, new_tally(rows), zones=zones)


def new_tally(rows: Iterable[Any]) -> Tally:
    """What `count_new` flushes, counted per distinct key first (see moved_tally)."""
    news: Counter[tuple[Any, ...]] = Counter()
    for m in rows:
        get = m.get if isinstance(m, Mapping) else functools.partial(getattr, m)
        news[(*_raw(get), get("status"), get("receipt_at") is not None, get("error_code"),
              get("carrier_code"), get("task_id"))] += 1
    tally = Tally()
    for key, n in news.items():
        tally.add(_raw_base(key), key[8], outcomes.key(*key[10:14]), n, key[14])
    return tally


_RAW = ("created_at", "account_id", "app_id", "region", "iso_code", "signature_id",
        "template_id", "sms_type", "fee")


def _raw(get: Callable[[str], Any]) -> tuple[Any, ...]:
    """What a message's bucket and fee are made of (its fields, read by `get`), with the
    verification flag decided from its text (the text itself, unique per message, stays
    out of the key)."""
    return (*map(get, _RAW), captcha.is_verification(get("sms_type") or "",
                                                     get("content") or ""))


def _raw_base(key: tuple[Any, ...]) -> Key:
    """`_base` of a message from its `_raw` key (fee at 8, the flag at 9 moved last)."""
    return (hour_of(key[0]), key[1], key[2], key[3], key[4] or "", key[5] or 0,
            key[6] or 0, key[7] or "", key[9])


def _zones(db: Session | Connection, accounts: set[int]) -> dict[int, ZoneInfo]:
    return {a: ZoneInfo(z) for a, z in db.execute(select(Account.id, Account.timezone).where(
        Account.id.in_(accounts)))}


# The statement that feeds one table from the batch's deltas `d` (finest grain: hour
# and every dimension, outcome, error and carrier code), grouped to that table's
# key and sorted, so two concurrent batches lock rollup rows in the same order and
# never deadlock. Identical on both backends; only how `d` is read differs.
# Statements built once from our own names and constants (no user text).
def _in(values: Sequence[str]) -> str:
    return ", ".join(f"'{v}'" for v in values)


def _full(table: str, when: str) -> str:
    cols = f"{when}, {', '.join(DIMENSIONS)}"
    return (f"INSERT INTO {table} ({cols}, count, billed) "  # noqa: S608
            f"SELECT {cols}, sum(count), sum(billed) FROM d WHERE true GROUP BY {cols} "
            f"HAVING sum(count) <> 0 OR sum(billed) <> 0 ORDER BY {cols} "
            f"ON CONFLICT ({cols}) DO UPDATE SET count = {table}.count + excluded.count, "
            f"billed = {table}.billed + excluded.billed")


def _totals(table: str, key: Sequence[str]) -> str:
    cols = ", ".join(key)
    sums = ", ".join(f"sum(CASE WHEN outcome = '{o}' THEN count ELSE 0 END)"
                     for o in OUTCOME_COLUMNS)
    adds = ", ".join(f"{o} = {table}.{o} + excluded.{o}" for o in (*OUTCOME_COLUMNS, "billed"))
    return (f"INSERT INTO {table} ({cols}, {', '.join(OUTCOME_COLUMNS)}, billed) "  # noqa: S608
            f"SELECT {cols}, {sums}, sum(CASE WHEN outcome IN ({_in(outcomes.SUCCESS)}) "
            f"THEN billed ELSE 0 END) FROM d WHERE true GROUP BY {cols} ORDER BY {cols} "
            f"ON CONFLICT ({cols}) DO UPDATE SET {adds}")


def _codes(table: str, key: Sequence[str]) -> str:
    cols = ", ".join(key)
    return (f"INSERT INTO {table} ({cols}, count) SELECT {cols}, sum(count) FROM d "  # noqa: S608
            f"WHERE outcome IN ({_in(outcomes.FAILURES)}) GROUP BY {cols} "
            f"HAVING sum(count) <> 0 ORDER BY {cols} "
            f"ON CONFLICT ({cols}) DO UPDATE SET count = {table}.count + excluded.count")


assert OUTCOME_COLUMNS == outcomes.OUTCOMES
STATEMENTS = {
    StatRollup.__tablename__: _full(StatRollup.__tablename__, "hour"),
    StatRollupDaily.__tablename__: _full(StatRollupDaily.__tablename__, "day"),
    StatTotalsHourly.__tablename__: _totals(StatTotalsHourly.__tablename__, TOTALS_HOURLY_KEY),
    StatTotalsDaily.__tablename__: _totals(StatTotalsDaily.__tablename__, TOTALS_DAILY_KEY),
    StatCodesDaily.__tablename__: _codes(StatCodesDaily.__tablename__, CODES_DAILY_KEY),
    StatAppsDaily.__tablename__: _totals(StatAppsDaily.__tablename__, APPS_DAILY_KEY),
    StatCountriesDaily.__tablename__: _totals(StatCountriesDaily.__tablename__,
                                              COUNTRIES_DAILY_KEY),
}
TABLES = tuple(STATEMENTS)
# The columns of `d`, with their PostgreSQL types.
_SOURCE = {"hour": "timestamptz", "day": "date", "account_id": "int", "app_id": "int",
           "region": "text", "iso_code": "text", "signature_id": "int", "template_id": "int",
           "sms_type": "text", "verification": "boolean", "outcome": "text",
           "error_code": "text", "carrier_code": "text", "count": "bigint", "billed": "bigint"}


def _source(columns: Mapping[str, str], sqlite_db: bool) -> str:
    """The rows of the JSON parameter :data as a table of these typed columns."""
    if sqlite_db:
        return ("SELECT " + ", ".join(f"json_extract(value, '$.{name}') AS {name}"  # noqa: S608
                                      for name in columns) + " FROM json_each(:data)")
    return ("SELECT * FROM jsonb_to_recordset(CAST(:data AS jsonb)) AS j("  # noqa: S608
            + ", ".join(f"{name} {typ}" for name, typ in columns.items()) + ")")


def flush(db: Session | Connection, tally: Tally, tables: Sequence[str] = TABLES,
          zones: Mapping[int, ZoneInfo] | None = None) -> None:
    """The batch's deltas into every rollup table, then the tasks' figures.
    PostgreSQL: one statement (each table's upsert a CTE over one JSON parameter);
    SQLite: one statement per table over the same JSON. `zones`: accounts' time zones
    the caller knows (the send API's cached account); the others are read."""
    # On the session's connection: a rollup table is no cached configuration, so the
    # ORM's execute events (sendconfig's write detection) have nothing to see here.
    conn = db.connection() if isinstance(db, Session) else db
    sqlite_db = conn.dialect.name == "sqlite"
    cells = [(k, v) for k, v in tally.deltas.items() if v[0] or v[1]]
    if cells:
        _flush_rollups(conn, sqlite_db, cells, tables, zones)
    figures = [(k, n) for k, n in tally.tasks.items() if n]
    if figures:
        # After the rollups: whoever holds a task's figure rows already holds the
        # rollup rows of its batch, so a transaction that flushes twice (the sweeper,
        # one attempt after another) cannot wait on a lane in a cycle; in key order
        # (the statement's), so two batches take a task's rows alike.
        conn.execute(_figures_statement(sqlite_db), {"data": batch_json([
            {"task_id": t, "outcome": o, "carrier_code": c, "count": n}
            for (t, o, c), n in figures])})


def _flush_rollups(conn: Connection, sqlite_db: bool, cells: list[tuple[Key, list[int]]],
                   tables: Sequence[str], zones: Mapping[int, ZoneInfo] | None) -> None:
    wanted = {k[1] for k, _v in cells}
    known = zones or {}
    if not wanted <= known.keys():
        known = {**known, **_zones(conn, wanted - known.keys())}
    rows = []
    for k, (count, billed) in cells:
        hour = k[0]
        day = hour.astimezone(known.get(k[1], UTC)).date().isoformat()
        rows.append({"hour": hour.strftime("%Y-%m-%d %H:%M:%S.%f") if sqlite_db
                     else hour.isoformat(), "day": day, **dict(zip(DIMENSIONS, k[1:],
                                                                    strict=True)),
                     "count": count, "billed": billed})
    data = {"data": batch_json(rows)}
    for statement in _flush_statements(sqlite_db, tuple(tables)):
        conn.execute(statement, data)


@functools.cache
def _figures_statement(sqlite_db: bool) -> TextClause:
    source = _source({"task_id": "bigint", "outcome": "text", "carrier_code": "text",
                      "count": "bigint"}, sqlite_db)
    return text(f"WITH d AS ({source}) "  # noqa: S608 - our own names
                "INSERT INTO send_task_figure (task_id, outcome, carrier_code, count) "
                "SELECT * FROM d WHERE true ORDER BY 1, 2, 3 "
                "ON CONFLICT (task_id, outcome, carrier_code) "
                "DO UPDATE SET count = send_task_figure.count + excluded.count")


@functools.cache
def _flush_statements(sqlite_db: bool, tables: tuple[str, ...]) -> tuple[TextClause, ...]:
    """Built once: parsing the long text for its parameters cost more than running it."""
    if sqlite_db:
        return tuple(text(f"WITH d AS ({_source(_SOURCE, True)}) {STATEMENTS[name]}")
                     for name in tables)
    ctes = ", ".join(f"u{n} AS ({STATEMENTS[name]})" for n, name in enumerate(tables))
    return (text(f"WITH d AS ({_source(_SOURCE, False)}), {ctes} SELECT 1"),)


def forget_app(db: Session, account_id: int, app_id: int) -> None:
    """A deleted application's traffic leaves the account-wide rollup
    (stat_countries_daily), as it leaves every page (they read the applications
    there are); the per-application rollups keep its rows, unread."""
    t = StatTotalsDaily
    cols = (*OUTCOME_COLUMNS, "billed")
    found = db.execute(select(t.day, t.region, t.iso_code, *(
        func.sum(getattr(t, c)) for c in cols)).where(t.account_id == account_id,
                                                      t.app_id == app_id)
        .group_by(t.day, t.region, t.iso_code)).all()
    if not found:
        return
    table: Any = StatCountriesDaily.__table__
    c = table.c
    stmt = (update(table)
            .where(c.account_id == account_id, c.day == bindparam("k_day"),
                   c.region == bindparam("k_region"), c.iso_code == bindparam("k_iso"))
            .values({name: c[name] - bindparam(f"d_{name}") for name in cols}))
    db.connection().execute(stmt, [
        {"k_day": r[0], "k_region": r[1], "k_iso": r[2],
         **{f"d_{name}": int(n) for name, n in zip(cols, r[3:], strict=True)}}
        for r in found])


# The daily tables, in TABLES' order, with their keys (each one's unique constraint).
_DAILY = ((StatRollupDaily, DAILY_KEY), (StatTotalsDaily, TOTALS_DAILY_KEY),
          (StatCodesDaily, CODES_DAILY_KEY), (StatAppsDaily, APPS_DAILY_KEY),
          (StatCountriesDaily, COUNTRIES_DAILY_KEY))
DAILY_TABLES = tuple(model.__tablename__ for model, _key in _DAILY)
assert TABLES[1:2] + TABLES[3:] == DAILY_TABLES  # locked in the order `flush` takes them


def rezone(db: Session, account_id: int, zone: str, chunk: int = 20_000) -> None:
    """An account's daily rollups counted again by the days of its new time zone, from
    its hourly rollup (which holds every message ever counted, purged ones too), in the
    caller's transaction. Each hour goes to the day it starts in, as `flush` puts it:
    exact for zones a whole number of hours from UTC; in the others, as new traffic is.
    The rows are locked in key order first (the order `flush` takes them in), so a
    batch counted meanwhile waits instead of deadlocking; one committed before is in
    the hourly rows read here. One that read the old zone before it waited puts its
    count on the old zone's date: the change runs this again a minute later
    (accounts.REZONE_AGAIN_S), from the hourly rows, which are right whatever the zone."""
    conn = db.connection()
    for model, key in _DAILY:
        table: Any = model.__table__
        if conn.dialect.name == "postgresql":
            conn.execute(select(table.c.id).where(table.c.account_id == account_id)
                         .order_by(*(table.c[k] for k in key)).with_for_update())
        conn.execute(table.delete().where(table.c.account_id == account_id))
    hourly: Any = StatRollup.__table__
    read = select(hourly.c.hour, *(hourly.c[d] for d in DIMENSIONS), hourly.c.count,
                  hourly.c.billed).where(hourly.c.account_id == account_id)
    zones = {account_id: ZoneInfo(zone)}
    # Read a chunk at a time (a year of hours is never held whole); the key is `flush`'s.
    for rows in conn.execute(read, execution_options={"stream_results": True,
                                                      "yield_per": chunk}).partitions():
        tally = Tally()
        tally.deltas = {tuple(row[:-2]): [row[-2], row[-1]] for row in rows}
        flush(conn, tally, DAILY_TABLES, zones)
    # A deleted application's traffic had left the account-wide table (forget_app).
    apps: Any = Application.__table__
    for app_id in conn.execute(select(hourly.c.app_id).distinct().where(
            hourly.c.account_id == account_id, hourly.c.app_id.not_in(
                select(apps.c.id).where(apps.c.account_id == account_id)))).scalars():
        forget_app(db, account_id, app_id)


def rebuild(conn: Connection | Session, chunk: int = 5000,
            tables: Sequence[str] = TABLES, figures: bool = True) -> None:
    """Counts every message from scratch (the migration that adds the tables, and
    repairs): empties the rollups, then reads messages in id order in chunks.
    `tables`: the rollup tables there are (an older migration knows fewer);
    `figures`: the tasks' figures too (a migration before them: no)."""
    for name in (*tables, *(["send_task_figure"] if figures else [])):
        conn.execute(text(f"DELETE FROM {name}"))  # noqa: S608 - our own names
    last = 0
    while True:
        rows = conn.execute(select(*DIMS).where(Message.id > last).order_by(Message.id)
                            .limit(chunk)).all()
        if not rows:
            return
        tally = Tally()
        for m in rows:
            tally.add_message(m)
        if not figures:
            tally.tasks.clear()
        flush(conn, tally, tables)
        last = rows[-1].id
