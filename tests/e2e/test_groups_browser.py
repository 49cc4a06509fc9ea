"""A person in Chromium imports a file into a new customer group, looks at it and
sends to it: the send is a bulk task, confirmed and then run by a real RQ worker."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from playwright.sync_api import Browser, expect
from sqlalchemy import func, select

from app.models import Message
from jobs import worker
from tests.e2e import test_alarm_contact_browser as contact_browser
from tests.helpers import PASSWORD
from tests.sending.conftest import make_shop

pytestmark = pytest.mark.browser
served = contact_browser.served  # the fixture: a live server with a root user


def test_import_view_and_send_to_a_group(browser: Browser, served: tuple[str, Flask],
                                         tmp_path: Path) -> None:
    base, app = served
    with app.extensions["db"].unit_of_work() as session:
        shop = make_shop(session, app.extensions["redis"])
        sdk_app_id = shop.app.sdk_app_id
    upload = tmp_path / "customers.csv"
    upload.write_text("phone,name\n13800138000,Ann\n13900139000,<b>Bob</b>\n"
                      "138 0013 8000,Ann again\n+14155550100,Carol\n", encoding="utf-8")

    page = browser.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=email]", "root@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.goto(f"{base}/groups")
    expect(page.locator("#groups")).to_contain_text("No groups yet")
    pool = page.locator("#pool")
    pool.locator("input[name=file]").set_input_files(str(upload))
    pool.locator("input[name=new_name]").fill("Spring <i>fans</i>")
    pool.locator("select[name=sms_type]").select_option("verification")
    pool.locator("button[type=submit]").click()

    expect(page).to_have_url(re.compile(r"/groups/\d+$"))
    expect(page.locator("h1")).to_have_text("Spring <i>fans</i>")  # shown as typed
    expect(page.locator("#flash")).to_contain_text("Added 3 numbers; 1 already there")
    expect(page.locator("#member-rows tbody tr")).to_have_count(3)
    page.fill("input[name=q]", "139")
    page.locator("form[hx-get] button").click()
    expect(page.locator("#member-rows tbody tr")).to_have_count(1)
    expect(page.locator("#member-rows")).to_contain_text("+8613900139000")

    page.click("text=Send to this group")
    page.select_option("select[name=sdk_app_id]", sdk_app_id)
    page.fill("textarea[name=params]", "4321")
    page.click("button:has-text('Make the task')")
    expect(page).to_have_url(re.compile(r"/tasks/\d+"))
    task_id = int(page.url.rsplit("/", 1)[1].split("?")[0])
    main = page.locator("main")
    expect(main).to_contain_text("Group: Spring <i>fans</i>")
    # The international number is a skipped row of this mainland task.
    expect(main).to_contain_text("Mainland messages go to mainland China numbers only")

    page.check("#acknowledge")
    page.click("#confirm-task")
    expect(page.locator("#cancel-task")).to_have_count(0)  # confirmed: no longer cancellable
    with app.app_context():
        assert worker.run(app, burst=True)
    with app.extensions["db"].unit_of_work() as session:
        sent = session.scalar(select(func.count()).select_from(Message)
                              .where(Message.task_id == task_id))
    assert sent == 2
    expect(main).to_contain_text(re.compile(r"\bsent\b", re.I), timeout=15_000)
