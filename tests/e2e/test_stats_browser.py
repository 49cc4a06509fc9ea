"""The statistics overview in Chromium: change the period, the chart and the table
follow (an htmx swap, no reload), and nothing is refused by the page's CSP."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from app.db import Database, utcnow
from app.models import Message, User
from app.services import apps, rollups
from app.services.accounts import actor_for
from app.services.context import Ctx
from tests.e2e.test_apps_browser import _login

pytestmark = pytest.mark.browser


def test_overview_period_change_redraws_chart_and_table(browser: Browser, live_server: str,
                                                        tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'e2e.db'}")
    with database.unit_of_work() as s:
        root = s.query(User).filter_by(email="root@example.com").one()
        app, _ = apps.create_app(Ctx(s, actor_for(root)), name="Shop")
        now = utcnow()
        rows = [{"account_id": app.account_id, "app_id": app.id, "serial_no": f"s{n}",
                 "request_id": "r", "region": "international", "phone_number": "+14155550101",
                 "iso_code": "US", "content": "x", "fee": 1,
                 "status": "delivered" if n % 2 else "rejected",
                 "error_code": None if n % 2 else "FailedOperation.CountryNotAllowed",
                 "receipt_at": now if n % 2 else None,
                 "created_at": now - timedelta(days=0 if n < 3 else 3)} for n in range(8)]
        s.execute(Message.__table__.insert(), rows)
        rollups.count_new(s, rows)
    database.engine.dispose()

    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    _login(page, live_server, "root@example.com")
    page.goto(f"{live_server}/stats?region=international")
    expect(page.locator("#total-requests")).to_have_text("3")
    expect(page.locator("#trend-table tbody tr")).to_have_count(24)
    chart = page.locator("#trend-chart svg")
    expect(chart).to_be_visible()
    bars_today = page.locator("#trend-chart svg .bar").count()
    page.select_option("select[name=period]", "7d")
    expect(page.locator("#total-requests")).to_have_text("8")
    expect(page.locator("#trend-table tbody tr")).to_have_count(7)
    expect(page).to_have_url(re.compile(r"period=7d"))
    expect(page.locator("#trend-chart svg")).to_be_visible()
    assert page.locator("#trend-chart svg .bar").count() != bars_today  # redrawn by day
    assert "By day" in page.locator("#trend-table caption").inner_text()
    assert problems == []
