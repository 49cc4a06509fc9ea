"""Small builders shared by the tests."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app import migrate
from app.models import Policy, User
from app.services import apps
from app.services.accounts import actor_for, ensure_account
from app.services.context import Ctx, Settings
from app.services.users import bootstrap_user

PASSWORD = "correct-horse-battery"


def doc(*statements: tuple[str, list[str], list[str]]) -> str:
    return json.dumps({"version": "2.0", "statement": [
        {"effect": e, "action": a, "resource": r} for e, a, r in statements]})


def make_user(session: Session, email: str, *, root: bool = False,
              policies: list[str] | None = None, presets: list[str] | None = None) -> User:
    """A user with custom policy documents and/or preset policy names."""
    account = ensure_account(session)
    user, _ = bootstrap_user(session, account, email, PASSWORD, root=root)
    user.must_change_password = False
    attached = []
    for n, text in enumerate(policies or []):
        p = Policy(account_id=account.id, name=f"{email.split('@')[0]}-{n}", document=text)
        session.add(p)
        attached.append(p)
    for name in presets or []:
        attached.append(session.query(Policy).filter_by(name=name).one())
    user.policies = attached
    session.flush()
    return user


def ctx_for(session: Session, user: User, **settings: Any) -> Ctx:
    return Ctx(session, actor_for(user), Settings(**settings))


def root_ctx(session: Session, **settings: Any) -> Ctx:
    root = session.query(User).filter_by(is_root=True).first() or make_user(
        session, "root@example.com", root=True)
    return ctx_for(session, root, **settings)


QUALIFICATION = {"use": "self", "enterprise_name": "Acme Trading Co., Ltd.",
                 "licence_number": "91310000MA1FL0000X", "legal_rep_name": "Li Lei",
                 "legal_rep_id_number": "310101199001010000", "admin_name": "Han Meimei",
                 "admin_phone": "13800000000"}


def make_app(session: Session, name: str = "Shop") -> str:
    app, _key = apps.create_app(root_ctx(session), name=name)
    session.flush()
    return app.sdk_app_id


def at_once(work: Callable[[], None], times: int = 2) -> None:
    """Run `work` on `times` threads released together (two workers racing)."""
    barrier = threading.Barrier(times)

    def run() -> None:
        barrier.wait(timeout=10)
        work()

    threads = [threading.Thread(target=run) for _ in range(times)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)


@contextmanager
def serving(app: Any, threads: int = 4) -> Iterator[str]:
    """The app under waitress in a thread; yields its base URL.

    Stopped from its own loop thread, after its request threads: `server.close()`
    from outside leaves the loop serving keep-alive channels, which then wake the
    loop by writing b"x" to the closed trigger's file descriptor; once the kernel
    reuses that number for a Redis socket, the next command arrives as `x*8…`."""
    from waitress import create_server, wasyncore

    server = create_server(app, host="127.0.0.1", port=0, threads=threads)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            wasyncore.loop(timeout=0.05, map=server._map, count=1)
        server.task_dispatcher.shutdown()  # no request thread touches a channel after this
        wasyncore.close_all(server._map, ignore_all=True)

    thread = threading.Thread(target=run, name="waitress-loop", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}"
    finally:
        stop.set()
        thread.join(timeout=30)


T = TypeVar("T")


@contextmanager
def held_together(engine: Engine, *statements: str, hold_s: float = 5
                  ) -> Iterator[list[str]]:
    """Hold each thread's first statement starting with one of `statements` (e.g. "INSERT
    INTO policy") until two threads have reached it, so two requests both pass a service's
    "is it free?" check before either writes: the race happens every time, not now and
    then. Yields the names of the threads that met there (two when they did; SQLite
    may serve one request whole first, if it wrote earlier in its transaction)."""
    barrier = threading.Barrier(2)
    prefixes = tuple(s.upper() for s in statements)
    held: set[int] = set()
    met: list[str] = []

    def hold(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        me = threading.get_ident()
        if me in held or not sql.lstrip().upper().startswith(prefixes):
            return
        held.add(me)
        try:
            barrier.wait(timeout=hold_s)
            met.append(threading.current_thread().name)
        except threading.BrokenBarrierError:
            pass  # the other request was served first

    event.listen(engine, "before_cursor_execute", hold)
    try:
        yield met
    finally:
        event.remove(engine, "before_cursor_execute", hold)


def explained(engine: Engine, prefix: str) -> list[str]:
    """EXPLAIN (COSTS OFF) of every statement starting with `prefix` that `engine` sends
    from now on, exactly as sent (PostgreSQL), filled in as they go."""
    plans: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def explain(_conn: Any, cursor: Any, statement: str, params: Any, *_args: Any) -> None:
        if statement.lstrip().startswith(prefix):
            cursor.execute("EXPLAIN (COSTS OFF) " + statement, params)
            plans.append("\n".join(r[0] for r in cursor.fetchall()))
    return plans


def together(*calls: Callable[[], T]) -> list[T]:
    """Run each call on a thread of its own, all at once; their results, in order."""
    results: dict[int, T] = {}

    def run(i: int, call: Callable[[], T]) -> None:
        results[i] = call()

    threads = [threading.Thread(target=run, args=(i, c), name=f"call{i}")
               for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == len(calls), "a call failed or hung; see its thread's error"
    return [results[i] for i in range(len(calls))]


def claim_handed(db: Session, attempt: str, settings: Any, ids: list[int] | None = None
                 ) -> list[Any]:
    """`pipeline.claim`, then the hand-over a worker commits just before its call to
    the gateway: the batch may have reached the carrier (app/services/pipeline.py)."""
    from app.services import pipeline

    claimed = pipeline.claim(db, attempt, settings, ids)
    if claimed:
        assert pipeline.hand_over(db, attempt, claimed[0].id)
    return claimed


def migrated_sqlite(path: Path) -> str:
    """A SQLite database at `path`, at the head revision: a copy of one this process
    migrated once (migrating costs about 0.5 s in process, 2 s through the CLI)."""
    shutil.copyfile(_migrated_once(), path)
    return f"sqlite:///{path}"


@functools.cache
def _migrated_once() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="smsops-migrated-"))
    atexit.register(shutil.rmtree, folder, True)
    migrate.upgrade(f"sqlite:///{folder / 'head.db'}")  # its engine closed: no WAL beside it
    assert not (folder / "head.db-wal").exists()
    return folder / "head.db"


def zone_at_hour(hour: int) -> str:
    """An Etc/GMT zone where it is now `hour` o'clock (pages and checks that read the
    real clock see that hour, without a fake clock)."""
    from datetime import UTC, datetime

    offset = (hour - datetime.now(UTC).hour) % 24
    if offset > 12:
        offset -= 24
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"  # Etc/GMT-5 is UTC+5



@contextmanager
def inserts_refused(engine: Engine, table: str, session: Session | None = None
                    ) -> Iterator[None]:
    """The database refuses every INSERT into `table` (a trigger): a real fault, as a full
    disk or a broken constraint would give, in whichever backend `engine` is."""
    from sqlalchemy import text

    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        if postgres:
            conn.execute(text("CREATE FUNCTION refuse_insert() RETURNS trigger AS $$ BEGIN "
                              "RAISE EXCEPTION 'refused'; END $$ LANGUAGE plpgsql"))
            conn.execute(text(f"CREATE TRIGGER refuse BEFORE INSERT ON {table} FOR EACH ROW "
                              "EXECUTE FUNCTION refuse_insert()"))
        else:
            conn.execute(text(f"CREATE TRIGGER refuse BEFORE INSERT ON {table} BEGIN "
                              "SELECT RAISE(ABORT, 'refused'); END"))
    try:
        yield
    finally:
        if session is not None:
            session.rollback()  # its reads hold a lock the DROP needs
        with engine.begin() as conn:
            conn.execute(text("DROP TRIGGER refuse" + (f" ON {table}" if postgres else "")))
            if postgres:
                conn.execute(text("DROP FUNCTION refuse_insert()"))
