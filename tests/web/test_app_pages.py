"""Application pages: create, the AppKey shown once, sections as fragments,
inline errors, permissions on the web."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Application, AuditEntry
from tests.helpers import doc, make_app, make_user
from tests.web.conftest import Client, soup, text_of


def _create(root: Client, name: str = "Shop", htmx: bool = True) -> tuple[str, str]:
    root.get("/apps")
    resp = root.post("/apps", {"name": name, "overview": "orders", "tags": "a,b"}, htmx=htmx)
    assert resp.status_code == 200
    return text_of(resp, "#sdk-app-id"), text_of(resp, "#app-key")


def test_create_shows_key_once_then_masked(root: Client) -> None:
    sid, key = _create(root)
    assert sid == "1400000001" and len(key) == 64
    detail = root.get(f"/apps/{sid}")
    html = detail.get_data(as_text=True)
    assert key not in html and key[:4] in text_of(detail, "#key")
    assert detail.headers["Cache-Control"] == "no-store"
    listing = root.get("/apps")
    assert text_of(listing, "table tbody tr").startswith(f"{sid} Shop a b Enabled")


def test_create_fragment_for_htmx_and_full_page_otherwise(root: Client) -> None:
    frag = root.post("/apps", {"name": ""}, htmx=True)
    assert frag.status_code == 422
    assert "<html" not in frag.get_data(as_text=True)
    assert text_of(frag, ".invalid .error") == "Required."
    page = root.post("/apps", {"name": "Plain"})
    assert "<html" in page.get_data(as_text=True) and text_of(page, "#sdk-app-id")


def test_user_text_is_escaped(root: Client) -> None:
    sid, _ = _create(root, name="<script>alert(1)</script>")
    html = root.get(f"/apps/{sid}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_section_posts_return_their_fragment_with_inline_errors(root: Client) -> None:
    sid, _ = _create(root)
    bad = root.post(f"/apps/{sid}/thresholds/mainland",
                    {"mainland_alarm_threshold": "900", "mainland_daily_limit": "100"}, htmx=True)
    assert bad.status_code == 422
    s = soup(bad)
    assert s.select_one("section")["id"] == "thresholds"
    assert "must not exceed" in text_of(bad, ".invalid")
    good = root.post(f"/apps/{sid}/thresholds/mainland",
                     {"mainland_alarm_threshold": "80", "mainland_daily_limit": "100"}, htmx=True)
    assert good.status_code == 200 and "Mainland thresholds saved." in text_of(good, ".notice")
    assert soup(good).select_one("input[name=mainland_daily_limit]")["value"] == "100"


def test_plain_form_post_redirects_with_flash(root: Client) -> None:
    sid, _ = _create(root)
    resp = root.post(f"/apps/{sid}/callback", {"status_callback_url": "https://93.184.216.34/r"})
    assert resp.status_code == 302 and resp.location.endswith(f"/apps/{sid}#callback")
    page = root.get(resp.location)
    assert "Status callback saved." in text_of(page, "#flash")
    refused = root.post(f"/apps/{sid}/callback", {"status_callback_url": "http://127.0.0.1/"})
    assert refused.status_code == 422 and "private" in text_of(refused, "#callback .error")


def test_every_config_section_over_the_web(root: Client, session: Session) -> None:
    sid, _ = _create(root)
    posts = [
        (f"/apps/{sid}/info", {"name": "Renamed", "overview": "", "tags": "x"}),
        (f"/apps/{sid}/thresholds/international",
         {"international_alarm_threshold": "40", "international_daily_limit": "50"}),
        (f"/apps/{sid}/countries", {"iso_code": "us", "alarm_threshold": "", "daily_limit": "30"}),
        (f"/apps/{sid}/frequency", {"30s_enabled": "on", "30s_limit": "1", "hour_limit": "4",
                                    "day_enabled": "on", "day_limit": "8"}),
        (f"/apps/{sid}/allowlist", {"numbers": "+8613800000000\n+14155550100"}),
        (f"/apps/{sid}/contacts", {"name": "Ops", "email": "ops@example.com",
                                   "events": ["threshold", "review"]}),
    ]
    for url, data in posts:
        resp = root.post(url, data, htmx=True)
        assert resp.status_code == 200, (url, resp.get_data(as_text=True))
    upload = root.http.post(f"/apps/{sid}/countries/import", headers={"HX-Request": "true"},
                            data={"csrf_token": root.token,
                                  "file": (__import__("io").BytesIO(b"GB,5,10\nSG\n"), "c.csv")},
                            content_type="multipart/form-data")
    assert "Imported 2" in text_of(upload, ".notice")
    app = session.scalar(select(Application).where(Application.sdk_app_id == sid))
    session.refresh(app)
    assert app.name == "Renamed" and app.intl_daily_limit == 50
    assert sorted(c.iso_code for c in app.countries) == ["GB", "SG", "US"]
    assert (app.freq_hour_enabled, app.freq_hour_limit, app.freq_day_limit) == (False, 4, 8)
    assert [e.phone_number for e in app.allowlist] == ["+14155550100", "+8613800000000"]
    assert app.contacts[0].events == ["threshold", "review"]
    removed = root.post(f"/apps/{sid}/allowlist/delete", {"number": ["+14155550100"]}, htmx=True)
    assert "Removed 1" in text_of(removed, ".notice")
    actions = session.scalars(select(AuditEntry.action)).all()
    assert {"ModifyAppInfo", "ModifyCountryConfig", "ModifyFreqRule", "AddNewsReceiver",
            "AddFrequencyWhiteList", "DeleteFrequencyWhiteList"} <= set(actions)


def test_rotate_shows_the_new_key_once(root: Client) -> None:
    sid, key = _create(root)
    resp = root.post(f"/apps/{sid}/key", htmx=True)
    new = text_of(resp, "#app-key")
    assert new != key and len(new) == 64
    assert new not in root.get(f"/apps/{sid}").get_data(as_text=True)


def test_disable_then_delete_with_confirmation(root: Client, session: Session) -> None:
    sid, _ = _create(root)
    early = root.post(f"/apps/{sid}/delete", {"confirmation": sid}, htmx=True)
    assert early.status_code == 422 and "Disable the application" in text_of(early, "#status")
    root.post(f"/apps/{sid}/status", {"enabled": "0"}, htmx=True)
    wrong = root.post(f"/apps/{sid}/delete", {"confirmation": "yes"}, htmx=True)
    assert wrong.status_code == 422 and f"Type {sid}" in text_of(wrong, "#status")
    done = root.post(f"/apps/{sid}/delete", {"confirmation": sid}, htmx=True)
    assert done.status_code == 204 and done.headers["HX-Redirect"] == "/apps"
    assert root.get(f"/apps/{sid}").status_code == 404


def test_read_only_user_sees_but_cannot_change(client: Client, session: Session) -> None:
    sid = make_app(session)
    make_user(session, "ro@example.com", presets=["SMSReadOnlyAccess"])
    session.commit()
    client.login("ro@example.com")
    page = client.get(f"/apps/{sid}")
    assert page.status_code == 200
    assert not soup(page).select("form[action*='/info'], form[action*='/key']")
    assert not soup(client.get("/apps")).select("#create-app")
    resp = client.post(f"/apps/{sid}/info", {"name": "Hacked"}, htmx=True)
    assert resp.status_code == 403 and "sms:ModifyAppInfo" in text_of(resp, ".error-message")
    assert client.post("/apps", {"name": "New"}).status_code == 403
    assert session.scalar(select(Application.name)) == "Shop"


def test_scoped_user_cannot_see_other_apps(client: Client, session: Session) -> None:
    mine, other = make_app(session, "Mine"), make_app(session, "Other")
    make_user(session, "one@example.com",
              policies=[doc(("allow", ["sms:*"], [f"sms:app/{mine}"]))])
    session.commit()
    client.login("one@example.com")
    listing = client.get("/apps").get_data(as_text=True)
    assert mine in listing and other not in listing
    assert client.get(f"/apps/{other}").status_code == 404
    assert client.post(f"/apps/{other}/status", {"enabled": "0"}).status_code == 404
    assert client.get("/users").status_code == 403
    assert client.get("/audit").status_code == 403
