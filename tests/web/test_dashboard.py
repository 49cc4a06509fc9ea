"""Issue #14: the overview dashboard (the landing page) and its figures."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import Message
from app.models.sending import DELIVERED, FAILED, SUBMITTED
from app.services import console, packages, rollups
from tests.helpers import doc, make_user
from tests.sending.conftest import Shop
from tests.web.conftest import Client, soup, text_of


def _figure(resp: object, name: str) -> str:
    node = soup(resp).select_one(f"[data-figure='{name}']")  # type: ignore[arg-type]
    assert node is not None, name
    return " ".join(node.get_text(" ").split())


def test_figures_after_a_few_sends(root: Client, shop: Shop, session: Session) -> None:
    shop.send(["+14155550101", "+14155550102", "+14155550103"])
    shop.send(["+999"])  # refused by a check: a request, never a success
    ids = session.scalars(select(Message.id).where(Message.error_code.is_(None))
                          .order_by(Message.id)).all()
    session.execute(update(Message).where(Message.id == ids[0])
                    .values(status=DELIVERED, fee=2, submitted_at=utcnow()))
    session.execute(update(Message).where(Message.id == ids[1])
                    .values(status=SUBMITTED, fee=1, submitted_at=utcnow()))
    session.execute(update(Message).where(Message.id == ids[2])  # the carrier refused it
                    .values(status=FAILED, fee=1, submitted_at=utcnow()))
    rollups.rebuild(session)  # the rows were moved by hand: count them again
    session.commit()
    page = root.get("/")
    assert _figure(page, "international-requests") == "4"
    assert _figure(page, "international-successes") == "2"
    assert _figure(page, "international-billed") == "3"
    assert _figure(page, "international-rate") == "50.0%"
    assert _figure(page, "mainland-requests") == "0"
    assert _figure(page, "mainland-rate") == "\u2013"  # nothing sent: a dash, not 0 %
    # Each figure links to its page: the region's statistics.
    link = soup(page).select_one("[data-figure='international-requests'] a")
    assert link is not None and link["href"] == "/stats?region=international"
    assert len(soup(page).select("#fig-international ~ ol.trend li")) == console.TREND_DAYS
    assert _figure(page, "reviews") == "1"  # the shop's template still pending
    assert soup(page).select_one("[data-figure='reviews'] a")["href"] == "/reviews"  # type: ignore[index]
    assert _figure(page, "link-state") == "Up"


def test_it_refreshes_itself_as_a_fragment(root: Client, shop: Shop, session: Session) -> None:
    page = soup(root.get("/"))
    block = page.select_one("#dashboard")
    assert block is not None and block["hx-trigger"].startswith("every ")  # type: ignore[union-attr]
    assert "No messages yet today" in block.get_text()
    shop.send(["+14155550101"])
    session.commit()
    fragment = root.get("/", htmx=True)
    body = fragment.get_data(as_text=True)
    assert "<html" not in body and body.lstrip().startswith("<div id=\"dashboard\"")
    assert _figure(fragment, "international-requests") == "1"
    assert "No messages yet today" not in body


def test_credit_and_a_lagging_link(root: Client, shop: Shop, session: Session) -> None:
    packages.add(shop.ctx, name="Starter", size="1000", expires_on="2099-12-31")
    shop.send(["+14155550101"])
    session.execute(update(Message).values(created_at=utcnow() - timedelta(minutes=5)))
    session.commit()
    page = root.get("/")
    assert _figure(page, "credit-balance") == "1000"
    assert _figure(page, "credit-days") == "No recent use"  # no mainland use this week
    assert _figure(page, "link-state") == "Lagging"
    assert _figure(page, "link-waiting") == "1"
    assert _figure(page, "gateway") == "simulator"


def test_days_left_at_the_current_rate(shop: Shop, session: Session) -> None:
    packages.add(shop.ctx, name="Starter", size="700", expires_on="2099-12-31")
    shop.send(["13800000000"], template="mainland")
    session.execute(update(Message).values(fee=70, status=SUBMITTED))  # 70 items in a week
    rollups.rebuild(session)
    credit = console.credit(shop.ctx)
    assert credit.used_per_day == 10
    assert credit.days_left == credit.balance // 10


def test_what_a_policy_hides(app: Flask, shop: Shop, session: Session) -> None:
    make_user(session, "apps@example.com", policies=[
        doc(("allow", ["sms:DescribeAppList"], ["sms:app/*"]))])
    make_user(session, "stats@example.com", policies=[
        doc(("allow", ["sms:DescribeStatistics"], ["sms:app/1400000099"]))])
    shop.send(["+14155550101"])
    session.commit()
    only_apps = Client(app.test_client())
    only_apps.login("apps@example.com")
    page = only_apps.get("/")
    assert page.status_code == 200
    assert not soup(page).select("[data-figure]")
    assert "Your policies show no figures" in text_of(page, "#dashboard")
    other_app = Client(app.test_client())  # statistics of another application only
    other_app.login("stats@example.com")
    assert _figure(other_app.get("/"), "international-requests") == "0"
