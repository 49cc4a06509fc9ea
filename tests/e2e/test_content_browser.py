"""In Chromium: write a template while the counter follows, submit it, have a
reviewer in another session approve it, and see it effective."""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.test_apps_browser import _login

pytestmark = pytest.mark.browser


def test_template_counter_review_and_effect(browser: Browser, live_server: str) -> None:
    author = browser.new_context().new_page()
    _login(author, live_server, "root@example.com")
    author.goto(f"{live_server}/content/templates/new?region=international")
    author.fill("input[name=name]", "Login code")
    author.select_option("select[name=sms_type]", "verification")
    box = author.locator("textarea[name=content]")

    box.type("Your code is {1}")
    expect(author.locator("#counter-variables")).to_have_text("{1}")
    expect(author.locator("#counter-encoding")).to_have_text("GSM-7")
    expect(author.locator("#counter-billed")).to_contain_text("1 ")

    box.type(" 🔐")  # one emoji makes it UCS-2
    expect(author.locator("#counter-encoding")).to_have_text("UCS-2")
    box.fill("Your code is {1}. " + "Valid for ten minutes. " * 7)
    expect(author.locator("#counter-billed")).to_contain_text("2 ")
    box.fill("Your code is {1} and {3}")
    expect(author.locator("#counter-problems")).to_contain_text("consecutively")
    box.fill("Your code is {1}. It expires in {2} minutes.")
    expect(author.locator("#counter-variables")).to_have_text("{1} {2}")
    if os.environ.get("SMSOPS_SCREENSHOTS"):
        author.screenshot(path="/tmp/template.png", full_page=True)
    author.click("button:has-text('Submit for review')")
    expect(author.locator("#flash")).to_contain_text("submitted for review")
    expect(author.locator("table")).to_contain_text("Pending review")

    reviewer = browser.new_context().new_page()  # another person, another session
    _login(reviewer, live_server, "reviewer@example.com")
    reviewer.goto(f"{live_server}/reviews")
    card = reviewer.locator("section.review", has_text="Login code")
    expect(card).to_contain_text("GSM-7")
    card.locator("button:has-text('Approve')").click()
    expect(card.locator(".status")).to_have_text("Effective")
    expect(card.locator("button")).to_have_count(0)

    author.reload()
    expect(author.locator("table")).to_contain_text("Effective")
