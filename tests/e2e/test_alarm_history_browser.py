"""A person in Chromium reads the alarm history: filters it (htmx), sees each
delivery's result (delivered by a real RQ worker) and acknowledges an alarm."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from app.models import User
from app.services import alarms, app_config, apps
from app.services.accounts import actor_for
from app.services.context import Ctx, Settings
from jobs import worker
from tests.e2e import test_alarm_contact_browser as contact_browser
from tests.helpers import PASSWORD

pytestmark = pytest.mark.browser
served = contact_browser.served  # the fixture: a live server with a root user


def test_alarm_history(browser: Browser, served: tuple[str, Flask]) -> None:
    base, app = served
    with app.extensions["db"].unit_of_work() as session:
        root = session.scalars(select(User)).one()
        c = Ctx(session, actor_for(root), Settings.from_config(app.config))
        shop, _key = apps.create_app(c, name="Shop <b>")
        other, _key = apps.create_app(c, name="Other")
        shop_sid, other_sid = shop.sdk_app_id, other.sdk_app_id
        today = f"{datetime.now(ZoneInfo(root.account.timezone)):%Y-%m-%d}"
        app_config.add_contact(c, shop.sdk_app_id, name="Ops", email="ops@example.com",
                               events=["task"])
        conn = app.extensions["redis"]
        alarms.raise_task_event(c, conn, shop, 7, "failed", "The carrier refused the batch")
        alarms.raise_task_event(c, conn, shop, 8, "stopped")
        deferred = list(c.deferred)
    from app.queue import enqueue_deferred

    enqueue_deferred(app.extensions["redis"], deferred)
    assert worker.run(app, burst=True)

    page = browser.new_page()
    page.goto(f"{base}/login")
    page.fill("input[name=email]", "root@example.com")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(r"/$"))  # the dashboard
    page.goto(f"{base}/alarms")
    rows = page.locator("#alarm-rows tbody tr[id^=alarm-]")
    expect(rows).to_have_count(2)
    expect(page.locator("#alarm-rows")).to_contain_text("Shop <b>")  # shown as typed
    expect(page.locator("#alarm-rows")).to_contain_text("email → ops@example.com: sent")

    page.select_option("#alarm-filters select[name=app]", label=f"Other ({other_sid})")
    page.click("#alarm-filters button[type=submit]")
    expect(rows).to_have_count(0)
    page.select_option("#alarm-filters select[name=app]", label=f"Shop <b> ({shop_sid})")
    page.select_option("#alarm-filters select[name=event]", "task_failed")
    page.fill("#alarm-filters input[name=since]", today)  # a day in the account's zone
    page.click("#alarm-filters button[type=submit]")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"event=task_failed"))
    expect(rows.first).to_contain_text("bulk task #7 failed")

    rows.first.locator("button", has_text="Acknowledge").click()
    seven = page.locator("#alarm-rows tbody tr", has_text="bulk task #7 failed")
    expect(seven.locator(".ack")).to_contain_text("root@example.com")
    expect(page.locator("#flash")).to_contain_text("acknowledged")
