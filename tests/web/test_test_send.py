"""Issue #14: a test message from the web, through the API's checks and service."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.db import utcnow
from app.models import Message
from app.models.sending import DELIVERED, REJECTED
from tests.helpers import doc, make_user
from tests.sending.conftest import Shop
from tests.web.conftest import Client, soup, text_of


def _form(shop: Shop, **kw: str) -> dict[str, str]:
    return {"app": shop.app.sdk_app_id, "template": str(shop.templates["international"]),
            "params": "123456", "number": "+14155550101", **kw}


def test_send_then_the_receipt_appears(root: Client, shop: Shop, session: Session) -> None:
    session.commit()
    page = soup(root.get("/send"))
    offered = [o.get_text() for o in page.select("select[name=template] option")]
    assert any("Your code is {1}" in o for o in offered)
    assert not any("Order {1} shipped" in o for o in offered)  # still pending: not offered
    sent = root.post("/send", _form(shop), htmx=True)
    assert sent.status_code == 200 and "<html" not in sent.get_data(as_text=True)
    assert "Accepted for +14155550101" in text_of(sent, ".send-result")
    msg = session.scalars(select(Message)).one()
    assert msg.content == "[Shop] Your code is 123456" and msg.status == "accepted"
    block = soup(sent).select_one(f"#sent-{msg.serial_no}")
    assert block is not None and block["hx-trigger"] == "every 2s"
    url = str(block["hx-get"])
    assert "waiting for the receipt" in text_of(root.get(url, htmx=True), "dl.sent")
    session.execute(update(Message).values(status=DELIVERED, submitted_at=utcnow(),
                                           receipt_at=utcnow(), carrier_code="DELIVRD"))
    session.commit()
    done = soup(root.get(url, htmx=True)).select_one("dl.sent")
    assert done is not None and not done.has_attr("hx-trigger")  # final: stops asking
    assert done.select_one("[data-status]").get_text() == "delivered"  # type: ignore[union-attr]
    assert "DELIVRD" in done.get_text()


def test_the_api_checks_apply(root: Client, shop: Shop, session: Session) -> None:
    session.commit()
    bad_number = root.post("/send", _form(shop, number="+999"), htmx=True)
    assert "InvalidParameterValue.IncorrectPhoneNumber" in text_of(bad_number, ".send-result")
    no_params = root.post("/send", _form(shop, params=""), htmx=True)
    assert "Not sent" in text_of(no_params, ".send-result")
    # Refusals are recorded messages, exactly as through the API.
    assert set(session.scalars(select(Message.status))) == {REJECTED}
    no_template = root.post("/send", _form(shop, template=""), htmx=True)
    assert no_template.status_code == 422
    assert soup(no_template).select_one("label.invalid select[name=template]") is not None
    other_app = root.post("/send", _form(shop, app="1400009999"), htmx=True)
    assert other_app.status_code == 422
    assert soup(other_app).select_one("label.invalid select[name=app]") is not None
    script = root.post("/send", _form(shop, params="<b>1</b>"), htmx=True)
    assert "<b>1</b>" not in script.get_data(as_text=True)


def test_only_with_send_rights(app: Flask, shop: Shop, session: Session) -> None:
    make_user(session, "ro@example.com", presets=["SMSReadOnlyAccess"])
    make_user(session, "one@example.com", policies=[doc(
        ("allow", ["sms:SendSms", "sms:Describe*"], ["sms:app/1400009999"]))])
    session.commit()
    reader = Client(app.test_client())
    reader.login("ro@example.com")
    assert reader.get("/send").status_code == 403
    assert reader.post("/send", _form(shop)).status_code == 403
    other = Client(app.test_client())
    other.login("one@example.com")
    assert "No application you may send with" in text_of(other.get("/send"), "#test-send")
    refused = other.post("/send", _form(shop), htmx=True)
    assert refused.status_code == 422
    assert session.scalar(select(Message.id)) is None  # nothing recorded for another's app
