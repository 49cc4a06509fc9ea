"""Content pages: forms with inline errors, the live counter, images, the review queue."""

from __future__ import annotations

import io

from flask import Flask
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Qualification, Signature, Template
from app.services import content
from jobs import worker
from tests.helpers import QUALIFICATION, ctx_for, doc, make_user, root_ctx
from tests.web.conftest import Client, soup, text_of


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (6, 6), "blue").save(buf, "PNG")
    return buf.getvalue()


def test_content_pages_render(root: Client) -> None:
    for url in ("/content/templates", "/content/templates?region=international",
                "/content/templates/new?region=mainland", "/content/signatures",
                "/content/signatures/new?region=mainland", "/content/qualifications",
                "/content/qualifications/new", "/reviews", "/notifications"):
        resp = root.get(url)
        assert resp.status_code == 200, url


def test_new_content_headings_spell_the_region_as_the_console_does(root: Client) -> None:
    """Not "New mainland china template": the region's name keeps its capitals."""
    for kind in ("templates", "signatures"):
        for region, name in (("mainland", "Mainland China"), ("international", "International")):
            resp = root.get(f"/content/{kind}/new?region={region}")
            assert text_of(resp, "main h1") == f"New {name} {kind[:-1]}"


def test_template_form_shows_each_error_by_its_field(root: Client) -> None:
    root.get("/content/templates/new?region=mainland")
    resp = root.post("/content/templates/new?region=mainland",
                     {"name": "", "sms_type": "marketing", "content": "{1} {3}"})
    assert resp.status_code == 422
    errors = {e.find_parent("label").select_one("span").get_text(): e.get_text()
              for e in soup(resp).select(".invalid .error")}
    assert errors["Name"] == "Required."
    assert "consecutively" in errors["Content"] and "opt out" in errors["Content"]


def test_live_counter_fragment(root: Client) -> None:
    root.get("/content/templates/new?region=international")
    resp = root.post("/content/templates/preview", {
        "region": "international", "sms_type": "verification",
        "content": "Your code is {1}. " + "€" * 80}, htmx=True)
    assert "<html" not in resp.get_data(as_text=True)
    assert text_of(resp, "#counter-variables") == "{1}"
    assert text_of(resp, "#counter-encoding") == "GSM-7"
    assert text_of(resp, "#counter-billed").startswith("2 ")
    uni = root.post("/content/templates/preview", {
        "region": "mainland", "sms_type": "notification", "content": "订单已发货"}, htmx=True)
    assert text_of(uni, "#counter-encoding") == "UCS-2"
    assert text_of(uni, "#counter-billed").startswith("1 ")


def test_template_submit_then_review_then_effective(root: Client, session: Session,
                                                   app: Flask) -> None:
    root.get("/content/templates/new?region=international")
    resp = root.post("/content/templates/new?region=international", {
        "name": "Login code", "sms_type": "verification", "content": "Your code is {1}"})
    assert resp.status_code == 302
    tid = session.scalar(select(Template.id))
    queue = root.get("/reviews")
    assert "You submitted this" in text_of(queue, f"#review-template-{tid}")
    forced = root.post(f"/reviews/template/{tid}/approve", htmx=True)
    assert forced.status_code == 422 and "your own submission" in text_of(forced, ".error")

    make_user(session, "rev@example.com", presets=["SMSReviewer"])
    session.commit()
    client = Client(app.test_client())  # another person, in another session
    client.login("rev@example.com")
    client.get("/reviews")
    empty = client.post(f"/reviews/template/{tid}/reject", {"reason": " ", "revision": "1"},
                        htmx=True)
    assert empty.status_code == 422 and "Say why" in text_of(empty, ".error")
    done = client.post(f"/reviews/template/{tid}/approve", {"revision": "1"}, htmx=True)
    assert done.status_code == 200 and "Effective" in text_of(done, ".status")
    assert not soup(done).select("button")  # decided: nothing left to click
    again = client.post(f"/reviews/template/{tid}/approve", {"revision": "1"}, htmx=True)
    assert again.status_code == 422 and "Already decided" in text_of(again, ".error")
    # The submitter's email went through the real worker to the outbox.
    assert worker.run(app, burst=True)
    page = root.get("/notifications")
    assert "root@example.com" in text_of(page, "table")
    assert "Your template “Login code” is effective" in text_of(page, "#outbox")


