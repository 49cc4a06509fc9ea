"""The statistics pages: figures, htmx fragments, CSV exports, rights, bad input."""

from __future__ import annotations

import csv
import io
import json

import pytest
from flask import Flask
from sqlalchemy import insert
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import Message
from app.services import rollups
from tests.helpers import make_user
from tests.sending.conftest import Shop
from tests.web.conftest import Client, soup, text_of

PAGES = ["/stats", "/stats/failures", "/stats/receipts", "/stats/countries",
         "/stats/verification"]


@pytest.fixture
def traffic(shop: Shop, session: Session) -> Shop:
    shop.send(["+14155550101", "+14155550102", "+442071838750", "nope"])
    now = utcnow()
    rows = [{"account_id": shop.app.account_id, "app_id": shop.app.id, "serial_no": f"s{n}",
             "request_id": "r", "region": "international", "phone_number": "+14155550109",
             "iso_code": "US", "sms_type": "notification", "content": "x", "fee": 1,
             "status": status, "error_code": code, "carrier_code": carrier,
             "created_at": now, "receipt_at": now if carrier else None}
            for n, (status, code, carrier) in enumerate([
                ("rejected", "=HYPERLINK(\"http://x\")", None),
                ("failed", "FailedOperation.Undelivered", "@SUM(1)"),
                ("delivered", None, "DELIVRD")])]
    session.execute(insert(Message), rows)
    rollups.count_new(session, rows)
    session.commit()
    return shop


def _csv(resp: object) -> list[list[str]]:
    return list(csv.reader(io.StringIO(resp.get_data(as_text=True))))  # type: ignore[attr-defined]


def test_overview_figures_chart_table_and_fragment(root: Client, traffic: Shop) -> None:
    page = root.get("/stats?region=international")
    assert page.status_code == 200
    assert text_of(page, "#total-requests") == "7"  # 4 sent + 3 recorded
    assert text_of(page, "#total-success") == "2"  # the failed and the delivered one
    assert soup(page).select_one("#trend-chart svg") is not None
    assert len(soup(page).select("#trend-table tbody tr")) == 24  # hourly for today
    week = root.get("/stats?region=international&period=7d", htmx=True)
    assert "<html" not in week.get_data(as_text=True)
    assert len(soup(week).select("#trend-table tbody tr")) == 7
    assert "<script" not in week.get_data(as_text=True)
    assert text_of(root.get("/stats?region=mainland"), "#total-requests") == "0"


def test_every_page_answers_and_exports_neutralised_csv(root: Client, traffic: Shop) -> None:
    for url in PAGES:
        resp = root.get(f"{url}?region=international")
        assert resp.status_code == 200, url
        assert soup(resp).select_one("#export-csv") is not None
        exported = root.get(f"{url}?region=international&export=csv")
        assert exported.status_code == 200 and exported.mimetype == "text/csv"
        for row in _csv(exported):
            assert not any(cell[:1] in ("=", "+", "-", "@") for cell in row), (url, row)
    failures = _csv(root.get("/stats/failures?region=international&export=csv"))
    assert [r[0] for r in failures if "HYPERLINK" in r[0]] == ["'=HYPERLINK(\"http://x\")"]
    receipts = _csv(root.get("/stats/receipts?region=international&export=csv"))
    assert any(r[1] == "'@SUM(1)" for r in receipts)
    page = root.get("/stats/failures?region=international")
    assert "=HYPERLINK(&#34;http://x&#34;)" in page.get_data(as_text=True) or \
        "=HYPERLINK(&quot;http://x&quot;)" in page.get_data(as_text=True)  # escaped
    countries = root.get("/stats/countries")
    assert soup(countries).select_one("#country-chart svg") is not None
    assert {r.select("td")[0].get_text(" ").split()[0]
            for r in soup(countries).select("#countries-table tbody tr")} == {"US", "GB", "Unknown"}


def test_bad_filters_are_clear_errors(root: Client, traffic: Shop) -> None:
    for query in ("period=forever", "period=custom&start=2026-02-30", "signature=abc",
                  "country=%3Cb%3E", "region=mars&period=custom&start=x"):
        resp = root.get(f"/stats?{query}")
        assert resp.status_code == 400, query
        assert soup(resp).select_one("p.error") is not None
        frag = root.get(f"/stats?{query}", htmx=True)
        assert frag.status_code == 200 and soup(frag).select_one("p.error") is not None
    assert root.get("/stats?period=forever&export=csv").mimetype == "text/html"
    for bad in ("x", "0", "-1", "9999999"):
        resp = root.get(f"/stats/verification?page={bad}")
        assert resp.status_code == 400 and soup(resp).select_one("p.error") is not None


def test_verification_page_shows_one_page_of_hours(root: Client, traffic: Shop) -> None:
    page = root.get("/stats/verification?region=international&period=7d")
    assert page.status_code == 200
    rows = soup(page).select("#verification-table tbody tr")
    assert rows and len(rows) <= 100 and "No verification" not in rows[0].get_text()
    past = root.get("/stats/verification?region=international&period=7d&page=2")
    assert "No verification" in text_of(past, "#verification-table tbody")


def test_only_users_allowed_statistics_see_them(app: Flask, session: Session,
                                                traffic: Shop) -> None:
    make_user(session, "ro@example.com", policies=[json.dumps({"version": "2.0", "statement": [
        {"effect": "allow", "action": ["sms:DescribeAppList"], "resource": ["sms:app/*"]}]})])
    session.commit()
    other = Client(app.test_client())
    other.login("ro@example.com")
    for url in PAGES:
        assert other.get(url).status_code == 403, url
