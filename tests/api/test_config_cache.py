"""The send API's configuration cache (app/services/sendconfig.py): a change made
through smsops, in any process, applies to the very next request; one made behind
its back (SQL outside any session) within CONFIG_CACHE_TTL_S."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import text, update
from sqlalchemy.orm import Session

from app import create_app
from app.models import Application
from app.services import apps, content, sendconfig
from tests.api.test_send_api import signed
from tests.conftest import Backend
from tests.sending.conftest import Shop


def _app(backend: Backend, tmp_path: Path, ttl: float) -> Flask:
    return create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                       "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x",
                       "CONFIG_CACHE_TTL_S": ttl})


@pytest.fixture
def cached(backend: Backend, session: Session, shop: Shop, tmp_path: Path) -> Iterator[Flask]:
    session.commit()
    app = _app(backend, tmp_path, 60)  # long: every change must come through the token
    sendconfig.new_token(backend.redis)  # as after any write: the first request caches
    yield app
    app.extensions["db"].engine.dispose()


def _send(app: Flask, shop: Shop, key: str | None = None, number: str = "+14155550101",
          template: str = "international") -> tuple[int, str]:
    body = json.dumps({"phone_numbers": [number], "template_id": shop.templates[template],
                       "template_params": ["1234"]}).encode()
    headers = signed(key or shop.app.app_key, body)
    headers["X-SMS-AppId"] = shop.app.sdk_app_id
    resp = app.test_client().post("/api/v1/sms/send", data=body, headers=headers)
    data = resp.get_json()
    code = data["error"]["code"] if "error" in data else data["send_status"][0]["code"]
    return resp.status_code, code


def test_snapshots_are_reused_between_requests(cached: Flask, shop: Shop) -> None:
    assert _send(cached, shop) == (200, "Ok")
    entries = dict(cached.extensions["send_config"]._entries)
    assert {k[0] for k in entries} == {"app", "account", "template", "signature"}
    assert _send(cached, shop, number="+14155550102") == (200, "Ok")
    # The same objects: nothing was read again.
    assert all(cached.extensions["send_config"]._entries[k][1] is v[1]
               for k, v in entries.items())


def test_disabling_the_app_applies_to_the_next_request(cached: Flask, shop: Shop,
                                                         session: Session) -> None:
    assert _send(cached, shop) == (200, "Ok")
    apps.set_enabled(shop.ctx, shop.app.sdk_app_id, False)  # another process's session
    session.commit()
    assert _send(cached, shop, number="+14155550102") == (200, "FailedOperation.AppDisabled")
    apps.set_enabled(shop.ctx, shop.app.sdk_app_id, True)
    session.commit()
    assert _send(cached, shop, number="+14155550103") == (200, "Ok")


def test_a_rotated_key_is_refused_at_once(cached: Flask, shop: Shop, session: Session) -> None:
    old = shop.app.app_key
    assert _send(cached, shop, key=old) == (200, "Ok")
    new = apps.rotate_key(shop.ctx, shop.app.sdk_app_id)
    session.commit()
    assert _send(cached, shop, key=old, number="+14155550102") == (
        401, "AuthFailure.SignatureFailure")
    assert _send(cached, shop, key=new, number="+14155550103") == (200, "Ok")


def test_a_rotated_key_works_at_once_even_as_the_first_request(
        cached: Flask, shop: Shop, session: Session) -> None:
    assert _send(cached, shop) == (200, "Ok")  # the old key is cached
    new = apps.rotate_key(shop.ctx, shop.app.sdk_app_id)
    session.commit()
    assert _send(cached, shop, key=new, number="+14155550102") == (200, "Ok")
    assert _send(cached, shop, key="not-the-key", number="+14155550103") == (
        401, "AuthFailure.SignatureFailure")


def test_a_deleted_template_applies_at_once(cached: Flask, shop: Shop,
                                            session: Session) -> None:
    assert _send(cached, shop) == (200, "Ok")
    content.delete_template(shop.ctx, shop.templates["international"])
    session.commit()
    assert _send(cached, shop, number="+14155550102") == (
        200, "FailedOperation.TemplateNotEffective")


def test_bulk_updates_and_raw_sql_through_a_session_count_as_writes(
        cached: Flask, shop: Shop, session: Session) -> None:
    assert _send(cached, shop) == (200, "Ok")
    session.execute(update(Application).where(Application.id == shop.app.id)
                    .values(enabled=False))
    session.commit()
    assert _send(cached, shop, number="+14155550102") == (200, "FailedOperation.AppDisabled")
    session.execute(text("UPDATE application SET enabled = :on WHERE id = :id"),
                    {"on": True, "id": shop.app.id})
    session.commit()
    assert _send(cached, shop, number="+14155550103") == (200, "Ok")


def test_a_rolled_back_write_keeps_the_cache(cached: Flask, shop: Shop,
                                             session: Session) -> None:
    assert _send(cached, shop) == (200, "Ok")
    token = cached.extensions["redis"].get(sendconfig.TOKEN_KEY)
    apps.set_enabled(shop.ctx, shop.app.sdk_app_id, False)
    session.rollback()
    assert cached.extensions["redis"].get(sendconfig.TOKEN_KEY) == token
    assert _send(cached, shop, number="+14155550102") == (200, "Ok")


def test_a_lost_token_empties_the_cache(cached: Flask, shop: Shop, backend: Backend) -> None:
    assert _send(cached, shop) == (200, "Ok")
    with backend.db.engine.begin() as conn:  # behind every session's back
        conn.execute(text("UPDATE application SET enabled = :off"), {"off": False})
    backend.redis.delete(sendconfig.TOKEN_KEY)  # e.g. Redis restarted empty
    assert _send(cached, shop, number="+14155550102") == (200, "FailedOperation.AppDisabled")


def test_a_change_behind_its_back_applies_within_the_ttl(backend: Backend, session: Session,
                                                         shop: Shop, tmp_path: Path) -> None:
    session.commit()
    with backend.db.engine.begin() as conn:  # room for every request the loop may send
        conn.execute(text("UPDATE account SET intl_daily_quota = :q"), {"q": 10**6})
    app = _app(backend, tmp_path, 0.5)
    try:
        assert _send(app, shop) == (200, "Ok")
        with backend.db.engine.begin() as conn:  # not a session: no new token
            conn.execute(text("UPDATE application SET enabled = :off"), {"off": False})
        changed = time.monotonic()
        n, code = 0, "Ok"
        while code == "Ok" and time.monotonic() - changed < 5:
            n += 1
            code = _send(app, shop, number=f"+1415555{n + 200:04d}")[1]
            time.sleep(0.01)  # a poll interval within the deadline
        assert code == "FailedOperation.AppDisabled"
        assert time.monotonic() - changed < 0.5 + 1.0  # the TTL, plus a loaded machine's lag
    finally:
        app.extensions["db"].engine.dispose()


def test_a_view_never_files_an_old_read_under_a_newer_token(backend: Backend) -> None:
    cache = sendconfig.ConfigCache(backend.redis, ttl_s=60)
    sendconfig.new_token(backend.redis)
    early = cache.current()  # a request that began before a change
    sendconfig.new_token(backend.redis)
    late = cache.current()  # one that began after it
    early._get(("app", "x"), lambda: "old")
    assert late._get(("app", "x"), lambda: "new") == "new"
    assert not late.same_generation(early)


def test_unknown_ids_are_not_kept(backend: Backend, session: Session) -> None:
    cache = sendconfig.ConfigCache(backend.redis, ttl_s=60)
    sendconfig.new_token(backend.redis)
    snaps = cache.current()
    assert all(snaps.app(session, f"99{n:08d}") is None for n in range(50))
    assert snaps.template(session, 10**9) is None
    assert cache._entries == {}


def test_a_savepoint_waits_for_the_outer_commit(cached: Flask, shop: Shop,
                                                session: Session) -> None:
    token = cached.extensions["redis"].get(sendconfig.TOKEN_KEY)
    apps.set_enabled(shop.ctx, shop.app.sdk_app_id, False)
    session.flush()
    with session.begin_nested():  # released: the outer write is still uncommitted
        session.execute(text("SELECT 1"))
    assert cached.extensions["redis"].get(sendconfig.TOKEN_KEY) == token
    nested = session.begin_nested()
    nested.rollback()  # rolling a savepoint back keeps the outer write's mark
    session.commit()
    assert cached.extensions["redis"].get(sendconfig.TOKEN_KEY) != token


def test_cached_sends_count_in_the_rollups_and_alarm_through_the_service(
        cached: Flask, shop: Shop, session: Session) -> None:
    """The merged path: snapshots + Core insert still count every row in the rollups
    (same transaction) and raise alarms as Alarm rows carrying the application."""
    from sqlalchemy import select

    from app.models.alarms import Alarm
    from app.services import app_config
    from tests.stats.expected import direct, rolled

    app_config.set_thresholds(shop.ctx, shop.app.sdk_app_id, "international",
                              alarm_threshold=2, daily_limit=10)
    session.commit()
    assert _send(cached, shop) == (200, "Ok")
    assert _send(cached, shop, number="+14155550102") == (200, "Ok")
    assert _send(cached, shop, number="12") == (200, "InvalidParameterValue.IncorrectPhoneNumber")
    session.expire_all()
    assert direct(session) and rolled(session) == direct(session)
    assert rolled(session, daily=True) == direct(session, daily=True)
    found = session.scalars(select(Alarm).where(Alarm.event == "threshold")).all()
    assert [(a.app_id, a.figures["sdk_app_id"], a.figures["app_name"]) for a in found] == [
        (shop.app.id, shop.app.sdk_app_id, shop.app.name)]


def test_a_slow_load_holds_up_only_its_own_key(backend: Backend) -> None:
    """Reads of ids anyone can make up (unknown AppIds) miss the cache every time: one
    that is slow must not hold up the loads of every other key in the process."""
    import threading

    cache = sendconfig.ConfigCache(backend.redis, ttl_s=60)
    sendconfig.new_token(backend.redis)
    snaps = cache.current()
    release, started = threading.Event(), threading.Event()
    loads: list[str] = []

    def slow() -> None:
        loads.append("bogus")
        started.set()
        release.wait(30)

    stuck = threading.Thread(target=snaps._get, args=(("app", "bogus"), slow))
    same = threading.Thread(target=snaps._get, args=(("app", "bogus"), slow))
    stuck.start()
    assert started.wait(10)
    try:
        other = threading.Thread(target=snaps._get, args=(("app", "known"), lambda: "ok"))
        other.start()
        other.join(10)
        assert not other.is_alive(), "a load of another key waited for the slow one"
        assert cache._entries[("app", "known")][1] == "ok"
        same.start()  # the same key still waits for the load in progress (no stampede)
        same.join(0.2)
        assert same.is_alive()
    finally:
        release.set()
        stuck.join(10)
        if same.ident is not None:
            same.join(10)
    assert loads == ["bogus", "bogus"]  # a miss is not kept: the waiter loads it again
