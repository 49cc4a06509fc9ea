"""The SMS log's number prefix search, CSV export, Replies tab and live rows."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import Message
from app.services import replies
from tests.sending.conftest import Shop
from tests.web.conftest import Client, soup, text_of


def test_prefix_search_export_and_live_rows(root: Client, shop: Shop,
                                            session: Session) -> None:
    shop.send(["+14155550101", "+14155550102", "+442071838750"])
    session.execute(update(Message).where(Message.phone_number == "+14155550102")
                    .values(content="=SUM(A1)", status="delivered"))
    session.commit()
    assert "2 message(s)" in text_of(root.get("/messages?number=%2B1415"), "p.muted")
    assert "2 message(s)" in text_of(root.get("/messages?number=1415"), "p.muted")
    assert "1 message(s)" in text_of(root.get("/messages?number=%2B44"), "p.muted")
    assert "0 message(s)" in text_of(root.get("/messages?number=%25"), "p.muted")  # no LIKE
    exported = root.get("/messages?number=%2B1415&export=csv")
    assert exported.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(exported.data.decode("utf-8-sig"))))
    assert rows[0][0] == "created_at" and len(rows) == 3
    assert "'=SUM(A1)" in [r[5] for r in rows]
    assert root.get("/messages?period=forever&export=csv").status_code == 400

    page = soup(root.get("/messages"))
    poller = page.select_one("#log-live")
    assert poller is not None
    ids = str(poller["hx-get"]).split("ids=")[1].replace("%2C", ",").split(",")
    assert len(ids) == 2  # the two accepted rows are watched; the delivered one is not
    mid = int(ids[0])
    session.execute(update(Message).where(Message.id == mid).values(status="delivered"))
    session.commit()
    again = soup(root.get(f"/messages/live?ids={mid}", htmx=True))
    tr = again.find("tr", id=f"msg-{mid}")  # CSS selectors skip <template> content
    assert tr is not None and tr["data-status"] == "delivered"
    stopped = again.select_one("#log-live")
    assert stopped is not None and not stopped.get("hx-get")  # nothing left to watch


def test_replies_tab(root: Client, shop: Shop, session: Session) -> None:
    shop.send(["+14155550101"])
    session.execute(update(Message).values(status="submitted"))
    replies.receive(shop.ctx, "+14155550101", "STOP")
    replies.receive(shop.ctx, "+442071838750", "<b>hi</b>")
    session.commit()
    page = root.get("/messages/replies")
    rows = soup(page).select("table.replies tbody tr")
    assert len(rows) == 2
    assert "&lt;b&gt;hi&lt;/b&gt;" in page.get_data(as_text=True)
    assert "unsubscribed" in rows[1].get_text()
    only = root.get("/messages/replies?number=%2B44", htmx=True)
    assert len(soup(only).select("table.replies tbody tr")) == 1
    assert session.scalar(select(Message.id)) is not None


def test_filters_by_template_signature_and_country(root: Client, shop: Shop,
                                                   session: Session) -> None:
    shop.send(["+14155550101", "+442071838750"])  # international template, US and GB
    shop.send(["13800000001"], template="mainland")
    session.commit()
    intl, mainland = shop.templates["international"], shop.templates["mainland"]

    def count(query: str) -> str:
        return text_of(root.get(f"/messages?{query}", htmx=True), "p.muted")

    assert "3 message(s)" in count("")
    assert "2 message(s)" in count(f"template={intl}")
    assert "1 message(s)" in count(f"template={mainland}")
    sig = session.scalar(select(Message.signature_id).where(Message.region == "mainland"))
    assert "1 message(s)" in count(f"signature={sig}")
    assert "1 message(s)" in count("country=gb")
    assert "0 message(s)" in count("country=FR")
    page = root.get(f"/messages?template={intl}&country=US")
    assert "1 message(s)" in text_of(page, "p.muted")
    # The filter is kept by the export link and the form.
    link = soup(page).select_one("#export-csv")
    assert link is not None and f"template={intl}" in str(link["href"])
    assert "country=US" in str(link["href"])
    bad = root.get("/messages?country=U1")
    assert bad.status_code == 400 and "two-letter country code" in bad.get_data(as_text=True)
    assert root.get("/messages?template=abc").status_code == 400


def test_the_count_stops_past_the_cap_and_paging_goes_on(shop: Shop, session: Session,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from app.services import sending

    shop.send([f"+1415555{n:04d}" for n in range(101, 111)])  # 10 messages
    session.commit()
    monkeypatch.setattr(sending, "LOG_COUNT_CAP", 3)

    def page(n: int) -> tuple[list[str], int]:
        rows, total = sending.log(shop.ctx, sending.LogFilter(page=n, page_size=2))
        return [m.phone_number for m, _app in rows], total

    first, total = page(1)
    assert first == ["+14155550110", "+14155550109"]  # newest first
    cap = sending.count_cap(sending.LogFilter(page=1, page_size=2))
    assert total == cap + 1 == 5  # counted just past the cap (the next page): "more than"
    deep, total = page(4)  # rows 7-8: counted on past them, so the pager goes on
    assert deep == ["+14155550104", "+14155550103"]
    assert total == 10
    assert page(5) == (["+14155550102", "+14155550101"], 10)


def test_a_number_search_finds_older_matches_past_the_newest_rows(
        shop: Shop, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.services import sending

    shop.send(["+14155550101", "+14155550102", "+14155550103"])
    shop.send([f"+1212555{n:04d}" for n in range(1, 6)])  # newer, other numbers
    session.commit()
    want = ["+14155550103", "+14155550102"]

    def search(page: int) -> list[str]:
        rows, total = sending.log(shop.ctx, sending.LogFilter(phone_number="+1415555",
                                                              page=page, page_size=2))
        assert total == 3
        return [m.phone_number for m, _app in rows]

    assert search(1) == want
    monkeypatch.setattr(sending, "RECENT_IDS", 4)  # the newest rows hold one match only
    assert search(1) == want
    assert search(2) == ["+14155550101"]


@pytest.mark.parametrize("recent", [100_000, 3])
def test_a_number_search_counts_and_pages_like_the_unfiltered_log(
        shop: Shop, session: Session, monkeypatch: pytest.MonkeyPatch, recent: int) -> None:
    """Whether the newest rows hold more than the cap (counted there) or not (counted
    from the number index over the period), the count stops just past the cap and
    every page holds the same rows as the whole list cut in pages."""
    from app.services import sending

    shop.send([f"+1415555{n:04d}" for n in range(101, 111)])  # 10 matches
    shop.send(["+12125550001", "+12125550002"])  # newest, no match
    session.commit()
    monkeypatch.setattr(sending, "LOG_COUNT_CAP", 3)
    monkeypatch.setattr(sending, "RECENT_IDS", recent)

    def page(n: int, size: int = 2) -> tuple[list[str], int]:
        rows, total = sending.log(shop.ctx, sending.LogFilter(
            phone_number="+1415555", page=n, page_size=size))
        return [m.phone_number for m, _app in rows], total

    assert page(1) == (["+14155550110", "+14155550109"], 5)  # "more than 4"
    assert page(4) == (["+14155550104", "+14155550103"], 10)
    assert page(5) == (["+14155550102", "+14155550101"], 10)
    assert page(6) == ([], 10)
    assert page(1, 20) == ([f"+1415555{n:04d}" for n in range(110, 100, -1)], 10)


def test_the_export_gives_times_in_the_accounts_zone(root: Client, shop: Shop,
                                                      session: Session) -> None:
    """Found from outside: the page and its 'today' are in the account's zone, the CSV
    gave UTC, so an export of today's messages looked like yesterday's."""
    from datetime import UTC, datetime

    from app.models import Account

    shop.send(["+14155550101"])
    session.execute(update(Message).values(
        created_at=datetime(2026, 12, 7, 17, 22, 11, tzinfo=UTC), status="delivered",
        submitted_at=datetime(2026, 12, 7, 17, 22, 12, tzinfo=UTC)))
    account = session.get(Account, shop.app.account_id)
    account.timezone = "Asia/Shanghai"  # type: ignore[union-attr]
    session.commit()
    rows = list(csv.DictReader(io.StringIO(root.get(
        "/messages?period=30d&export=csv").data.decode("utf-8-sig"))))
    assert [r["created_at"] for r in rows] == ["2026-12-08T01:22:11+08:00"]
    assert rows[0]["submitted_at"] == "2026-12-08T01:22:12+08:00"


def test_the_log_filters_by_region_and_a_custom_range(root: Client, shop: Shop,
                                                       session: Session) -> None:
    """Found from outside: SPEC.md §7's log had neither a region split nor a custom
    range, and content named alike in both regions was listed twice, indistinguishable."""
    from datetime import UTC, datetime

    shop.send(["+14155550101"])
    shop.send(["+8613800138000"], template="mainland", params=["1234"])
    session.execute(update(Message).values(created_at=datetime(2026, 11, 3, 4, 0, tzinfo=UTC)))
    shop.send(["+14155550102"])  # today
    session.commit()
    page = root.get("/messages?period=custom&start=2026-11-01&end=2026-11-05&region=mainland")
    rows = soup(page).select("#message-rows tbody tr")
    assert len(rows) == 1 and "+8613800138000" in rows[0].get_text()
    both = root.get("/messages?period=custom&start=2026-11-03&end=2026-11-03")
    assert len(soup(both).select("#message-rows tbody tr")) == 2
    assert len(soup(root.get("/messages?period=today&region=international")).select(
        "#message-rows tbody tr")) == 1
    assert root.get("/messages?period=custom&start=2026-11-05&end=2026-11-01").status_code \
        == 400
    assert root.get("/messages?region=moon").status_code == 400
    names = [o.get_text() for o in soup(root.get("/messages")).select(
        "select[name=template] option")]
    assert any(n.endswith("(mainland)") for n in names) and any(
        n.endswith("(international)") for n in names)
