"""A person in Chromium confirms an alarm contact's mobile with the code texted to it
(through the simulator gateway, delivered by a real RQ worker)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, expect

from app import create_app
from app.services.accounts import ensure_account
from app.services.users import bootstrap_user
from jobs import worker
from tests.helpers import PASSWORD, migrated_sqlite, serving
from tests.jobs.test_alarm_sms import CountingSimulator

pytestmark = pytest.mark.browser


@pytest.fixture
def served(tmp_path: Path, embedded_redis_url: str) -> Iterator[tuple[str, Flask]]:
    url = migrated_sqlite(tmp_path / "e2e.db")
    app = create_app({"DATABASE_URL": url, "REDIS_URL": embedded_redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "e2e"})
    app.extensions["gateway"] = CountingSimulator(tmp_path / "simulator.jsonl")
    app.extensions["redis"].flushdb()
    with app.extensions["db"].unit_of_work() as session:
        user, _ = bootstrap_user(session, ensure_account(session), "root@example.com",
                                 PASSWORD, root=True)
        user.must_change_password = False
    with serving(app) as base:
        yield base, app
    app.extensions["db"].engine.dispose()


def test_confirm_a_contact_mobile(browser: Browser, served: tuple[str, Flask]) -> None:
    base, app = served
    page = browser.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=email]", "root@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/$"))  # the dashboard
    page.goto(f"{base}/apps")
    page.fill("#create-app input[name=name]", "Checkout alerts")
    page.click("#create-app button[type=submit]")
    sdk_app_id = page.locator("#sdk-app-id").inner_text(timeout=10_000)
    page.goto(f"{base}/apps/{sdk_app_id}")

    page.fill("#contacts form[action$='/contacts'] input[name=name]", "On-call")
    page.fill("#contacts form[action$='/contacts'] input[name=mobile]", "+8613900000001")
    page.click("#contacts button:has-text('Add contact')")
    expect(page.locator("#contacts .mobile-state")).to_have_text("unconfirmed: no SMS alarms")
    page.click("#contacts details.contact summary")
    page.click("#contacts button:has-text('Text a confirmation code')")
    expect(page.locator("#contacts .notice")).to_contain_text("texted to +8613900000001")

    assert worker.run(app, burst=True)  # delivers the code through the gateway
    gateway = app.extensions["gateway"]
    [(_to, text)] = gateway.received()
    code = text.split("code is ")[1][:6]

    page.click("#contacts details.contact summary")
    page.fill("#contacts input[name=code]", "000000" if code != "000000" else "111111")
    page.click("#contacts button:has-text('Confirm mobile')")
    expect(page.locator("#contacts .error")).to_contain_text("Wrong code")
    page.fill("#contacts input[name=code]", code)
    page.click("#contacts button:has-text('Confirm mobile')")
    expect(page.locator("#contacts .notice")).to_contain_text("Mobile confirmed")
    expect(page.locator("#contacts .mobile-state")).to_have_text("confirmed")
    page.close()
