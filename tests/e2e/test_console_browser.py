"""Issue #8 in Chromium at a laptop's 1366 px: layout, htmx updates, the favicon.

Set SMSOPS_SCREENSHOTS=<dir> to keep a screenshot of every page checked here."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from app.db import Database
from app.models import User
from app.services import apps, audit, content, packages
from app.services.accounts import actor_for
from app.services.context import Ctx
from tests.e2e.test_apps_browser import _login
from tests.helpers import QUALIFICATION

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1366, "height": 768}
LONG_NAME = "Checkout" * 7 + "Ale"  # 59 characters, no space to break at


@pytest.fixture
def seed(live_server: str, tmp_path: Path) -> Iterator[Database]:
    """The live server's own database, to put things in as another session would."""
    database = Database(f"sqlite:///{tmp_path / 'e2e.db'}")
    yield database
    database.engine.dispose()


def _as(session: object, email: str) -> Ctx:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    user = session.query(User).filter_by(email=email).one()
    return Ctx(session, actor_for(user))


def _page(browser: Browser, base: str, email: str = "root@example.com") -> Page:
    page = browser.new_context(viewport=VIEWPORT).new_page()
    _login(page, base, email)
    return page


def _shot(page: Page, name: str) -> None:
    folder = os.environ.get("SMSOPS_SCREENSHOTS")
    if folder:
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def _widths(page: Page) -> dict[str, int]:
    """The page's scrollable width, the viewport, and cards wider than their box."""
    return page.evaluate("""() => ({
        page: document.documentElement.scrollWidth,
        viewport: document.documentElement.clientWidth,
        overflowing: [...document.querySelectorAll('.card, main')]
            .filter(e => e.scrollWidth > e.clientWidth + 1).length})""")


def _no_reload_marker(page: Page) -> None:
    page.evaluate("window.__stillHere = true")


def _not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__stillHere === true"))


# --- 2. the audit log ------------------------------------------------------------

def test_long_audit_value_stays_within_the_viewport(browser: Browser, live_server: str,
                                                    seed: Database) -> None:
    with seed.unit_of_work() as s:
        audit.record(_as(s, "root@example.com"), "ModifyAppInfo", "app", "1400000001",
                     {"overview": "short"}, {"overview": "长" * 5000})
    page = _page(browser, live_server)
    page.goto(f"{live_server}/audit")
    expect(page.locator("table.audit")).to_contain_text("长长长")
    _shot(page, "audit")
    sizes = _widths(page)
    assert sizes["page"] <= VIEWPORT["width"], sizes
    assert page.locator("table.audit").bounding_box()["width"] <= VIEWPORT["width"]
    page.locator("table.audit summary").first.click()  # the whole value, still wrapped
    expect(page.locator("table.audit details[open]")).to_have_count(1)
    assert _widths(page)["page"] <= VIEWPORT["width"]


# --- 4. htmx updates leave no stale part of the page -----------------------------

def test_rename_updates_the_heading_without_a_reload(browser: Browser, live_server: str,
                                                     seed: Database) -> None:
    with seed.unit_of_work() as s:
        app, _ = apps.create_app(_as(s, "root@example.com"), name="Old name")
        sdk_app_id = app.sdk_app_id
    page = _page(browser, live_server)
    page.goto(f"{live_server}/apps/{sdk_app_id}")
    _no_reload_marker(page)
    page.fill("#info input[name=name]", "New name")
    page.click("#info button[type=submit]")
    expect(page.locator("#info .notice")).to_contain_text("saved")
    expect(page.locator("h1")).to_contain_text("New name")
    expect(page.locator("h1")).not_to_contain_text("Old name")
    expect(page.locator(".crumbs")).to_contain_text("New name")
    expect(page).to_have_title(re.compile("^New name"))
    assert _not_reloaded(page)


