"""What every send reads, cached per process: the application (with its key,
limits, countries and frequency allowlist), its account, templates and signatures.

Why: a single-number API request spent most of its CPU loading these through the
ORM (about ten round trips, every row built and decrypted again). They change
rarely, so each API process keeps plain, immutable snapshots of them.

Invalidation (how a change reaches every process):
- A **token** in Redis (`smsops:config:token`, a random value) names the current
  configuration. Every SQLAlchemy session of any process that writes to one of the
  tables below (ORM flushes, bulk UPDATE/DELETE/INSERT and raw SQL text executed
  through a session) replaces the token with a fresh random value *after* its
  commit. Each request reads the token first (one GET); a different token empties
  the cache, so the change applies from the next request on. The write is read
  after the token, so a snapshot can never be filed under a token newer than it.
- Random values, not a counter: a Redis restarted empty, or a counter going back,
  can never make an old snapshot look current; a missing token empties the cache.
- **Bound** for changes the sessions cannot see (SQL typed into psql, a crash or a
  Redis outage between the commit and the new token): every snapshot is dropped
  `ttl_s` seconds after it was read (CONFIG_CACHE_TTL_S, default 5 s).

Mute list, unsubscribes, credit packages and every limit counter are *not* cached:
they are read or counted on every request, as before.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis as redis_lib
from sqlalchemy import event, select
from sqlalchemy.orm import ORMExecuteState, Session

from app.db import Database
from app.models import Account, Application, Signature, Template
from app.models.content import EFFECTIVE

TOKEN_KEY = "smsops:config:token"  # noqa: S105 - a Redis key, not a secret
# The tables a snapshot is made of; a write to any of them changes the token.
TABLES = frozenset({"application", "allowed_country", "frequency_allowlist", "account",
                    "template", "signature", "qualification"})
_DIRTY = "smsops_config_dirty"
MAX_ENTRIES = 20_000  # snapshots per process (500 apps per account, their content)
_WRITES = re.compile(r"(?:insert\s+into|update|delete\s+from)\s+\"?(\w+)", re.IGNORECASE)


@dataclass(frozen=True)
class CountrySnap:
    iso_code: str
    alarm_threshold: int | None
    daily_limit: int | None


@dataclass(frozen=True)
class AppSnap:
    """The application as `sending.send` uses it (the same attribute names)."""

    id: int
    account_id: int
    sdk_app_id: str
    name: str
    enabled: bool
    app_key: str
    mainland_alarm_threshold: int | None
    mainland_daily_limit: int | None
    intl_alarm_threshold: int | None
    intl_daily_limit: int | None
    freq_30s_enabled: bool
    freq_30s_limit: int
    freq_hour_enabled: bool
    freq_hour_limit: int
    freq_day_enabled: bool
    freq_day_limit: int
    countries: dict[str, CountrySnap]
    allowlist: frozenset[str]

    @classmethod
    def of(cls, app: Application) -> AppSnap:
        return cls(app.id, app.account_id, app.sdk_app_id, app.name, app.enabled, app.app_key,
                   app.mainland_alarm_threshold, app.mainland_daily_limit,
                   app.intl_alarm_threshold, app.intl_daily_limit, app.freq_30s_enabled,
                   app.freq_30s_limit, app.freq_hour_enabled, app.freq_hour_limit,
                   app.freq_day_enabled, app.freq_day_limit,
                   {c.iso_code: CountrySnap(c.iso_code, c.alarm_threshold, c.daily_limit)
                    for c in app.countries},
                   frozenset(e.phone_number for e in app.allowlist))


@dataclass(frozen=True)
class AccountSnap:
    id: int
    account_type: str
    timezone: str
    intl_daily_quota: int
    package_alarm_threshold: int | None

    @classmethod
    def of(cls, a: Account) -> AccountSnap:
        return cls(a.id, a.account_type, a.timezone, a.intl_daily_quota,
                   a.package_alarm_threshold)


@dataclass(frozen=True)
class TemplateSnap:
    id: int
    account_id: int
    region: str
    status: str
    sms_type: str
    content: str
    allow_url_params: bool

    @classmethod
    def of(cls, t: Template) -> TemplateSnap:
        return cls(t.id, t.account_id, t.region, t.status, t.sms_type, t.content,
                   t.allow_url_params)


@dataclass(frozen=True)
class SignatureSnap:
    id: int
    region: str
    content: str
    usable: bool

    @classmethod
    def of(cls, s: Signature) -> SignatureSnap:
        return cls(s.id, s.region, s.content, s.usable)


_MISSING: Any = object()
Entries = dict[tuple[Any, ...], tuple[float, Any]]


class ConfigCache:
    """Snapshots for one process (one Flask app), safe to share between a server's
    threads. `current()` once per request gives that request's view."""

    def __init__(self, conn: redis_lib.Redis | None, ttl_s: float = 5.0) -> None:
        self.conn, self.ttl_s = conn, ttl_s
        self._token: bytes | None = None
        self._entries: Entries = {}
        self._lock = threading.Lock()
        self._loading = _KeyedLocks()  # one load per key at a time: no stampede at expiry

    def current(self, token: Any = _MISSING) -> Snapshots:
        """The view for one request: compared with the token (read now, unless the
        caller read it in a round trip of its own); a change or no token at all starts
        a new generation. A view keeps the generation it began in, so a snapshot read
        under an old token is never filed under a newer one."""
        if self.conn is None:
            return Snapshots(None, self.ttl_s)
        if token is _MISSING:
            token = self.conn.get(TOKEN_KEY)
        if token is None:  # never set, or Redis lost it: a fresh generation for all
            self.conn.set(TOKEN_KEY, secrets.token_hex(16), nx=True)
            return Snapshots(None, self.ttl_s)  # trust nothing cached this time
        with self._lock:
            if token != self._token:
                self._entries, self._token = {}, token
            return Snapshots(self._entries, self.ttl_s, self._loading, token)


    def last_view(self) -> Snapshots:
        """The generation last seen, without reading the token: only for work that
        `current` confirms afterwards (the API checks a signature with it, then
        reads the token in the nonce's round trip)."""
        with self._lock:
            if self._token is None:
                return Snapshots(None, self.ttl_s)
            return Snapshots(self._entries, self.ttl_s, self._loading, self._token)