def test_signature_images_are_private(root: Client, session: Session, app: Flask) -> None:
    root.get("/content/signatures/new?region=international")
    resp = root.http.post("/content/signatures/new?region=international", data={
        "csrf_token": root.token, "content": "Brand", "purpose": "self",
        "sign_type": "trademark", "proof_image": (io.BytesIO(_png()), "proof.jpg")},
        content_type="multipart/form-data")
    assert resp.status_code == 302
    sig = session.scalar(select(Signature))
    image = root.get(f"/content/signatures/{sig.id}/proof_image")
    assert image.status_code == 200 and image.mimetype == "image/png"
    assert image.data == _png()
    assert root.get(f"/content/signatures/{sig.id}/authorization_image").status_code == 404
    make_user(session, "one@example.com", policies=[doc(("allow", ["sms:*"],
                                                         ["sms:app/1400000009"]))])
    session.commit()
    client = Client(app.test_client())
    client.login("one@example.com")
    assert client.get(f"/content/signatures/{sig.id}/proof_image").status_code == 403
    bad = root.http.post("/content/signatures/new?region=international", data={
        "csrf_token": root.token, "content": "Brand2", "purpose": "self",
        "sign_type": "trademark", "proof_image": (io.BytesIO(b"GIF89a..."), "x.png")},
        content_type="multipart/form-data")
    assert bad.status_code == 422 and "not a readable JPG or PNG" in text_of(bad, ".invalid")


def test_qualification_batch_delete_warns_with_signature_names(root: Client,
                                                               session: Session) -> None:
    c = root_ctx(session)
    reviewer = ctx_for(session, make_user(session, "rev@example.com", presets=["SMSReviewer"]))
    from app.services import reviews

    q = content.create_qualification(c, dict(QUALIFICATION))
    reviews.approve(reviewer, "qualification", q.id, revision=q.revision)
    sig = content.create_signature(c, "mainland", {"purpose": "self", "qualification_id": q.id,
                                                   "sign_type": "company", "content": "Acme"})
    reviews.approve(reviewer, "signature", sig.id, revision=sig.revision)
    session.commit()
    root.get("/content/qualifications")
    warn = root.post("/content/qualifications/delete", {"id": [str(q.id)]})
    assert warn.status_code == 200 and text_of(warn, "#affected-signatures").startswith("Acme")
    assert session.scalar(select(Qualification.id)) == q.id  # nothing deleted yet
    done = root.post("/content/qualifications/delete", {"id": [str(q.id)], "confirmed": "yes"})
    assert done.status_code == 302
    listing = root.get("/content/signatures?region=mainland")
    assert "Unusable: its qualification was deleted" in text_of(listing, "table")


def test_effective_template_cannot_be_edited_on_the_web(root: Client, session: Session) -> None:
    c = root_ctx(session)
    t = content.create_template(c, "mainland", {"name": "Ship", "sms_type": "notification",
                                                "content": "Order {1} shipped"})
    t.status = "effective"
    session.commit()
    page = root.get(f"/content/templates/{t.id}")
    assert soup(page).select_one("#template-form fieldset").has_attr("disabled")
    resp = root.post(f"/content/templates/{t.id}", {"name": "x", "sms_type": "notification",
                                                    "content": "Order {1}"})
    assert resp.status_code == 422
    assert "can be edited; this is effective" in text_of(resp, "p.error")


def test_read_only_user_cannot_submit_content(client: Client, session: Session) -> None:
    make_user(session, "ro@example.com", presets=["SMSReadOnlyAccess"])
    session.commit()
    client.login("ro@example.com")
    assert client.get("/content/templates").status_code == 200
    assert client.get("/content/templates/new").status_code == 403
    resp = client.post("/content/templates/new?region=mainland", {
        "name": "n", "sms_type": "notification", "content": "Order {1} shipped"})
    assert resp.status_code == 403
    assert session.scalar(select(Template.id)) is None


def test_a_new_carrier_template_id_sends_an_effective_template_back_to_review(
        root: Client, session: Session) -> None:
    """The carrier's template decides the text it sends: changing it is reviewed."""
    c = root_ctx(session)
    t = content.create_template(c, "international", {
        "name": "Code", "sms_type": "verification", "content": "Code {1}"})
    t.status = "effective"
    session.commit()
    root.get(f"/content/templates/{t.id}")
    saved = root.post(f"/content/templates/{t.id}/carrier", {"carrier_template_id": "1110123"},
                      follow_redirects=True)
    assert "pending review again" in text_of(saved, "#flash")
    bad = root.post(f"/content/templates/{t.id}/carrier", {"carrier_template_id": "a b"},
                    follow_redirects=True)
    assert "letters and digits" in text_of(bad, "#flash")
    session.expire_all()
    found = session.get(Template, t.id)
    assert (found.carrier_template_id, found.status) == ("1110123", "pending")
    queue = root.get("/reviews")
    assert "1110123" in text_of(queue, f"#review-template-{t.id}")
