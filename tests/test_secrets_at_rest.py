"""Issue #8 finding 6: what smsops writes is for its user only, and AppKeys are
encrypted at rest with a key kept outside the database."""

from __future__ import annotations

import io
import json
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from cryptography.fernet import Fernet
from sqlalchemy import create_engine, select, text
from sqlalchemy.orm import Session

from app import create_app, encryption, migrate
from app.cli import cli
from app.models import Application
from app.notify import Message
from app.notify.email import EmailChannel
from app.redisconn import shutdown_embedded
from app.services.uploads import Upload, check_image, store_on_commit
from tests.api.test_send_api import signed
from tests.conftest import PG_UP, REDIS_SERVER, Backend, _pg_database
from tests.helpers import make_user
from tests.sending.conftest import Shop
from tests.sending.conftest import shop as shop  # the fixture
from tests.web.conftest import Client


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (2, 2)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(autouse=True)
def _own_keyring() -> Iterator[None]:
    """Tests here configure other keys; the next test gets the session's key back."""
    yield
    encryption._current = None


def _loose(path: Path) -> list[str]:
    """Everything under path (itself included) that group or others may use."""
    found = []
    for p in [path, *path.rglob("*")]:
        mode = p.lstat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            found.append(f"{p.relative_to(path.parent)} {stat.filemode(mode)}")
    return found


