"""Issue #10 in Chromium: create a task from a CSV, see the row errors, confirm,
watch the progress reach *sent* (htmx polling), open the details."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import redis
from playwright.sync_api import Browser, expect

from app import create_app
from app.db import Database
from jobs import worker
from tests.e2e.test_apps_browser import _login
from tests.sending.conftest import make_shop

pytestmark = pytest.mark.browser


def test_create_errors_confirm_progress_details(browser: Browser, live_server: str,
                                                tmp_path: Path,
                                                embedded_redis_url: str) -> None:
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    database = Database(url)
    with database.unit_of_work() as s:
        template_id = make_shop(s, redis.Redis.from_url(embedded_redis_url)).templates["mainland"]
    database.engine.dispose()
    page = browser.new_page()
    page.on("dialog", lambda dialog: dialog.accept())
    _login(page, live_server, "root@example.com")
    page.goto(f"{live_server}/tasks?region=mainland")
    page.click("text=New task")
    page.fill("input[name=name]", "Spring sale")
    page.select_option("select[name=template_id]", value=str(template_id))
    page.set_input_files("input[name=file]", files=[{
        "name": "list.csv", "mimeType": "text/csv",
        "buffer": b"phone,code\n13900000001,1234\n13800138000,5678\n12345,1234\n"}])
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/tasks/\d+$"))
    expect(page.locator("#row-errors h2")).to_have_text(
        "File: 3 row(s), 2 valid, 1 with errors")
    expect(page.locator("#row-errors td").nth(0)).to_have_text("4")
    expect(page.locator("#pf-valid")).to_have_text("2")
    page.click("#confirm-task")  # without the box ticked: refused beside it
    expect(page.locator("#confirm-step .error")).to_contain_text("Tick the box")
    page.check("#acknowledge")
    page.click("#confirm-task")
    expect(page.locator("#task-status")).to_have_text("sending")
    app = create_app({"DATABASE_URL": url, "REDIS_URL": embedded_redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "e2e",
                      "SIMULATOR_RECEIPT_DELAY_S": 0})
    try:
        assert worker.run(app, burst=True)  # the worker sends it; the page polls
    finally:
        app.extensions["db"].engine.dispose()
    expect(page.locator("#task-status")).to_have_text("sent", timeout=15_000)
    expect(page.locator("#fig-delivered")).to_have_text("2")
    page.reload()
    expect(page.locator("#task-records")).to_contain_text("+8613900000001")
    expect(page.locator("#receipts")).to_contain_text("100.0%")
    page.goto(f"{live_server}/tasks?region=mainland")
    expect(page.locator("#task-list")).to_contain_text("Spring sale")
    expect(page.locator("#task-list")).to_contain_text("100%")


def test_a_long_upload_shows_its_progress_and_a_refusal_in_place(
        browser: Browser, live_server: str, tmp_path: Path, embedded_redis_url: str) -> None:
    """Issue #14, long operations show progress: the task file's upload, then the check
    of its rows; a refused file answers beside the field without reloading the page."""
    database = Database(f"sqlite:///{tmp_path / 'e2e.db'}")
    with database.unit_of_work() as s:
        template_id = make_shop(s, redis.Redis.from_url(embedded_redis_url)).templates["mainland"]
    database.engine.dispose()
    page = browser.new_page()
    _login(page, live_server, "root@example.com")
    page.goto(f"{live_server}/tasks/new?region=mainland")
    page.evaluate("""() => { window.__stillHere = true; window.__seen = [];
        new MutationObserver(() => {
            const state = document.querySelector('#task-form .upload-state');
            if (state && !state.hidden) window.__seen.push(state.textContent.trim());
        }).observe(document.body, {subtree: true, childList: true, attributes: true,
                                   characterData: true}); }""")
    page.select_option("select[name=template_id]", value=str(template_id))
    rows = b"".join(b"1390000%04d,%d\n" % (n % 10_000, n) for n in range(50_000))
    page.set_input_files("input[name=file]", files=[{
        "name": "list.csv", "mimeType": "text/csv", "buffer": rows + b"\xff\xfe,1\n"}])
    page.click("#task-form button[type=submit]")
    expect(page.locator("#file-error")).to_contain_text("neither UTF-8 nor Chinese", timeout=15_000)
    assert page.evaluate("window.__stillHere === true")  # answered in place
    seen = page.evaluate("window.__seen")
    assert any("checking" in s for s in seen), seen
    expect(page.locator("#task-form .upload-state")).to_be_hidden()  # a fresh form
    expect(page.locator("select[name=template_id]")).to_have_value(str(template_id))
