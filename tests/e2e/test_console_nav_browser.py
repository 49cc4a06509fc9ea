"""Issue #14 in Chromium: navigation by area, any screen size, keyboard, axe-core, the
dashboard, the test send with its receipt, and pages that never go stale.

Set SMSOPS_SCREENSHOTS=<dir> to keep screenshots (390 px and 1,366 px)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from app import create_app
from app.db import Database
from app.services import content
from tests.e2e.test_apps_browser import _login
from tests.e2e.test_console_browser import _as, _shot
from tests.sending.conftest import make_shop

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# Pages the root user reaches from the navigation (and the login page).
TOP_LEVEL = ("/", "/send", "/content/qualifications", "/content/signatures?region=mainland",
             "/content/templates?region=mainland", "/content/signatures?region=international",
             "/content/templates?region=international", "/messages", "/apps",
             "/notifications", "/mute", "/unsubscribes", "/replies", "/packages", "/reviews",
             "/users", "/policies", "/audit", "/settings", "/account")


@pytest.fixture
def seed(live_server: str, tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'e2e.db'}")
    yield database
    database.engine.dispose()


@pytest.fixture
def shop_app(seed: Database, embedded_redis_url: str) -> str:
    """An application with effective content in the live server's database."""
    import redis

    with seed.unit_of_work() as s:
        shop = make_shop(s, redis.Redis.from_url(embedded_redis_url))
        return shop.app.sdk_app_id


def _page(browser: Browser, base: str, width: int = 1366, email: str = "root@example.com",
          then: str | None = "/") -> Page:
    # axe-core is injected as a script: the console's CSP (rightly) refuses inline ones.
    page = browser.new_context(viewport={"width": width, "height": 800},
                               bypass_csp=True).new_page()
    _login(page, base, email, then=then)
    return page


def _fits(page: Page) -> dict[str, int]:
    return page.evaluate("""() => ({scroll: document.documentElement.scrollWidth,
                                    inner: window.innerWidth})""")


def _axe(page: Page, within: str = "") -> list[dict]:
    """Serious and critical axe-core violations on the page as it is now (only inside
    `within`, a selector, when given: the console's frame is checked once elsewhere)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=AXE.read_text(encoding="utf-8"))
    found = page.evaluate("""async (within) => (await axe.run(
            within ? {include: [[within]]} : document, {resultTypes: ['violations']}))
        .violations.filter(v => ['serious', 'critical'].includes(v.impact))
        .map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.map(n => n.target.join(' '))}))""",
                          within)
    return list(found)


# --- navigation ---------------------------------------------------------------------

def test_sidebar_at_a_laptop_width(browser: Browser, live_server: str) -> None:
    page = _page(browser, live_server, then="/content/templates?region=international")
    nav = page.locator("#sidenav")
    expect(nav).to_be_visible()
    expect(page.locator(".menu-toggle")).to_be_hidden()
    current = nav.locator("a[aria-current]")
    expect(current).to_have_count(1)
    expect(current).to_have_text("Body templates")
    expect(nav.locator("details", has=page.locator("a[aria-current]")).locator("summary")
           ).to_have_text("International")
    # Every link on one line: no label wraps at 1,366 px.
    heights = page.evaluate("""() => [...document.querySelectorAll('#sidenav a')].map(a =>
        [a.textContent.trim(), a.getBoundingClientRect().height,
         parseFloat(getComputedStyle(a).lineHeight)])""")
    assert all(h < 1.6 * line + 12 for _, h, line in heights), heights
    sizes = _fits(page)
    assert sizes["scroll"] <= sizes["inner"], sizes
    _shot(page, "nav-1366")


def test_the_current_place_is_in_view_in_the_navigation(browser: Browser,
                                                       live_server: str) -> None:
    """The navigation scrolls on its own at a laptop's height: a page low in it (the
    last areas) still shows where it is without scrolling the navigation."""
    page = _page(browser, live_server, then="/audit")
    page.set_viewport_size({"width": 1366, "height": 700})
    for path, label in (("/audit", "Audit log"), ("/settings", "Settings"),
                        ("/notifications", "Notification log")):
        page.goto(f"{live_server}{path}")
        current = page.locator("#sidenav a[aria-current]")
        expect(current).to_have_text(label)
        box, nav = current.bounding_box(), page.locator("#sidenav").bounding_box()
        assert box is not None and nav is not None
        assert nav["y"] <= box["y"] and box["y"] + box["height"] <= min(
            nav["y"] + nav["height"], 700), (path, box, nav)
    assert page.evaluate("scrollY") == 0  # the page itself stays at its top


def test_navigation_collapses_on_a_phone(browser: Browser, live_server: str) -> None:
    page = _page(browser, live_server, width=390)
    nav, toggle = page.locator("#sidenav"), page.locator(".menu-toggle")
    expect(nav).to_be_hidden()
    expect(toggle).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    _shot(page, "nav-390-closed")
    toggle.click()
    expect(nav).to_be_visible()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    _shot(page, "nav-390-open")
    assert _fits(page)["scroll"] <= 390
    nav.locator("a", has_text="Application list").click()
    expect(page.locator("h1")).to_have_text("Applications")
    expect(page.locator("#sidenav")).to_be_hidden()  # folded again on the next page


def test_keyboard_reaches_the_navigation_with_visible_focus(browser: Browser,
                                                            live_server: str) -> None:
    page = _page(browser, live_server)
    page.keyboard.press("Tab")
    focused = page.evaluate("""() => { const e = document.activeElement;
        const s = getComputedStyle(e);
        return {text: e.textContent.trim(), outline: s.outlineStyle, width: s.outlineWidth}; }""")
    assert focused["text"] == "Skip to the content"
    assert focused["outline"] != "none" and focused["width"] != "0px", focused
    for _ in range(12):  # on through the top bar into the navigation
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('#sidenav') !== null"):
            break
    style = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert style != "none"


# --- any screen size, and axe-core ------------------------------------------------------

# Every page at every width, the stored layout and axe-core: test_console_pages_browser.py


# --- the dashboard, the test send, pages that stay current ------------------------------

def _run_jobs_until(live_server: str, tmp_path: Path, redis_url: str, page: Page,
                    done: str, deadline_s: float = 30) -> None:
    """Work the queue (a real RQ worker, in bursts, plus the sweeper that wakes the
    receipts job) until `done` (a JS condition) holds in the page."""
    from jobs import worker
    from jobs.sending import sweep_once

    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.db'}",
                      "REDIS_URL": redis_url, "INSTANCE_DIR": str(tmp_path),
                      "SECRET_KEY": "e2e", "SIMULATOR_RECEIPT_DELAY_S": 0})
    try:
        end = time.monotonic() + deadline_s
        while True:
            assert time.monotonic() < end, f"not reached in {deadline_s}s: {done}"
            sweep_once(app)
            worker.run(app, burst=True, no_fork=True)
            try:  # the page's own poll brings the change: wait for it, then work again
                page.wait_for_function(done, timeout=4000)
                return
            except PlaywrightTimeout:
                continue
    finally:
        app.extensions["db"].engine.dispose()


def _choose_code_template(page: Page) -> None:
    """The shop's international verification template ("Your code is {1}")."""
    value = page.locator("select[name=template] option", has_text="Your code is").get_attribute(
        "value")
    assert value
    page.select_option("select[name=template]", value=value)


