"""The SMS log page: filters, reasons, and only the applications one may read."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import Message
from tests.helpers import doc, make_user
from tests.sending.conftest import Shop
from tests.web.conftest import Client, soup, text_of


def test_log_lists_filters_and_explains(root: Client, shop: Shop, session: Session,
                                        app: Flask) -> None:
    shop.send(["+14155550101"])
    shop.send(["+999"])
    session.commit()
    page = root.get("/messages")
    rows = soup(page).select("table.messages tbody tr")
    assert len(rows) == 2
    assert "InvalidParameterValue.IncorrectPhoneNumber" in rows[0].get_text()
    assert "not valid for this region" in rows[0].get_text()
    only = root.get("/messages?status=accepted&number=%2B1%20415%20555%200101", htmx=True)
    assert "<html" not in only.get_data(as_text=True)
    assert "1 message(s)" in text_of(only, "p.muted")
    assert "[Shop] Your code is 123456" in text_of(only, "table")
    assert "0 message(s)" in text_of(root.get("/messages?period=yesterday"), "p.muted")

    make_user(session, "other@example.com", policies=[
        doc(("allow", ["sms:*"], ["sms:app/1400000099"]))])
    session.commit()
    other = Client(app.test_client())
    other.login("other@example.com")
    assert "0 message(s)" in text_of(other.get("/messages"), "p.muted")


def test_log_shows_unknown_and_no_receipt_with_their_reasons(root: Client, shop: Shop,
                                                             session: Session) -> None:
    shop.send(["+14155550101"])
    shop.send(["+14155550104"])
    session.flush()
    ids = sorted(session.scalars(select(Message.id)))
    session.execute(update(Message).where(Message.id == ids[0]).values(
        status="unknown", error_code="FailedOperation.OutcomeUnknown"))
    session.execute(update(Message).where(Message.id == ids[1]).values(
        status="no_receipt", error_code="FailedOperation.NoReceipt"))
    session.commit()
    page = root.get("/messages")
    options = [o.get("value") for o in soup(page).select("select[name=status] option")]
    assert "unknown" in options and "no_receipt" in options
    table = text_of(page, "table")
    assert "may or may not have been sent" in table and "no delivery receipt" in table
    assert "1 message(s)" in text_of(root.get("/messages?status=no_receipt"), "p.muted")

