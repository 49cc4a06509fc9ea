"""Issue #14: pages stay current: the SMS log's rows in flight, counts after htmx actions."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import Message
from app.models.sending import DELIVERED, SUBMITTED
from tests.helpers import doc, make_user
from tests.sending.conftest import Shop
from tests.web.conftest import Client, soup


def test_the_log_refreshes_rows_still_in_flight(root: Client, shop: Shop,
                                                 session: Session) -> None:
    shop.send(["+14155550101", "+14155550102"])
    shop.send(["+999"])  # rejected: final from the start
    session.commit()
    ids = session.scalars(select(Message.id).where(Message.error_code.is_(None))
                          .order_by(Message.id)).all()
    page = soup(root.get("/messages"))
    poller = page.select_one("#log-live")
    assert poller is not None
    url = str(poller["hx-get"])
    assert url == f"/messages/live?ids={ids[1]},{ids[0]}"  # newest first, as listed
    assert poller["hx-swap"] == "none"  # the rows come out of band, each into its place
    session.execute(update(Message).where(Message.id == ids[0])
                    .values(status=DELIVERED, submitted_at=utcnow(), receipt_at=utcnow()))
    session.execute(update(Message).where(Message.id == ids[1])
                    .values(status=SUBMITTED, submitted_at=utcnow()))
    session.commit()
    live = soup(root.get(url, htmx=True))
    # Inside a <template> (a bare <tr> cannot stand alone), swapped into place by id.
    assert live.template is not None
    rows = {str(tr["id"]): tr for tr in live.template.find_all("tr", attrs={"hx-swap-oob": True})}
    assert set(rows) == {f"msg-{ids[0]}", f"msg-{ids[1]}"}
    assert ">delivered<" in str(rows[f"msg-{ids[0]}"])
    assert ">submitted<" in str(rows[f"msg-{ids[1]}"])
    left = live.select_one("#log-live[hx-swap-oob]")
    assert left is not None and left["hx-get"] == f"/messages/live?ids={ids[1]}"
    session.execute(update(Message).values(status=DELIVERED))
    session.commit()
    done = soup(root.get(left["hx-get"], htmx=True)).select_one("#log-live")  # type: ignore[arg-type]
    assert done is not None and not done.has_attr("hx-get")  # nothing left: it stops


def test_live_rows_only_for_those_who_may_read_them(app: Flask, root: Client, shop: Shop,
                                                    session: Session) -> None:
    shop.send(["+14155550101"])
    make_user(session, "other@example.com", policies=[
        doc(("allow", ["sms:*"], ["sms:app/1400000099"]))])
    session.commit()
    msg_id = session.scalar(select(Message.id))
    other = Client(app.test_client())
    other.login("other@example.com")
    live = soup(other.get(f"/messages/live?ids={msg_id}", htmx=True))
    assert live.find_all("tr") == []
    for junk in ("x,,-1", "9" * 40, ",".join(["1"] * 2000), ""):
        assert root.get(f"/messages/live?ids={junk}", htmx=True).status_code == 200


def test_the_dashboard_follows_review_decisions(root: Client) -> None:
    block = soup(root.get("/")).select_one("#dashboard")
    assert block is not None and "reviews-changed from:body" in str(block["hx-trigger"])
