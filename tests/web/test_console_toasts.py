"""Issue #14: flashes as toasts, on full pages and after htmx swaps."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session

from app.services import content
from tests.helpers import make_user, root_ctx
from tests.web.conftest import Client, soup


def _toasts(resp: object) -> list[dict[str, str]]:
    page = soup(resp)  # type: ignore[arg-type]
    box = page.select_one("#flash")
    assert box is not None and box.get("role") == "status" and box.get("aria-live") == "polite"
    out = []
    for toast in box.select(".toast"):
        close = toast.select_one("button.toast-close")
        assert close is not None and close.get("type") == "button" and close.get("aria-label")
        assert toast.select_one(".toast-icon[aria-hidden=true]") is not None  # a shape
        out.append({"kind": str(toast["data-kind"]), "role": str(toast.get("role", "")),
                    "label": toast.select_one(".toast-label").get_text(strip=True),  # type: ignore[union-attr]
                    "text": toast.select_one(".toast-text").get_text()})  # type: ignore[union-attr]
    return out


def test_a_flash_is_a_toast_on_the_next_full_page(root: Client, session: Session) -> None:
    resp = root.post("/groups", {"name": "Fans <i>x</i>", "sms_type": "marketing"})
    assert resp.status_code == 302
    page = root.get(resp.location)
    assert _toasts(page) == [{"kind": "notice", "role": "", "label": "Notice:",
                              "text": "Group “Fans <i>x</i>” created."}]
    assert "<i>x</i>" not in page.get_data(as_text=True)  # escaped
    assert _toasts(root.get(resp.location)) == []  # shown once


def test_a_failure_is_an_error_toast(root: Client, session: Session) -> None:
    resp = root.post("/content/qualifications/delete", {}, follow_redirects=True)
    [toast] = _toasts(resp)
    assert toast["kind"] == "error" and toast["role"] == "alert"
    assert toast["label"] == "Error:" and "Select the qualifications" in toast["text"]


def test_a_flash_made_for_an_htmx_fragment_comes_as_an_event(root: Client,
                                                             session: Session) -> None:
    author = root_ctx(session)
    make_user(session, "rev@example.com", presets=["SMSReviewer"])
    t = content.create_template(author, "international", {
        "name": "Ünï <b>code</b>", "sms_type": "notification", "content": "Hello {1}"})
    session.commit()
    reviewer = Client(root.http.application.test_client())
    reviewer.login("rev@example.com")
    resp = reviewer.post(f"/reviews/template/{t.id}/approve", {"revision": str(t.revision)},
                         htmx=True)
    assert resp.status_code == 200
    header = resp.headers["HX-Trigger"]
    assert header.isascii()
    triggers = json.loads(header)
    assert "reviews-changed" in triggers  # the event it already sent is kept
    assert triggers["smsops-toast"] == {"toasts": [
        {"kind": "notice", "text": "Template “Ünï <b>code</b>”: Effective."}]}
    assert "<html" not in resp.get_data(as_text=True)
    # Delivered once: it does not turn up again on the next page.
    assert _toasts(reviewer.get("/reviews")) == []


def test_a_whole_page_taken_in_part_by_htmx_leaves_its_flash_to_the_event(
        root: Client, session: Session) -> None:
    """hx-select takes one part of a full page: a flash rendered in the page's toast
    area would be thrown away with the rest."""
    resp = root.post("/packages", {"form": "package", "name": "Starter", "size": "100",
                                   "expires_on": "2099-12-31"})
    assert resp.status_code == 302
    page = root.get(resp.location, htmx=True)  # the whole page: it has no fragment
    assert soup(page).select_one("#sidenav") is not None
    assert not soup(page).select("#flash .toast")
    assert json.loads(page.headers["HX-Trigger"])["smsops-toast"]["toasts"][0]["text"] == (
        "Saved.")


def test_htmx_responses_that_navigate_keep_their_flash_for_the_page(
        root: Client, session: Session) -> None:
    from app.services import apps

    app, _key = apps.create_app(root_ctx(session), name="Gone")
    apps.set_enabled(root_ctx(session), app.sdk_app_id, False)
    session.commit()
    resp = root.post(f"/apps/{app.sdk_app_id}/delete", {"confirmation": app.sdk_app_id},
                     htmx=True)
    assert resp.headers.get("HX-Redirect") == "/apps"
    assert "smsops-toast" not in resp.headers.get("HX-Trigger", "")
    [toast] = _toasts(root.get("/apps"))
    assert "was deleted" in toast["text"]
