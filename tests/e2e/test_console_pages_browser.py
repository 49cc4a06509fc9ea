"""Issue #14 in Chromium over an account with content in it: every top-level and detail
page at five widths (nothing overflows; the landmarks sit where the stored layout
expects them at 390 and 1,366 px), axe-core on each, keyboard focus, toasts, the
dashboard's live tiles, and the stale-page regressions.

One browser context walks all the pages; set SMSOPS_SCREENSHOTS=<dir> to keep a
screenshot of each page at 390 and 1,366 px."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import update

from app.db import Database, utcnow
from app.models import Message
from app.models.sending import DELIVERED, SUBMITTED
from app.services import (
    alarms,
    app_config,
    audience,
    content,
    mute,
    replies,
    rollups,
    tasks,
)
from tests.e2e.test_console_browser import _as, _shot
from tests.e2e.test_console_nav_browser import AXE, TOP_LEVEL, _axe, _fits, _page
from tests.sending.conftest import make_shop

pytestmark = pytest.mark.browser

WIDTHS = (360, 390, 768, 1366, 2560)
LAYOUT = json.loads((Path(__file__).parent / "layout_expectations.json").read_text())
LONG = "Quarterly" * 6 + "Reminder"  # a long word, as people name things


@dataclass(frozen=True)
class Account:
    sdk_app_id: str
    running_task: int
    international_task: int
    group: int
    template: int
    signature: int
    alarm: int

    def pages(self) -> tuple[str, ...]:
        """Every top-level page (the navigation's and the newer ones) and a detail page
        of each kind."""
        return (*TOP_LEVEL, "/tasks?region=mainland", "/tasks?region=international",
                "/stats?region=mainland", "/stats?region=international", "/stats/failures",
                "/stats/receipts", "/stats/countries", "/stats/verification",
                "/messages/replies", "/groups", "/alarms", "/alarms?unacknowledged=1",
                "/configuration", "/contacts", "/security",
                f"/apps/{self.sdk_app_id}/security", f"/apps/{self.sdk_app_id}",
                f"/tasks/{self.running_task}", f"/tasks/{self.international_task}",
                "/tasks/new?region=mainland", f"/groups/{self.group}",
                f"/groups/{self.group}/send", f"/content/templates/{self.template}",
                f"/content/signatures/{self.signature}", f"/alarms?alarm={self.alarm}")


@pytest.fixture
def seed(live_server: str, tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'e2e.db'}")
    yield database
    database.engine.dispose()


def _running_task(shop: object, name: str, template: str, rows: bytes) -> int:
    task, _summary = tasks.create_task(shop.ctx, tasks.Draft(  # type: ignore[attr-defined]
        shop.app.sdk_app_id, shop.templates[template], name=name),  # type: ignore[attr-defined]
        io.BytesIO(rows), "list.csv")
    tasks.confirm(shop.ctx, task.id, acknowledged=True)  # type: ignore[attr-defined]
    tasks.dispatch_step(shop.ctx, shop.limiter, task.id, batch=2)  # type: ignore[attr-defined]
    return task.id


@pytest.fixture
def account(seed: Database, embedded_redis_url: str) -> Account:
    """An application with content, a task sending (half of it handed over), an
    international task waiting, a group, open alarms, messages, a reply, a muted number."""
    with seed.unit_of_work() as s:
        shop = make_shop(s, redis.Redis.from_url(embedded_redis_url))
        c = shop.ctx
        running = _running_task(shop, f"{LONG} <b>sale</b>", "mainland",
                                b"".join(b"1380013%04d,%d\n" % (i, 1000 + i) for i in range(4)))
        waiting, _s = tasks.create_task(c, tasks.Draft(
            shop.app.sdk_app_id, shop.templates["international"], name="Overseas"),
            io.BytesIO(b"+14155550101,123456\n+14155550102,654321\n"), "list.csv")
        group = audience.create_group(c, name=LONG[:36] + " fan", sms_type="marketing")
        audience.add_typed(c, text="13800138000\n13900139000\n+14155550100",
                           group_id=group.id)
        template = content.create_template(c, "international", {
            "name": LONG, "sms_type": "notification", "content": f"{LONG} {{1}}"})
        alarm = None
        for n in range(3):
            alarm = alarms.raise_alarm(c, None, "threshold", period=str(n), ttl_s=60,
                                       app=shop.app, subject=f"Threshold {n} <i>reached</i>",
                                       body=f"{LONG} body", sms="sms")
        assert alarm is not None
        app_config.add_contact(c, shop.app.sdk_app_id, name=f"{LONG[:48]} <b>ops</b>",
                               mobile="+8613900000001", email="ops@example.com",
                               events=["threshold", "captcha"])
        shop.send(["+14155550101", "+14155550102", "+999"])
        replies.receive(c, "+14155550101", "STOP")
        mute.add(c, phone_number="13700137000", signature_id=shop.signatures["mainland"],
                 sms_type="", consent=True)
        c.deferred.clear()  # no worker: the tests move messages themselves
        return Account(shop.app.sdk_app_id, running, waiting.id, group.id, template.id,
                       shop.signatures["mainland"], alarm.id)


# --- every page, every width ---------------------------------------------------------

def _landmarks_where_expected(page: Page, width: int) -> list[str]:
    problems = []
    tolerance = LAYOUT["tolerance"]
    for selector, expected in LAYOUT[str(width)].items():
        node = page.locator(selector).first
        if expected == "hidden":
            if node.is_visible():
                problems.append(f"{selector} visible")
            continue
        box = node.bounding_box() if node.is_visible() else None
        if box is None:
            problems.append(f"{selector} not shown")
            continue
        problems += [f"{selector} {key} {box[key]:.0f} (expected {value})"
                     for key, value in expected.items()
                     if value is not None and abs(box[key] - value) > tolerance]
    return problems


def test_every_page_fits_every_width_and_the_stored_layout(browser: Browser, live_server: str,
                                                           account: Account) -> None:
    page = _page(browser, live_server)
    problems: dict[str, object] = {}
    for path in account.pages():
        page.set_viewport_size({"width": 1366, "height": 800})
        resp = page.goto(f"{live_server}{path}")
        assert resp is not None and resp.status == 200, path
        for width in WIDTHS:  # one load, laid out again at each width
            page.set_viewport_size({"width": width, "height": 800})
            sizes = _fits(page)
            if sizes["scroll"] > sizes["inner"]:
                wide = page.evaluate("""() => [...document.querySelectorAll('main *')]
                    .filter(e => e.getBoundingClientRect().right > innerWidth + 1)
                    .slice(0, 3).map(e => e.tagName + '.' + e.className + '#' + e.id)""")
                problems[f"{width} {path}"] = {**sizes, "widest": wide}
            if width in (390, 1366):
                _shot(page, f"page-{width}-{re.sub(r'[^a-z0-9]+', '-', path)}")
                misplaced = _landmarks_where_expected(page, width)
                if misplaced:
                    problems[f"{width} {path} layout"] = misplaced
    assert not problems, json.dumps(problems, indent=1)


# Pages built from the same template as another in the list (the other region's twin,
# one alarm of the history): axe-core's verdict on those is the same.
TWINS = ("/content/signatures?region=international", "/content/templates?region=international",
         "/tasks?region=international", "/stats?region=mainland", "/alarms?alarm=",
         "/alarms?unacknowledged", "/configuration", "/security")


def test_axe_finds_nothing_serious_on_any_page(browser: Browser, live_server: str,
                                               account: Account) -> None:
    page = _page(browser, live_server)
    links = page.evaluate(
        "[...document.querySelectorAll('#sidenav a')].map(a => a.pathname + a.search)")
    assert set(links) - {"/settings"} <= set(account.pages()) | {"/stats"}, links
    problems = {}
    page.context.add_init_script(path=str(AXE))  # in every page from here on, compiled once
    for path in account.pages():
        if path.startswith(TWINS):
            continue
        page.goto(f"{live_server}{path}")
        # The whole page once (the frame: top bar, navigation, toasts), then the content.
        found = _axe(page, "" if path == "/" else "main")
        if found:
            problems[path] = found
    anonymous = browser.new_context(bypass_csp=True).new_page()
    anonymous.goto(f"{live_server}/login")
    if _axe(anonymous):
        problems["/login"] = _axe(anonymous)
    assert not problems, json.dumps(problems, indent=1)
    # The check itself sees a problem when there is one: a field without a label.
    page.goto(f"{live_server}/")
    page.evaluate("document.querySelector('main').append(document.createElement('input'))")
    assert "label" in {v["id"] for v in _axe(page)}


def test_tables_that_scroll_on_a_phone_take_the_keyboard(browser: Browser, live_server: str,
                                                        account: Account) -> None:
    """Found from outside: at 390 px a wide table scrolls sideways in its card, and axe
    flagged the task's records, the SMS log and the statistics trend (serious:
    scrollable-region-focusable): without a mouse, what was off to the side could not
    be reached. On every page, each table that scrolls is a named keyboard stop (still
    a table); axe agrees on the three pages it flagged."""
    page = _page(browser, live_server)
    page.set_viewport_size({"width": 390, "height": 800})
    problems, scrolling = {}, 0
    for path in account.pages():
        page.goto(f"{live_server}{path}")
        found = page.evaluate("""[...document.querySelectorAll('main table')]
            .filter(t => t.scrollWidth > t.clientWidth + 1)
            .map(t => [t.tabIndex, t.getAttribute('role'), !!t.getAttribute('aria-label')])""")
        scrolling += len(found)
        if any(f != [0, None, True] for f in found):
            problems[path] = found
    assert scrolling and not problems, json.dumps(problems, indent=1)
    page.context.add_init_script(path=str(AXE))
    for path in (f"/tasks/{account.running_task}", "/messages", "/stats"):
        page.goto(f"{live_server}{path}")
        assert not [v for v in _axe(page, "main")
                    if v["id"] == "scrollable-region-focusable"], path


# --- keyboard: every stop shows where the focus is ------------------------------------

def test_keyboard_focus_is_always_visible(browser: Browser, live_server: str,
                                          account: Account) -> None:
    page = _page(browser, live_server)
    problems: dict[str, list[str]] = {}
    for path in ("/", "/tasks/new?region=mainland", f"/groups/{account.group}", "/alarms",
                 "/stats?region=international", f"/apps/{account.sdk_app_id}"):
        page.goto(f"{live_server}{path}")
        reached_main = False
        for _ in range(60):  # the navigation has 30-odd links before the content
            page.keyboard.press("Tab")
            seen = page.evaluate("""() => { const e = document.activeElement;
                if (!e || e === document.body) return null;
                const s = getComputedStyle(e), r = e.getBoundingClientRect();
                return {what: e.tagName + ' ' + (e.textContent || e.name || '').trim().slice(0, 30),
                        ring: (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0)
                              || s.boxShadow !== 'none',
                        shown: r.width > 0 && r.height > 0 && r.bottom > 0 && r.top < innerHeight,
                        main: !!e.closest('main')}; }""")
            if seen is None:
                continue
            reached_main = reached_main or seen["main"]
            if not (seen["ring"] and seen["shown"]):
                problems.setdefault(path, []).append(str(seen))
        if not reached_main:
            problems.setdefault(path, []).append("the keyboard never reached the content")
    assert not problems, json.dumps(problems, indent=1)


# --- toasts ---------------------------------------------------------------------------

def test_toasts_on_a_full_page_and_after_an_htmx_swap(browser: Browser, live_server: str,
                                                      seed: Database) -> None:
    with seed.unit_of_work() as s:
        template = content.create_template(_as(s, "root@example.com"), "international", {
            "name": "Alpha <b>one</b>", "sms_type": "notification", "content": "Alpha {1}"})
        tid = template.id
    # A full page: creating a group flashes on the group's page.
    page = _page(browser, live_server, then="/groups")
    page.fill("#new-group input[name=name]", "Fans")
    page.click("#new-group button[type=submit]")
    toast = page.locator("#flash .toast")
    expect(toast).to_have_count(1)
    expect(toast).to_contain_text("Group “Fans” created.")
    expect(toast.locator(".toast-icon")).to_have_text("✓")  # a shape, not only a colour
    _shot(page, "toast-1366")
    assert page.locator("#flash").get_attribute("role") == "status"
    # The keyboard reaches its dismiss button early, sees it, and closes it.
    for _ in range(8):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('toast-close')"):
            break
    assert page.evaluate("document.activeElement.classList.contains('toast-close')")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.keyboard.press("Enter")
    expect(toast).to_have_count(0)
    assert page.evaluate("document.activeElement.id") == "main"  # focus is not lost
    # A form saved in place (htmx follows its redirect to the page's part): told too.
    page.goto(f"{live_server}/settings")
    page.evaluate("window.__stillHere = true")
    page.click("#settings button[type=submit]")
    expect(toast).to_contain_text("Settings saved.")
    assert page.evaluate("window.__stillHere === true")
    # After an htmx swap: a review decided in place says so in a toast, no reload.
    reviewer = _page(browser, live_server, email="reviewer@example.com", then="/reviews")
    reviewer.evaluate("window.__stillHere = true;"
                      "document.getElementById('flash').dataset.noticeMs = '600'")
    card = reviewer.locator(f"#review-template-{tid}")
    card.locator("button:has-text('Approve')").click()
    expect(card.locator(".status")).to_have_text("Effective")
    notice = reviewer.locator("#flash .toast-notice")
    expect(notice).to_contain_text("Template “Alpha <b>one</b>”: Effective.")  # as typed
    expect(notice).to_have_count(0, timeout=5000)  # a notice leaves by itself
    assert reviewer.evaluate("window.__stillHere === true")
    # A failed htmx request is an error toast: role=alert, stays until dismissed (Esc).
    reviewer.evaluate("htmx.ajax('GET', '/tasks/999999/progress', {swap: 'none'})")
    error = reviewer.locator("#flash .toast-error")
    expect(error).to_have_attribute("role", "alert")
    reviewer.set_viewport_size({"width": 390, "height": 800})
    _shot(reviewer, "toast-error-390")
    expect(error).to_contain_text("No task 999999")
    expect(error.locator(".toast-label")).to_have_text("Error:")
    reviewer.wait_for_timeout(1000)  # longer than a notice's 600 ms here
    expect(error).to_have_count(1)
    reviewer.keyboard.press("Escape")
    expect(error).to_have_count(0)


# --- the dashboard's live tiles --------------------------------------------------------

def test_dashboard_tiles_follow_a_running_task(browser: Browser, live_server: str,
                                               account: Account, seed: Database) -> None:
    page = _page(browser, live_server)
    page.evaluate("window.__stillHere = true")
    tile = page.locator("#running-tasks")
    bar = tile.locator(f"a[href='/tasks/{account.running_task}'] ~ progress")
    expect(bar).to_have_attribute("value", "0")
    expect(page.locator("[data-figure='alarms-open']")).to_have_text("3")
    expect(page.locator("#open-alarms li a").first).to_have_attribute(
        "href", f"/alarms?alarm={account.alarm}")
    with seed.unit_of_work() as s:  # the carrier takes the first batch
        s.execute(update(Message).where(Message.task_id == account.running_task)
                  .values(status=SUBMITTED, submitted_at=utcnow()))
        rollups.rebuild(s)  # moved by hand: the figures counted again
    expect(bar).to_have_attribute("value", "50", timeout=8000)
    with seed.unit_of_work() as s:  # stopped (from Slack, say): off the tile
        tasks.stop(_as(s, "root@example.com"), account.running_task)
    expect(tile.locator("li")).to_have_count(0, timeout=8000)
    expect(tile).to_contain_text("No bulk task is sending")
    assert page.evaluate("window.__stillHere === true")


# --- no stale part of a page after an htmx action ---------------------------------------

def test_alarm_filter_updates_the_heading_count(browser: Browser, live_server: str,
                                                account: Account) -> None:
    page = _page(browser, live_server, then="/alarms")
    count = page.locator("h1 .muted")
    expect(count).to_have_text(re.compile(r"^[1-9]\d*$"))  # raised and review alarms
    page.evaluate("window.__stillHere = true")
    page.select_option("#alarm-filters select[name=event]", "limit")
    page.click("#alarm-filters button[type=submit]")
    expect(page.locator("#alarm-rows")).to_contain_text("No alarms match these filters")
    expect(count).to_have_text("0")
    # Unacknowledged only: the three threshold alarms (review results are only told).
    page.select_option("#alarm-filters select[name=event]", "")
    page.check("#alarm-filters input[name=unacknowledged]")
    page.click("#alarm-filters button[type=submit]")
    expect(count).to_have_text("3")
    expect(page.locator("#alarm-rows tbody tr[id^=alarm-]")).to_have_count(3)
    assert "unacknowledged=1" in page.url  # a link to this view can be kept and shared
    assert page.evaluate("window.__stillHere === true")


def test_alarm_contacts_page_adds_in_place(browser: Browser, live_server: str,
                                           account: Account) -> None:
    page = _page(browser, live_server)
    page.locator("#sidenav a", has_text="Alarm contacts").click()
    expect(page).to_have_url(f"{live_server}/apps/{account.sdk_app_id}/contacts")
    expect(page.locator("#sidenav a[aria-current]")).to_have_text("Alarm contacts")
    expect(page.locator("#contacts h2 .muted")).to_have_text("1 / 5")
    page.evaluate("window.__stillHere = true")
    form = page.locator("#contacts form:has(button:has-text('Add contact'))")
    form.locator("input[name=name]").fill("Night <i>shift</i>")
    form.locator("input[name=email]").fill("night@example.com")
    form.locator("button[type=submit]").click()
    expect(page.locator("#contacts .notice")).to_contain_text("Alarm contact added")
    expect(page.locator("#contacts h2 .muted")).to_have_text("2 / 5")  # not stale
    expect(page.locator("#contacts summary").nth(1)).to_contain_text("Night <i>shift</i>")
    assert page.evaluate("window.__stillHere === true")


def test_task_page_follows_the_task_to_its_receipts(browser: Browser, live_server: str,
                                                    account: Account,
                                                    seed: Database) -> None:
    page = _page(browser, live_server, then=f"/tasks/{account.running_task}")
    expect(page.locator("#stop-task")).to_be_visible()
    records = page.locator("#task-records tbody .status")
    # The messages, then the rows none was made for yet (found from outside: "any"
    # left those out).
    expect(records).to_have_text(["accepted", "accepted", "pending", "pending"])
    page.evaluate("window.__stillHere = true")
    with seed.unit_of_work() as s:  # stopped elsewhere (Slack, the API, another tab)
        tasks.stop(_as(s, "root@example.com"), account.running_task)
        s.execute(update(Message).where(Message.task_id == account.running_task)
                  .values(status=SUBMITTED, submitted_at=utcnow()))
        rollups.rebuild(s)  # moved by hand: the figures counted again
    expect(page.locator("#task-status")).to_have_text("stopped", timeout=8000)
    expect(page.locator("#stop-task")).to_have_count(0)  # no Stop on a stopped task
    expect(records).to_have_text(["submitted", "submitted", "unsent", "unsent"],
                                 timeout=10_000)
    with seed.unit_of_work() as s:  # the receipts come in after the task ended
        s.execute(update(Message).where(Message.task_id == account.running_task)
                  .values(status=DELIVERED, receipt_at=utcnow()))
        rollups.rebuild(s)
    expect(page.locator("#receipts [data-figure=delivered]")).to_have_text("2", timeout=15_000)
    expect(page.locator("#fig-delivered")).to_have_text("2")
    expect(records).to_have_text(["delivered", "delivered", "unsent", "unsent"])
    assert page.evaluate("window.__stillHere === true")


def test_statistics_tabs_keep_the_period_chosen_in_place(browser: Browser, live_server: str,
                                                         account: Account) -> None:
    page = _page(browser, live_server, then="/stats?region=international")
    page.evaluate("window.__stillHere = true")
    page.select_option("#stats-filter select[name=period]", "7d")
    expect(page.locator(".stats-body")).to_have_attribute("data-period", "7d")
    tab = page.locator("nav[aria-label='Statistics pages'] a", has_text="Failure analysis")
    expect(tab).to_have_attribute("href", re.compile(r"period=7d"))
    region = page.locator("nav[aria-label=Region] a", has_text="Mainland China")
    expect(region).to_have_attribute("href", re.compile(r"period=7d"))
    tab.click()
    expect(page.locator("#stats-filter select[name=period]")).to_have_value("7d")
    assert page.evaluate("window.__stillHere === true") is False  # a new page, same period


def test_removing_numbers_keeps_the_whole_page(browser: Browser, live_server: str,
                                               account: Account) -> None:
    page = _page(browser, live_server, then=f"/groups/{account.group}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#member-rows tbody input[type=checkbox]").first.check()
    page.click("button:has-text('Remove selected')")
    expect(page.locator("#flash .toast")).to_contain_text("Removed 1 number")
    expect(page.locator("#sidenav")).to_be_visible()
    expect(page.locator("h1")).to_be_visible()
    expect(page.locator("#member-rows tbody tr")).to_have_count(2)


def test_a_refused_form_keeps_the_page_s_address(browser: Browser, live_server: str,
                                                 account: Account) -> None:
    """Found from outside: Confirm without the box ticked, or a group import with a bad
    line, left the browser on the form's POST-only address (/tasks/12/confirm,
    /groups/numbers): a reload posted again, opening it was a 405. The form is answered
    in place; the address stays the page's."""
    page = _page(browser, live_server)
    task = f"{live_server}/tasks/{account.international_task}"
    page.goto(task)
    page.click("#confirm-task")
    page.wait_for_selector("#confirm-step .error")
    assert "Tick the box" in page.inner_text("#confirm-step")
    assert page.url == task
    page.goto(f"{live_server}/groups")
    page.fill("#pool textarea[name=numbers]", "bad\n13800000001")
    page.click("#pool button[type=submit]")
    page.wait_for_selector("#pool .error")
    assert page.url == f"{live_server}/groups"
    assert page.input_value("#pool textarea[name=numbers]") == "bad\n13800000001"