def _raw_keys(url: str) -> dict[str, str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT sdk_app_id, app_key FROM application")).all())
    finally:
        engine.dispose()


def test_fresh_instance_is_private_and_app_keys_are_encrypted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    instance = tmp_path / "instance"  # does not exist yet: the product makes it
    for name in ("SMSOPS_ENCRYPTION_KEY", "SMSOPS_DATABASE_URL", "SMSOPS_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SMSOPS_INSTANCE_DIR", str(instance))
    monkeypatch.setenv("SMSOPS_GATEWAY", "simulator")
    previous = os.umask(0o022)  # what a login shell gives
    try:
        made = CliRunner().invoke(cli, ["app", "create", "--name", "Files"])
        assert made.exit_code == 0, made.output
        key = dict(line.split(": ") for line in made.output.strip().splitlines())["AppKey"]
        app = create_app()
        try:
            with app.extensions["db"].sessions() as s:
                store_on_commit(s, instance / "uploads",
                                check_image(Upload("proof.png", _png()), "proof_image"))
                s.commit()
            EmailChannel(app.config).send(Message("ops@example.com", "Subject", "Body"))
            with app.extensions["db"].sessions() as s:  # a reader keeps -wal/-shm open
                assert s.scalar(select(Application.app_key)) == key
                written = {p.name for p in instance.rglob("*")}
                assert {"smsops.db", "smsops.db-wal", "smsops.db-shm", "secret_key",
                        "encryption_key", "uploads", "outbox"} <= written, written
                assert _loose(instance) == []
            socket = Path(app.config["REDIS_URL_RESOLVED"].removeprefix("unix://"))
            assert _loose(socket.parent) == []
        finally:
            app.extensions["db"].engine.dispose()
            shutdown_embedded()  # saves the dump
        assert (instance / "redis.rdb").exists()
        assert _loose(instance) == []

        raw = _raw_keys(app.config["DATABASE_URL"])
        assert key not in raw.values() and all(v.startswith("gAAAAA") for v in raw.values())
        file_key = (instance / "encryption_key").read_text().strip()
        assert Fernet(file_key.encode()).decrypt(next(iter(raw.values())).encode()).decode() == key
    finally:
        os.umask(previous)


def test_signed_api_call_verifies_against_the_encrypted_key(
        backend: Backend, shop: Shop, session: Session, tmp_path: Path) -> None:
    session.commit()
    key = shop.app.app_key
    assert len(key) == 64
    stored = session.execute(text("SELECT app_key FROM application WHERE sdk_app_id = :a"),
                             {"a": shop.app.sdk_app_id}).scalar_one()
    assert stored != key and encryption.keyring().decrypt(stored) == key
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x"})
    try:
        headers = signed(key, b"", method="GET", target="/api/v1/sms/messages/none")
        headers["X-SMS-AppId"] = shop.app.sdk_app_id
        resp = app.test_client().get("/api/v1/sms/messages/none", headers=headers)
        assert resp.status_code == 404  # signature accepted; no such message
        headers = signed("0" * 64, b"", method="GET", target="/api/v1/sms/messages/none")
        headers["X-SMS-AppId"] = shop.app.sdk_app_id
        resp = app.test_client().get("/api/v1/sms/messages/none", headers=headers)
        assert resp.status_code == 401
    finally:
        app.extensions["db"].engine.dispose()


def test_wrong_key_is_a_clear_error_not_a_500(
        backend: Backend, shop: Shop, session: Session, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    session.commit()
    other = Fernet.generate_key().decode()
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "ENCRYPTION_KEY": other})
    try:
        headers = signed(shop.app.app_key, b"")
        headers["X-SMS-AppId"] = shop.app.sdk_app_id
        with caplog.at_level(logging.ERROR):
            resp = app.test_client().get("/api/v1/sms/messages/none", headers=headers)
        assert resp.status_code == 503
        assert resp.get_json()["error"]["code"] == "InternalError.EncryptionKey"
        assert "cannot be decrypted with the configured encryption key" in caplog.text
        assert "Traceback" not in caplog.text

        make_user(session, "boss@example.com", root=True)
        session.commit()
        web = Client(app.test_client())
        assert web.login("boss@example.com").status_code == 302
        page = web.get(f"/apps/{shop.app.sdk_app_id}")
        assert page.status_code == 503 and b"cannot read its stored keys" in page.data
    finally:
        app.extensions["db"].engine.dispose()

    monkeypatch.setenv("SMSOPS_DATABASE_URL", backend.db.url)
    monkeypatch.setenv("SMSOPS_REDIS_URL", backend.redis_url)
    monkeypatch.setenv("SMSOPS_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("SMSOPS_ENCRYPTION_KEY", other)
    out = CliRunner().invoke(cli, ["demo", "--json"])
    assert out.exit_code == 1
    assert "cannot be decrypted with the configured encryption key" in out.output
    assert "Traceback" not in out.output and out.exception is not None

    bad = CliRunner().invoke(cli, ["demo"], env={"SMSOPS_ENCRYPTION_KEY": "not-a-key"})
    assert bad.exit_code == 1 and "is not a Fernet key" in bad.output


def test_rotation_reencrypts_with_the_new_key(
        backend: Backend, shop: Shop, session: Session, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    session.commit()
    key = shop.app.app_key
    old = os.environ["SMSOPS_ENCRYPTION_KEY"]
    new = Fernet.generate_key().decode()
    monkeypatch.setenv("SMSOPS_DATABASE_URL", backend.db.url)
    monkeypatch.setenv("SMSOPS_REDIS_URL", backend.redis_url)
    monkeypatch.setenv("SMSOPS_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("SMSOPS_ENCRYPTION_KEY", new)
    monkeypatch.setenv("SMSOPS_ENCRYPTION_OLD_KEYS", json.dumps([old]))
    out = CliRunner().invoke(cli, ["secrets", "rotate"])
    assert out.exit_code == 0 and "Re-encrypted 1 AppKey(s)" in out.output, out.output
    stored = _raw_keys(backend.db.url)[shop.app.sdk_app_id]
    assert Fernet(new.encode()).decrypt(stored.encode()).decode() == key
    # The old key alone no longer reads it: it can be retired.
    monkeypatch.delenv("SMSOPS_ENCRYPTION_OLD_KEYS")
    monkeypatch.setenv("SMSOPS_ENCRYPTION_KEY", old)
    assert CliRunner().invoke(cli, ["demo", "--json"]).exit_code == 1


def _seed_plaintext_at_0008(url: str) -> None:
    migrate.upgrade(url, "0008")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO account (id, name, account_type, timezone, intl_daily_quota, "
            "reply_callback_enabled, created_at) VALUES (1, 'A', 'enterprise', 'UTC', 0, "
            ":f, :t)"), {"f": False, "t": "2026-01-01 00:00:00+00:00"})
        conn.execute(text(
            "INSERT INTO application (account_id, sdk_app_id, name, overview, tags, enabled, "
            "app_key, key_rotated_at, created_at, freq_30s_enabled, freq_30s_limit, "
            "freq_hour_enabled, freq_hour_limit, freq_day_enabled, freq_day_limit) VALUES "
            "(1, '1400000001', 'Old', '', '[]', :t1, :k, :t, :t, :t1, 1, :f, 5, :t1, 2)"),
            {"k": "ab" * 32, "t": "2026-01-01 00:00:00+00:00", "t1": True, "f": False})
    engine.dispose()


@pytest.fixture(params=["sqlite", *(["postgresql"] if PG_UP else [])])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    gen = _pg_database()
    yield next(gen)
    gen.close()


def test_migration_encrypts_plaintext_rows_and_downgrade_decrypts(empty_db: str) -> None:
    _seed_plaintext_at_0008(empty_db)
    assert _raw_keys(empty_db) == {"1400000001": "ab" * 32}

    migrate.upgrade(empty_db)
    stored = _raw_keys(empty_db)["1400000001"]
    assert stored.startswith("gAAAAA") and encryption.keyring().decrypt(stored) == "ab" * 32
    engine = create_engine(empty_db)
    with Session(engine) as s:
        assert s.scalar(select(Application.app_key)) == "ab" * 32
    engine.dispose()
    migrate.upgrade(empty_db)  # again: nothing encrypted twice
    assert _raw_keys(empty_db)["1400000001"] == stored

    command.downgrade(migrate.alembic_config(empty_db), "0008")
    assert _raw_keys(empty_db) == {"1400000001": "ab" * 32}


def test_migration_with_the_wrong_key_stops_clearly(empty_db: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    _seed_plaintext_at_0008(empty_db)
    migrate.upgrade(empty_db)
    command.downgrade(migrate.alembic_config(empty_db), "0008")
    migrate.upgrade(empty_db)  # encrypted with the session's key
    command.stamp(migrate.alembic_config(empty_db), "0008")  # as if restored from a backup
    monkeypatch.setenv("SMSOPS_DATABASE_URL", empty_db)
    monkeypatch.setenv("SMSOPS_REDIS_URL", REDIS_SERVER)
    monkeypatch.setenv("SMSOPS_INSTANCE_DIR", str(tmp_path))
    monkeypatch.setenv("SMSOPS_ENCRYPTION_KEY", Fernet.generate_key().decode())
    out = CliRunner().invoke(cli, ["db", "upgrade"])
    assert out.exit_code == 1 and "cannot be decrypted" in out.output
    assert "Traceback" not in out.output
    assert _raw_keys(empty_db)["1400000001"].startswith("gAAAAA")