def test_test_send_shows_the_result_then_the_receipt(browser: Browser, live_server: str,
                                                     shop_app: str, tmp_path: Path,
                                                     embedded_redis_url: str) -> None:
    page = _page(browser, live_server, then="/send")
    page.evaluate("window.__stillHere = true")
    _choose_code_template(page)
    page.fill("textarea[name=params]", "123456")
    page.fill("input[name=number]", "+14155550101")  # the simulator delivers this one
    page.click("#test-send button[type=submit]")
    expect(page.locator(".send-result .notice")).to_contain_text("Accepted for +14155550101")
    _run_jobs_until(live_server, tmp_path, embedded_redis_url, page,
                    "document.querySelector('dl.sent [data-status]')?.dataset.status"
                    " === 'delivered'")
    expect(page.locator("dl.sent")).to_contain_text("DELIVRD")
    assert page.evaluate("window.__stillHere === true")  # all in place, no reload


def test_dashboard_figures_after_a_few_sends(browser: Browser, live_server: str,
                                            shop_app: str, tmp_path: Path,
                                            embedded_redis_url: str) -> None:
    page = _page(browser, live_server, then="/send")
    for number in ("+14155550101", "+14155550102", "+999"):
        _choose_code_template(page)
        page.fill("textarea[name=params]", "123456")
        page.fill("input[name=number]", number)
        page.click("#test-send button[type=submit]")
        expect(page.locator(".send-result")).to_contain_text(number)
    page.goto(f"{live_server}/")
    page.evaluate("window.__stillHere = true")
    figure = page.locator("[data-figure='international-requests']")
    expect(figure).to_have_text("3")
    _run_jobs_until(live_server, tmp_path, embedded_redis_url, page,
                    "document.querySelector(\"[data-figure='international-successes']\")"
                    "?.textContent.trim() === '1'", deadline_s=45)
    # +14155550101 taken by the carrier; +14155550102 refused; +999 never left.
    expect(page.locator("[data-figure='international-rate']")).to_have_text("33.3%")
    assert page.evaluate("window.__stillHere === true")  # it refreshed itself


def test_sms_log_rows_in_flight_update_in_place(browser: Browser, live_server: str,
                                                 shop_app: str, tmp_path: Path,
                                                 embedded_redis_url: str) -> None:
    page = _page(browser, live_server, then="/send")
    _choose_code_template(page)
    page.fill("textarea[name=params]", "123456")
    page.fill("input[name=number]", "+14155550101")
    page.click("#test-send button[type=submit]")
    expect(page.locator(".send-result .notice")).to_be_visible()
    page.goto(f"{live_server}/messages")
    page.evaluate("window.__stillHere = true")
    expect(page.locator("table.messages tbody tr .status")).to_have_text("accepted")
    _run_jobs_until(live_server, tmp_path, embedded_redis_url, page,
                    "document.querySelector('table.messages tbody tr .status')"
                    "?.textContent === 'delivered'")
    # Nothing left in flight: the poller is gone from the page.
    assert page.evaluate("document.querySelector('#log-live').hasAttribute('hx-get')") is False
    assert page.evaluate("window.__stillHere === true")


def test_review_badge_in_the_navigation_stays_current(browser: Browser, live_server: str,
                                                      seed: Database) -> None:
    with seed.unit_of_work() as s:
        content.create_template(_as(s, "root@example.com"), "international", {
            "name": "Alpha", "sms_type": "notification", "content": "Alpha is ready."})
    page = _page(browser, live_server, email="reviewer@example.com", then="/reviews")
    badge = page.locator("#sidenav #review-badge")
    expect(badge).to_have_text("1")
    page.locator("section.review", has_text="Alpha").locator(
        "button:has-text('Approve')").click()
    expect(badge).to_be_hidden()
    expect(page.locator("#sidenav a[aria-current]")).to_contain_text("Reviews")