class _KeyedLocks:
    """A lock per key, kept only while someone holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[Any, ...], list[Any]] = {}  # key: [lock, users]

    @contextlib.contextmanager
    def hold(self, key: tuple[Any, ...]) -> Iterator[None]:
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]


class Snapshots:
    """One request's reads: cached in `entries` (None: read from the database)."""

    def __init__(self, entries: Entries | None, ttl_s: float,
                 loading: _KeyedLocks | None = None, token: bytes | None = None) -> None:
        self.entries, self.ttl_s = entries, ttl_s
        self.loading = loading
        self.token = token if entries is not None else None  # the generation's name

    def same_generation(self, other: Snapshots) -> bool:
        return self.entries is not None and self.entries is other.entries

    def _get(self, key: tuple[Any, ...], load: Any) -> Any:
        hit = self.entries.get(key) if self.entries is not None else None
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        # When an entry expires, every thread of the process wants it at once: one
        # reads it, the others wait and take what it read. Only for that key: a miss
        # on an id anyone can make up (an unknown AppId) is read every time, and a
        # slow one must not hold up the rest of the process.
        with self.loading.hold(key) if self.loading else contextlib.nullcontext():
            hit = self.entries.get(key) if self.entries is not None else None
            if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
                return hit[1]
            return self._load(key, load)

    def _load(self, key: tuple[Any, ...], load: Any) -> Any:
        now = time.monotonic()
        value = load()
        # Misses are not kept: ids anyone can make up must not fill the memory.
        if self.entries is not None and value is not None:
            if len(self.entries) >= MAX_ENTRIES:
                self.entries.clear()
            self.entries[key] = (now, value)
        return value

    def app(self, db: Session, sdk_app_id: str) -> AppSnap | None:
        def load() -> AppSnap | None:
            app = db.scalar(select(Application).where(Application.sdk_app_id == sdk_app_id))
            return AppSnap.of(app) if app is not None else None
        snap: AppSnap | None = self._get(("app", sdk_app_id), load)
        return snap

    def account(self, db: Session, account_id: int) -> AccountSnap:
        def load() -> AccountSnap:
            account = db.get(Account, account_id)
            assert account is not None  # an application's account exists (foreign key)
            return AccountSnap.of(account)
        snap: AccountSnap = self._get(("account", account_id), load)
        return snap

    def template(self, db: Session, template_id: int) -> TemplateSnap | None:
        def load() -> TemplateSnap | None:
            t = db.get(Template, template_id)
            return TemplateSnap.of(t) if t is not None else None
        snap: TemplateSnap | None = self._get(("template", template_id), load)
        return snap

    def signature(self, db: Session, account_id: int, region: str,
                  name: str | None) -> SignatureSnap | None:
        """The effective signature of that text, or the default one (the first usable)."""
        def load() -> SignatureSnap | None:
            q = select(Signature).where(Signature.account_id == account_id,
                                        Signature.region == region,
                                        Signature.status == EFFECTIVE)
            if name:
                found = db.scalar(q.where(Signature.content == name.strip()))
            else:
                found = next((s for s in db.scalars(q.order_by(Signature.id)) if s.usable),
                             None)
            return SignatureSnap.of(found) if found is not None else None
        snap: SignatureSnap | None = self._get(("signature", account_id, region, name), load)
        return snap


