"""Issue #8 on the web: unknown values and line breaks get a field error, numbers
read alike in every form."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.models import Application, Template
from app.sms import numbers
from tests.web.conftest import Client, soup, text_of


def _app(root: Client, session: Session) -> str:
    root.get("/apps")
    resp = root.post("/apps", {"name": "Shop"}, htmx=True)
    return text_of(resp, "#sdk-app-id")


def test_allowlist_takes_plain_mainland_numbers_and_lists_errors_readably(
        root: Client, session: Session) -> None:
    sid = _app(root, session)
    bad = root.post(f"/apps/{sid}/allowlist", {"numbers": "13800000000\nabc\n4155550100"},
                    htmx=True)
    assert bad.status_code == 422
    assert text_of(bad, "#allowlist .error") == (
        f"Line 2 (abc): {numbers.NOT_A_NUMBER} Line 3 (4155550100): "
        f"{numbers.NEED_COUNTRY_CODE}")
    ok = root.post(f"/apps/{sid}/allowlist", {"numbers": "13800000000"}, htmx=True)
    assert ok.status_code == 200
    app = session.query(Application).one()
    session.refresh(app)
    assert [e.phone_number for e in app.allowlist] == ["+8613800000000"]


def test_enabled_maybe_does_not_disable(root: Client, session: Session) -> None:
    sid = _app(root, session)
    resp = root.post(f"/apps/{sid}/status", {"enabled": "maybe"}, htmx=True)
    assert resp.status_code == 422 and "on or off" in text_of(resp, "#status .error")
    assert session.query(Application).one().enabled is True
    root.post(f"/apps/{sid}/status", {"enabled": "0"}, htmx=True)
    session.expire_all()
    assert session.query(Application).one().enabled is False


def test_frequency_and_settings_flags(root: Client, session: Session) -> None:
    sid = _app(root, session)
    resp = root.post(f"/apps/{sid}/frequency", {"30s_enabled": "maybe", "30s_limit": "1",
                                                "hour_limit": "5", "day_limit": "10"},
                     htmx=True)
    assert resp.status_code == 422 and "on or off" in text_of(resp, "#frequency .error")
    resp = root.post("/settings", {"account_type": "enterprise", "timezone": "Asia/Shanghai",
                                   "intl_daily_quota": "100", "reply_callback_url": "",
                                   "reply_callback_enabled": "maybe"})
    assert resp.status_code == 422 and "on or off" in text_of(resp, "em.error")


def test_region_mars_creates_nothing(root: Client, session: Session) -> None:
    assert root.get("/content/templates/new?region=mars").status_code == 400
    assert root.get("/content/templates?region=mars").status_code == 400
    resp = root.post("/content/templates/new?region=mars",
                     {"region": "mars", "name": "x", "sms_type": "notification",
                      "content": "Order {1} shipped"})
    assert resp.status_code == 400 and "mars" in resp.get_data(as_text=True)
    assert root.get("/content/signatures/new?region=mars").status_code == 400
    assert session.query(Template).count() == 0


def test_one_line_fields_show_a_field_error(root: Client, session: Session) -> None:
    resp = root.post("/apps", {"name": "Shop\nInjected"}, htmx=True)
    assert resp.status_code == 422 and "one line" in text_of(resp, ".invalid .error")
    resp = root.post("/content/templates/new?region=mainland",
                     {"region": "mainland", "name": "a\nb", "sms_type": "notification",
                      "content": "Order {1} shipped", "allow_url_params": "on"})
    assert resp.status_code == 422 and "one line" in text_of(resp, ".invalid .error")
    resp = root.post("/content/templates/new?region=mainland",
                     {"region": "mainland", "name": "ok", "sms_type": "notification",
                      "content": "Order {1} shipped", "allow_url_params": "maybe"})
    assert resp.status_code == 422 and "on or off" in text_of(resp, "em.error")
    assert session.query(Template).count() == 0
    root.post("/content/templates/new?region=mainland",
              {"region": "mainland", "name": "ok", "sms_type": "notification",
               "content": "Visit {1}", "allow_url_params": "on"})
    assert session.query(Template).one().allow_url_params is True


def test_message_log_refuses_unknown_filters(root: Client) -> None:
    assert root.get("/messages?period=7d&status=rejected").status_code == 200
    for query in ("period=forever", "status=lost"):
        resp = root.get(f"/messages?{query}")
        assert resp.status_code == 400 and "Choose" in resp.get_data(as_text=True), query


def test_user_status_maybe_does_not_disable(root: Client, session: Session) -> None:
    from app.models import User
    from tests.helpers import make_user

    user = make_user(session, "sub@example.com")
    session.commit()
    resp = root.post(f"/users/{user.id}/status", {"active": "maybe"})
    assert resp.status_code == 302
    session.expire_all()
    assert session.get(User, user.id).active is True
    page = root.get(f"/users/{user.id}")
    assert "on or off" in page.get_data(as_text=True)


def test_thresholds_for_an_unknown_region(root: Client, session: Session) -> None:
    sid = _app(root, session)
    resp = root.post(f"/apps/{sid}/thresholds/mars",
                     {"mars_alarm_threshold": "1", "mars_daily_limit": "2"}, htmx=True)
    assert resp.status_code == 422
    assert "mainland or international" in text_of(resp, "#thresholds .error")


def test_template_form_explains_the_parameter_rules(root: Client) -> None:
    page = root.get("/content/templates/new?region=international").get_data(as_text=True)
    assert "{1} is the code (4 to 8 letters or digits)" in page
    assert "at most 35 characters" in page and 'name="allow_url_params"' in page


def test_number_forms_answer_alike(root: Client, session: Session) -> None:
    """Issue #8: the mute list, alarm contacts, the unsubscribed query and removal
    requests show the parser's one message for the same typed number."""
    from urllib.parse import quote

    from app.models import Signature
    from tests.number_cases import BAD

    sid = _app(root, session)
    session.add(Signature(account_id=1, region="international", purpose="self",
                          sign_type="company", content="Shop", submitted_by="root"))
    session.commit()
    sig = session.query(Signature).one().id
    for raw, message in BAD:
        pages = [
            root.post("/mute", {"phone_number": raw, "signature_id": sig, "sms_type": "",
                                "consent": "on"}),
            root.get(f"/mute?q={quote(raw)}"),
            root.post(f"/apps/{sid}/contacts", {"name": "Ops", "mobile": raw}, htmx=True),
            root.get(f"/unsubscribes?number={quote(raw)}"),
            root.post("/unsubscribes", {"phone_number": raw, "signature_id": sig,
                                        "sms_type": "marketing", "reason": "asked"}),
        ]
        for n, resp in enumerate(pages):
            assert resp.status_code == 422, (raw, n)
            assert message in [e.get_text() for e in soup(resp).select("em.error")], (raw, n)


def test_content_forms_show_unknown_choices(root: Client, session: Session) -> None:
    from tests.helpers import QUALIFICATION

    resp = root.post("/content/qualifications/new", {**QUALIFICATION, "use": "both"})
    assert resp.status_code == 422 and "self-use or third-party" in text_of(resp, "em.error")
    resp = root.post("/content/signatures/new?region=international",
                     {"region": "international", "purpose": "mine", "sign_type": "blog",
                      "content": "Shop"})
    errors = [e.get_text() for e in soup(resp).select("em.error")]
    assert resp.status_code == 422 and "Choose self-use or other-use." in errors
    assert "Choose a signature type." in errors
    resp = root.post("/content/templates/new?region=international",
                     {"region": "international", "name": "x", "sms_type": "spam",
                      "content": "Order {1} shipped"})
    assert resp.status_code == 422 and "Choose verification code" in text_of(resp, "em.error")
    assert session.query(Template).count() == 0
