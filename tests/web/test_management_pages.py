"""Mute list, unsubscribed users, replies and credit packages on the web."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import Message, MuteEntry, UnsubscribeRemoval
from tests.sending.conftest import Shop
from tests.web.conftest import Client, soup, text_of

US = "+14155550123"


def test_pages_render(root: Client, shop: Shop, session: Session) -> None:
    session.commit()
    for url in ("/mute", "/unsubscribes", "/unsubscribes?number=%2B14155550123", "/replies",
                "/packages"):
        assert root.get(url).status_code == 200, url


def test_mute_needs_consent_then_lists_and_deletes(root: Client, shop: Shop,
                                                  session: Session) -> None:
    session.commit()
    sig = str(shop.signatures["international"])
    root.get("/mute")
    refused = root.post("/mute", {"phone_number": US, "signature_id": sig, "sms_type": ""})
    assert refused.status_code == 422 and "asked not to be disturbed" in text_of(refused, "main")
    assert root.post("/mute", {"phone_number": US, "signature_id": sig, "sms_type": "",
                               "consent": "on"}).status_code == 302
    listing = root.get("/mute?q=%2B1%20415%20555%200123")
    assert "All types" in text_of(listing, "#mute-rows")
    entry = session.scalar(select(MuteEntry.id))
    assert root.post("/mute/delete", {"id": [str(entry)]}).status_code == 302
    assert session.scalar(select(MuteEntry.id)) is None


def test_reply_injection_unsubscribes_and_removal_goes_to_review(root: Client, shop: Shop,
                                                                 session: Session) -> None:
    shop.send([US])
    session.execute(update(Message).values(status="delivered"))
    session.commit()
    root.get("/replies")
    resp = root.post("/replies", {"phone_number": US, "text": "stop"})
    assert resp.status_code == 302
    page = root.get("/replies")
    assert "unsubscribed" in text_of(page, "#reply-rows")
    found = root.get(f"/unsubscribes?number=%2B14155550123&app={shop.app.sdk_app_id}")
    assert "Verification code" in text_of(found, "#unsubscribed")
    assert soup(found).select_one("select[name=app] option[selected]")["value"] == (
        shop.app.sdk_app_id)
    asked = root.post("/unsubscribes", {"phone_number": US,
                                        "signature_id": str(shop.signatures["international"]),
                                        "sms_type": "verification", "reason": "Asked again"})
    assert asked.status_code == 302
    assert session.scalar(select(UnsubscribeRemoval.status)) == "pending"
    queue = root.get("/reviews")
    assert "Unsubscribe removal" in text_of(queue, "main")
    # Found from outside: the reviewer saw number, type and reason, not the signature
    # the number would hear from again (an unsubscribe is per signature and type).
    assert "Signature Shop (international)" in text_of(queue, "main")
    listed = root.get("/unsubscribes")
    assert "Shop (international)" in text_of(listed, "#removal-requests")
    bad = root.post("/replies", {"phone_number": "12", "text": "hi"})
    assert bad.status_code == 422


def test_packages_page(root: Client, shop: Shop, session: Session) -> None:
    session.commit()
    root.get("/packages")
    bad = root.post("/packages", {"form": "package", "name": "P", "size": "x",
                                  "expires_on": "tomorrow"})
    assert bad.status_code == 422 and "YYYY-MM-DD" in text_of(bad, "main")
    ok = root.post("/packages", {"form": "package", "name": "Starter", "size": "1,000",
                                 "expires_on": "2099-01-31"})
    assert ok.status_code == 302
    page = root.get("/packages")
    assert "balance 1,000" in text_of(page, "h1")
    assert soup(page).select("#package-rows tbody tr")[0].get_text().count("1,000") == 2