def uncached() -> Snapshots:
    """For callers without a cache (Slack, jobs, tests): every read goes to the database."""
    return Snapshots(None, 0.0)


# --- invalidation: any session that writes a snapshot's table changes the token -----

_tokens: dict[str, redis_lib.Redis] = {}  # database URL → the Redis its caches check
_tokens_lock = threading.Lock()


def install(db: Database, conn: redis_lib.Redis, ttl_s: float) -> ConfigCache:
    """Called by the app factory (web, workers, Slack, the CLI): writes to this database
    from any session of this process change the token in this Redis, which every API
    process's cache checks. Returns this process's cache."""
    with _tokens_lock:
        _tokens[db.engine.url.render_as_string(hide_password=False)] = conn
    return ConfigCache(conn, ttl_s)


def new_token(conn: redis_lib.Redis) -> None:
    conn.set(TOKEN_KEY, secrets.token_hex(16))


def _url(session: Session) -> str | None:
    try:
        bind = session.get_bind()
    except Exception:  # an unbound session writes nothing we cache
        return None
    return bind.engine.url.render_as_string(hide_password=False)


def _touches(objects: Iterator[Any]) -> bool:
    return any(getattr(o, "__tablename__", None) in TABLES for o in objects)


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _ctx: Any) -> None:
    if _DIRTY not in session.info and _touches(
            iter([*session.new, *session.dirty, *session.deleted])):
        session.info[_DIRTY] = _url(session)


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if _DIRTY in state.session.info or state.is_select:
        return
    stmt = state.statement
    table = getattr(stmt, "table", None)
    name = getattr(table, "name", None)
    if name is None:  # raw SQL text: the tables it writes to
        hit = any(t in TABLES for t in _WRITES.findall(str(getattr(stmt, "text", ""))))
    else:
        hit = name in TABLES
    if hit:
        state.session.info[_DIRTY] = _url(state.session)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint: the write is not committed yet
        return
    url = session.info.pop(_DIRTY, None)
    conn = _tokens.get(url) if url else None
    if conn is not None:
        # Redis unreachable: the TTL bounds how long a cache can stay stale.
        with contextlib.suppress(redis_lib.RedisError):
            new_token(conn)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint's writes before it stay
        session.info.pop(_DIRTY, None)
