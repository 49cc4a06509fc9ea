"""In Chromium, with htmx: a reviewer opens /reviews, the author then edits the
pending template into another text, and the reviewer's Approve on the page they
opened is refused; the card shows the new text, which can then be decided."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.test_apps_browser import _login

pytestmark = pytest.mark.browser


def test_an_edit_after_the_queue_was_opened_is_not_approved(browser: Browser,
                                                            live_server: str) -> None:
    author = browser.new_context().new_page()
    _login(author, live_server, "root@example.com")
    author.goto(f"{live_server}/content/templates/new?region=international")
    author.fill("input[name=name]", "Login code")
    author.select_option("select[name=sms_type]", "verification")
    author.fill("textarea[name=content]", "Your code is {1}")
    author.click("button:has-text('Submit for review')")
    expect(author.locator("#flash")).to_contain_text("submitted for review")

    reviewer = browser.new_context().new_page()
    _login(reviewer, live_server, "reviewer@example.com")
    reviewer.goto(f"{live_server}/reviews")
    card = reviewer.locator("section.review", has_text="Login code")
    expect(card).to_contain_text("Your code is {1}")

    author.goto(f"{live_server}/content/templates?region=international")
    author.click("a:has-text('Login code')")
    author.fill("textarea[name=content]", "Account locked, log in at evil.example/{1}")
    author.click("button:has-text('Save and resubmit')")
    expect(author.locator("#flash")).to_contain_text("submitted for review")

    card.locator("button:has-text('Approve')").click()  # what the reviewer saw first
    expect(card.locator(".error")).to_contain_text("changed since you opened it")
    expect(card).to_contain_text("evil.example")
    expect(card.locator(".status")).to_have_text("Pending review")
    author.reload()  # nothing became effective
    expect(author.locator("table")).to_contain_text("Pending review")

    card.locator("input[name=reason]").fill("Phishing")
    card.locator("button:has-text('Reject')").click()  # now about the text it shows
    expect(card.locator(".status")).to_have_text("Rejected")
    expect(card.locator("button")).to_have_count(0)
