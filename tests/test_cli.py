"""The smsops command, run through Click's runner against a real database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from tests.conftest import Backend


@pytest.fixture
def run(backend: Backend, session: object, instance_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SMSOPS_DATABASE_URL", backend.db.url)
    monkeypatch.setenv("SMSOPS_REDIS_URL", backend.redis_url)
    monkeypatch.setenv("SMSOPS_INSTANCE_DIR", str(instance_dir))

    def invoke(*args: str, stdin: str | None = None):
        return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)

    return invoke


def test_db_upgrade_user_and_app_create(run) -> None:
    assert "Database at head." in run("db", "upgrade").output
    made = run("user", "create", "--email", "boss@example.com", "--root", "--password-stdin",
               stdin="a-long-password\n")
    assert made.exit_code == 0 and "Created root user boss@example.com" in made.output
    again = run("user", "create", "--email", "boss@example.com")
    assert again.exit_code == 1 and "already exists" in again.output
    short = run("user", "create", "--email", "x@example.com", "--password-stdin", stdin="abc\n")
    assert short.exit_code == 1 and "at least 10" in short.output
    app = run("app", "create", "--name", "CLI app")
    lines = dict(line.split(": ") for line in app.output.strip().splitlines())
    assert lines["AppID"] == "1400000001" and len(lines["AppKey"]) == 64


def test_demo_is_idempotent_and_prints_json(run) -> None:
    first = json.loads(run("demo", "--json").output)
    second = json.loads(run("demo", "--json").output)
    assert first["app_id"] == second["app_id"] == "1400000001"
    assert first["app_key"] == second["app_key"] and len(first["app_key"]) == 64
    assert first["signatures"] == second["signatures"]
    assert {(s["region"], s["status"]) for s in first["signatures"]} == {
        ("mainland", "effective"), ("international", "effective")}
    kinds = {(t["region"], t["sms_type"]) for t in first["templates"] if t["status"] == "effective"}
    assert kinds == {(r, k) for r in ("mainland", "international")
                     for k in ("verification", "notification", "marketing")}
    assert all(t["variables"] in (0, 1, 2) for t in first["templates"])
    assert "already existed" in run("demo").output


@pytest.mark.parametrize(("args", "expected"), [
    (["--region", "international", "a" * 320], {"encoding": "GSM-7", "parts": 3}),
    (["好" * 150], {"encoding": "UCS-2", "parts": 3}),
    (["--sign", "Shop", "a" * 64], {"encoding": "UCS-2", "billed_items": 1, "characters": 70}),
])
def test_sms_count(args: list[str], expected: dict) -> None:
    result = CliRunner().invoke(cli, ["sms", "count", "--json", *args])
    out = json.loads(result.output)
    assert {k: out[k] for k in expected} == expected
    assert set(out) >= {"encoding", "characters", "parts", "billed_items"}


def test_sms_count_plain_output() -> None:
    result = CliRunner().invoke(cli, ["sms", "count", "--region", "international", "Hi €"])
    assert result.output.startswith("GSM-7, 4 characters, 1 part(s) = 1 billed item(s)")


def test_simulator_reply(run) -> None:
    out = run("simulator", "reply", "--from", "+14155550101", "STOP")
    assert out.exit_code == 0 and "Reply from +14155550101 stored." in out.output
    bad = run("simulator", "reply", "--from", "12", "hi")
    assert bad.exit_code == 1 and "country code" in bad.output


def test_links_in_notifications_use_the_address_run_serves_at(tmp_path: Path) -> None:
    """`smsops run` records where it serves; an app made for the same instance (the
    CLI's, the worker's) links there unless SMSOPS_BASE_URL says otherwise."""
    from app import create_app
    from app.services.context import Settings

    (tmp_path / "serving_url").write_text("http://127.0.0.1:5102\n")
    made = create_app({"INSTANCE_DIR": str(tmp_path), "DATABASE_URL": "sqlite://",
                       "REDIS_URL": "redis://127.0.0.1:1/0", "SECRET_KEY": "x"})
    assert Settings.from_config(made.config).base_url == "http://127.0.0.1:5102"
    told = create_app({"INSTANCE_DIR": str(tmp_path), "DATABASE_URL": "sqlite://",
                       "REDIS_URL": "redis://127.0.0.1:1/0", "SECRET_KEY": "x",
                       "BASE_URL": "https://sms.example.com"})
    assert Settings.from_config(told.config).base_url == "https://sms.example.com"
