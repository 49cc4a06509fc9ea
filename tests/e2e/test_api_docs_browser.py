"""/api/docs renders both APIs with the vendored Redoc, fetching nothing off this host."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.test_apps_browser import _login

pytestmark = pytest.mark.browser


def test_reference_page_renders_both_apis_from_this_host(browser: Browser,
                                                         live_server: str) -> None:
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    _login(page, live_server, "root@example.com")
    page.goto(f"{live_server}/api/docs")
    # Rendered operations are headings; the side menu holds the same words, collapsed.
    expect(page.get_by_role("heading", name=re.compile("List applications$"))).to_be_visible(
        timeout=20_000)
    expect(page.get_by_role("heading", name=re.compile("revision you saw$"))).to_be_attached()
    expect(page.get_by_role("heading", name=re.compile("Import numbers from a CSV"))
           ).to_be_attached()
    expect(page.get_by_text("/api/v1/sms/send").first).to_be_attached()
    assert requested and all(u.startswith((live_server, "blob:", "data:")) for u in requested), [
        u for u in requested if not u.startswith(live_server)]
    assert not [e for e in errors if "Content Security Policy" in e], errors
    page.close()
