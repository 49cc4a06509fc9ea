"""A person in Chromium: log in, create an application, disable it, delete it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.helpers import PASSWORD

pytestmark = pytest.mark.browser


def _login(page: Page, base: str, email: str, then: str | None = "/apps") -> None:
    """Log in: the overview dashboard is the landing page; then open `then` (the
    application list by default, where these tests begin; None stays on the dashboard)."""
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.locator("h1")).to_have_text("Overview")
    if then:
        page.goto(f"{base}{then}")


def test_application_lifecycle(browser: Browser, live_server: str, tmp_path: Path) -> None:
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm prompts
    _login(page, live_server, "root@example.com")

    page.fill("#create-app input[name=name]", "Checkout alerts")
    page.fill("#create-app input[name=tags]", "shop")
    page.click("#create-app button[type=submit]")
    sdk_app_id = page.locator("#sdk-app-id").inner_text(timeout=10_000)
    assert re.fullmatch(r"14\d{8}", sdk_app_id)
    key = page.locator("#app-key").inner_text()
    assert len(key) == 64

    page.click("text=Open Checkout alerts")
    expect(page.locator("h1")).to_contain_text(sdk_app_id)
    expect(page.locator("#key")).not_to_contain_text(key)  # masked from now on

    # An inline error, swapped in by htmx without a page load.
    page.fill("input[name=mainland_alarm_threshold]", "500")
    page.fill("input[name=mainland_daily_limit]", "100")
    page.click("#thresholds button:has-text('Save Mainland China')")
    expect(page.locator("#thresholds .error")).to_contain_text("must not exceed")

    page.click("#status button:has-text('Disable application')")
    expect(page.locator("#status")).to_contain_text("Disabled: every send is refused.")
    expect(page.locator("#app-state")).to_have_text("Disabled")  # out-of-band swap
    page.fill("#status input[name=confirmation]", sdk_app_id)
    page.screenshot(path=str(tmp_path / "before-delete.png"), full_page=True)
    if __import__("os").environ.get("SMSOPS_SCREENSHOTS"):
        page.screenshot(path="/tmp/shot.png", full_page=True)
    page.click("#status button:has-text('Delete application')")
    expect(page).to_have_url(re.compile(r"/apps$"))
    expect(page.locator("#flash")).to_contain_text(f"Application {sdk_app_id} was deleted.")
    expect(page.locator("main")).to_contain_text("No applications yet")
    page.close()


def test_forbidden_action_is_explained(browser: Browser, live_server: str) -> None:
    """A sub-user without policies sees nothing and gets a plain message."""
    page = browser.new_page()
    _login(page, live_server, "nobody@example.com")
    expect(page.locator("main")).to_contain_text("No applications yet")
    page.goto(f"{live_server}/users")
    expect(page.locator(".error-message")).to_have_text("Only the root user may do this.")
    page.close()


def test_saving_one_regions_thresholds_keeps_what_was_typed_in_the_other(
        browser: Browser, live_server: str) -> None:
    """Both threshold forms live in one section that every save swaps whole: a save of
    Mainland China must not wipe what was typed, not yet saved, for International."""
    page = browser.new_page()
    _login(page, live_server, "root@example.com")
    page.fill("#create-app input[name=name]", "Thresholds")
    page.click("#create-app button[type=submit]")
    page.click("text=Open Thresholds")
    page.fill("input[name=international_alarm_threshold]", "20")
    page.fill("input[name=international_daily_limit]", "90")
    page.fill("input[name=mainland_alarm_threshold]", "500")
    page.fill("input[name=mainland_daily_limit]", "100")
    page.click("#thresholds button:has-text('Save Mainland China')")  # refused
    expect(page.locator("#thresholds .error")).to_contain_text("must not exceed")
    expect(page.locator("#thresholds .error")).to_have_count(1)  # beside Mainland only
    expect(page.locator("input[name=international_alarm_threshold]")).to_have_value("20")
    expect(page.locator("input[name=international_daily_limit]")).to_have_value("90")
    page.fill("input[name=mainland_daily_limit]", "1000")
    page.click("#thresholds button:has-text('Save Mainland China')")  # saved
    expect(page.locator("#thresholds .notice")).to_have_text("Mainland thresholds saved.")
    expect(page.locator("input[name=mainland_daily_limit]")).to_have_value("1000")
    expect(page.locator("input[name=international_alarm_threshold]")).to_have_value("20")
    page.click("#thresholds button:has-text('Save International')")
    expect(page.locator("#thresholds .notice")).to_have_text("International thresholds saved.")
    page.reload()
    expect(page.locator("input[name=international_alarm_threshold]")).to_have_value("20")
    expect(page.locator("input[name=international_daily_limit]")).to_have_value("90")
    expect(page.locator("input[name=mainland_alarm_threshold]")).to_have_value("500")
    page.close()
