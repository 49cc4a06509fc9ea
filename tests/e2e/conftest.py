"""A live server (waitress in a thread) and headless Debian Chromium."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from app import create_app
from app.services.accounts import ensure_account
from app.services.users import bootstrap_user
from tests.helpers import PASSWORD, migrated_sqlite, serving

CHROMIUM = "/usr/bin/chromium"
# No background traffic: this machine has no network beyond loopback.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@pytest.fixture
def live_server(tmp_path: Path, embedded_redis_url: str) -> Iterator[str]:
    url = migrated_sqlite(tmp_path / "e2e.db")
    app = create_app({"DATABASE_URL": url, "REDIS_URL": embedded_redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "e2e"})
    session: Session
    with app.extensions["db"].unit_of_work() as session:
        from app.models import Policy

        reviewer_policy = None
        for email in ("root@example.com", "reviewer@example.com", "nobody@example.com"):
            user, _ = bootstrap_user(session, ensure_account(session), email, PASSWORD,
                                     root=email.startswith("root"))
            user.must_change_password = False
            if email.startswith("reviewer"):
                reviewer_policy = session.query(Policy).filter_by(name="SMSReviewer").one()
                user.policies = [reviewer_policy]
    with serving(app) as base:
        yield base
    app.extensions["db"].engine.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium")
        pytest.skip("Debian chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()