def test_create_adds_the_application_to_the_list(browser: Browser, live_server: str) -> None:
    page = _page(browser, live_server)
    expect(page.locator("main")).to_contain_text("No applications yet")
    _no_reload_marker(page)
    page.fill("#create-app input[name=name]", "First")
    page.click("#create-app button[type=submit]")
    expect(page.locator("#app-key")).to_be_visible()
    rows = page.locator("#app-list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("First")
    expect(page.locator("main")).not_to_contain_text("No applications yet")
    # Another one: the form comes back for it, and the list grows.
    page.click("#create-app a:has-text('Create another')")
    page.fill("#create-app input[name=name]", "Second")
    page.click("#create-app button[type=submit]")
    expect(page.locator("#app-list tbody tr")).to_have_count(2)
    expect(page.locator("#app-key")).to_be_visible()
    assert _not_reloaded(page)


def test_create_adds_the_user_to_the_list(browser: Browser, live_server: str) -> None:
    page = _page(browser, live_server)
    page.goto(f"{live_server}/users")
    _no_reload_marker(page)
    page.fill("#create-user input[name=email]", "ops@example.com")
    page.click("#create-user button[type=submit]")
    expect(page.locator("#one-time-password")).to_be_visible()
    expect(page.locator("main table").first).to_contain_text("ops@example.com")
    assert _not_reloaded(page)


def test_review_decisions_update_the_counts(browser: Browser, live_server: str,
                                            seed: Database) -> None:
    with seed.unit_of_work() as s:
        author = _as(s, "root@example.com")
        for name in ("Alpha", "Bravo"):
            content.create_template(author, "international", {
                "name": name, "sms_type": "notification", "content": f"{name} is ready."})
    page = _page(browser, live_server, "reviewer@example.com")
    page.goto(f"{live_server}/reviews")
    badge = page.locator("#review-badge")
    expect(badge).to_have_text("2")
    expect(page.locator("h1 .review-count")).to_have_text("2")
    _no_reload_marker(page)
    page.locator("section.review", has_text="Alpha").locator("button:has-text('Approve')").click()
    expect(page.locator("section.review", has_text="Alpha").locator(".status")).to_have_text(
        "Effective")
    expect(badge).to_have_text("1")
    expect(page.locator("h1 .review-count")).to_have_text("1")
    card = page.locator("section.review", has_text="Bravo")
    card.locator("input[name=reason]").fill("Too vague")
    card.locator("button:has-text('Reject')").click()
    expect(card.locator(".status")).to_have_text("Rejected")
    expect(badge).to_be_hidden()  # nothing left to review
    expect(page.locator("h1 .review-count")).to_have_text("0")
    assert _not_reloaded(page)
    page.goto(f"{live_server}/apps")  # and on every other page
    expect(page.locator("#review-badge")).to_be_hidden()


# --- 6. cosmetics ------------------------------------------------------------------

def test_favicon_is_served(browser: Browser, live_server: str) -> None:
    page = _page(browser, live_server)
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.goto(f"{live_server}/apps")
    icon = page.request.get(f"{live_server}/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/")
    href = page.locator("link[rel=icon]").get_attribute("href")
    assert href and page.request.get(f"{live_server}{href}").status == 200
    anonymous = browser.new_context().request.get(f"{live_server}/favicon.ico")
    assert anonymous.status == 200  # the login page needs it too
    assert missing == []


def test_header_is_one_line_at_1366(browser: Browser, live_server: str) -> None:
    page = _page(browser, live_server)  # root: the most links
    _shot(page, "header")
    tops = page.evaluate("""() => [...document.querySelectorAll(
        'header.top a, header.top span, header.top button')]
        .filter(e => e.getBoundingClientRect().height > 0)
        .map(e => e.getBoundingClientRect())
        .map(r => Math.round(r.top + r.height / 2))""")
    assert max(tops) - min(tops) <= 3, tops  # every item on the same line
    height = page.locator("header.top").bounding_box()["height"]
    line = page.evaluate("parseFloat(getComputedStyle(document.body).lineHeight)")
    assert height < 2 * line + 20, (height, line)


@pytest.mark.parametrize("path", ["/content/templates", "/content/signatures",
                                  "/content/qualifications"])
def test_new_buttons_use_the_body_text_size(browser: Browser, live_server: str,
                                            path: str) -> None:
    page = _page(browser, live_server)
    page.goto(f"{live_server}{path}")
    button = page.locator("h1 a.button")
    expect(button).to_have_count(1)
    sizes = page.evaluate("""() => [
        getComputedStyle(document.querySelector('h1 a.button')).fontSize,
        getComputedStyle(document.body).fontSize]""")
    assert sizes[0] == sizes[1], sizes


def test_long_names_stay_inside_their_cards(browser: Browser, live_server: str,
                                            seed: Database) -> None:
    with seed.unit_of_work() as s:
        root = _as(s, "root@example.com")
        app, _ = apps.create_app(root, name=LONG_NAME, tags=LONG_NAME[:20])
        sdk_app_id = app.sdk_app_id
        template = content.create_template(root, "international", {
            "name": LONG_NAME, "sms_type": "notification", "content": "Z" * 200 + " {1}"})
        tid = template.id
        content.create_qualification(root, {**QUALIFICATION, "enterprise_name": LONG_NAME})
        packages.add(root, name=LONG_NAME, size="10", expires_on="2099-12-31")
    page = _page(browser, live_server)
    for width in (1366, 800):
        page.set_viewport_size({"width": width, "height": 768})
        for path in ("/apps", f"/apps/{sdk_app_id}", "/content/templates?region=international",
                     f"/content/templates/{tid}", "/reviews", "/audit",
                     "/content/qualifications", "/packages"):
            page.goto(f"{live_server}{path}")
            expect(page.locator("main")).to_contain_text(LONG_NAME[:30])
            _shot(page, f"long-{width}-{path.strip('/').replace('/', '-').replace('?', '-')}")
            sizes = _widths(page)
            assert sizes["page"] <= width and sizes["overflowing"] == 0, (width, path, sizes)
