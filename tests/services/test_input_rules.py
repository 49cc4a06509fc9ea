"""Issue #8: unknown enumerated or on/off values are refused by the services (never
read as "off" or as a default), and one-line fields refuse line breaks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.models import Application, Template
from app.services import (
    accounts,
    app_config,
    apps,
    content,
    mute,
    packages,
    policies,
    reviews,
    unsubscribes,
    users,
)
from app.services.context import Ctx
from app.services.errors import ValidationError
from tests.helpers import QUALIFICATION, ctx_for, doc, make_app, make_user, root_ctx

TEMPLATE = {"name": "Order", "sms_type": "notification", "content": "Order {1} shipped"}
SETTINGS = {"account_type": "enterprise", "timezone": "Asia/Shanghai",
            "intl_daily_quota": "100", "reply_callback_url": "",
            "reply_callback_enabled": ""}


def _signature(root: Ctx, session: Session, **over: Any) -> dict[str, Any]:
    reviewer = ctx_for(session, make_user(session, "rev@example.com", presets=["SMSReviewer"]))
    q = content.create_qualification(root, dict(QUALIFICATION))
    reviews.approve(reviewer, "qualification", q.id,
                    revision=reviews.load(reviewer, "qualification", q.id).revision)
    return {"purpose": "self", "qualification_id": q.id, "sign_type": "company",
            "content": "Shop", **over}


def _refused(call: Callable[[], Any], field: str) -> str:
    with pytest.raises(ValidationError) as exc:
        call()
    assert field in exc.value.errors, exc.value.errors
    return exc.value.errors[field]


@pytest.mark.parametrize("value", ["maybe", "2", "enabled", " "])
def test_app_status_refuses_unknown_values(session: Session, value: str) -> None:
    root = root_ctx(session)
    sid = make_app(session)
    assert "on or off" in _refused(lambda: apps.set_enabled(root, sid, value), "enabled")
    assert session.query(Application).one().enabled is True
    assert apps.set_enabled(root, sid, "0").enabled is False  # as the form sends it
    assert apps.set_enabled(root, sid, "1").enabled is True


def test_enumerations_and_flags_everywhere(session: Session) -> None:
    root = root_ctx(session)
    sid = make_app(session)
    sig = _signature(root, session)
    cases: list[tuple[str, Callable[[], Any], str]] = [
        ("template region", lambda: content.create_template(root, "mars", TEMPLATE), "region"),
        ("template type", lambda: content.create_template(
            root, "mainland", {**TEMPLATE, "sms_type": "spam"}), "sms_type"),
        ("template url flag", lambda: content.create_template(
            root, "mainland", {**TEMPLATE, "allow_url_params": "maybe"}), "allow_url_params"),
        ("signature region", lambda: content.create_signature(root, "mars", sig), "region"),
        ("signature purpose", lambda: content.create_signature(
            root, "mainland", {**sig, "purpose": "mine"}), "purpose"),
        ("signature type", lambda: content.create_signature(
            root, "mainland", {**sig, "sign_type": "blog"}), "sign_type"),
        ("qualification use", lambda: content.create_qualification(
            root, {**QUALIFICATION, "use": "both"}), "use"),
        ("account type", lambda: accounts.update_settings(
            root, **{**SETTINGS, "account_type": "corp"}), "account_type"),
        ("time zone", lambda: accounts.update_settings(
            root, **{**SETTINGS, "timezone": "Mars/Olympus"}), "timezone"),
        ("reply callback flag", lambda: accounts.update_settings(
            root, **{**SETTINGS, "reply_callback_enabled": "maybe"}), "reply_callback_enabled"),
        ("threshold region", lambda: app_config.set_thresholds(
            root, sid, "mars", alarm_threshold=1, daily_limit=2), "region"),
        ("frequency flag", lambda: app_config.set_frequency(
            root, sid, {"30s": ("maybe", 1), "hour": ("", 5), "day": ("on", 10)}),
         "30s_enabled"),
        ("contact events", lambda: app_config.add_contact(
            root, sid, name="Ops", email="ops@example.com", events=["weather"]), "events"),
        ("country", lambda: app_config.set_country(root, sid, iso_code="XX"), "iso_code"),
        ("mute type", lambda: mute.add(root, phone_number="+14155550100", signature_id=1,
                                       sms_type="spam", consent=True), "sms_type"),
        ("removal type", lambda: unsubscribes.request_removal(
            root, phone_number="+14155550100", signature_id=1, sms_type="spam",
            reason="x"), "sms_type"),
        ("templates list region", lambda: content.list_templates(root, "mars"), "region"),
    ]
    for name, call, field in cases:
        message = _refused(call, field)
        assert message, name
    assert session.query(Template).count() == 0
    app = session.query(Application).one()
    assert (app.freq_30s_enabled, app.mainland_daily_limit) == (True, None)


def test_flags_accept_what_forms_send(session: Session) -> None:
    root = root_ctx(session)
    sid = make_app(session)
    app_config.set_frequency(root, sid, {"30s": ("on", 1), "hour": ("", 5), "day": (None, 9)})
    app = session.query(Application).one()
    assert (app.freq_30s_enabled, app.freq_hour_enabled, app.freq_day_enabled) == (
        True, False, False)
    t = content.create_template(root, "mainland", {**TEMPLATE, "allow_url_params": "on"})
    assert t.allow_url_params is True
    assert content.create_template(root, "mainland", TEMPLATE).allow_url_params is False


LINE_BREAKS = ["a\nb", "a\rb", "a\tb", "a\u2028b", "a\x85b", "a\x0bb"]


@pytest.mark.parametrize("value", LINE_BREAKS)
def test_one_line_fields_refuse_line_breaks(session: Session, value: str) -> None:
    root = root_ctx(session)
    sid = make_app(session)
    sig = _signature(root, session)
    cases: list[tuple[Callable[[], Any], str]] = [
        (lambda: apps.create_app(root, name=value), "name"),
        (lambda: apps.update_info(root, sid, name="Shop", overview="", tags=f"x,{value}"),
         "tags"),
        (lambda: content.create_template(root, "mainland", {**TEMPLATE, "name": value}),
         "name"),
        (lambda: content.create_signature(root, "mainland", {**sig, "content": value}),
         "content"),
        (lambda: content.create_qualification(root, {**QUALIFICATION,
                                                     "enterprise_name": f"Acme{value}"}),
         "enterprise_name"),
        (lambda: content.create_qualification(root, {**QUALIFICATION,
                                                     "legal_rep_name": value}),
         "legal_rep_name"),
        (lambda: app_config.add_contact(root, sid, name=value, email="ops@example.com",
                                        events=[]), "name"),
        (lambda: packages.add(root, name=value, size=10, expires_on="2099-01-01"), "name"),
        (lambda: users.create_sub_user(root, email="sub@example.com", name=value), "name"),
        (lambda: policies.create_policy(root, name="p1", description=value,
                                        document=doc(("allow", ["sms:*"], ["sms:app/*"]))),
         "description"),
        (lambda: app_config.set_callback(root, sid, f"https://example.com/{value}"),
         "status_callback_url"),
    ]
    for call, field in cases:
        assert "one line" in _refused(call, field)
    assert session.query(Application).one().tags == []


def test_multiline_fields_keep_their_line_breaks(session: Session) -> None:
    root = root_ctx(session)
    sid = make_app(session)
    app = apps.update_info(root, sid, name="Shop", overview="line one\nline two", tags="")
    assert app.overview == "line one\nline two"
    t = content.create_template(root, "mainland", {**TEMPLATE, "notes": "a\r\nb"})
    assert t.notes == "a\r\nb"
    assert "Control" in _refused(lambda: apps.update_info(
        root, sid, name="Shop", overview="a\x00b", tags=""), "overview")


def test_reasons_are_multiline_but_refuse_control_characters(session: Session) -> None:
    root = root_ctx(session)
    reviewer = ctx_for(session, make_user(session, "rev@example.com", presets=["SMSReviewer"]))
    t = content.create_template(root, "mainland", TEMPLATE)
    assert "Control" in _refused(lambda: reviews.reject(reviewer, "template", t.id,
                                                        "bad\x1b[31m",
                    revision=reviews.load(reviewer, "template", t.id).revision), "reason")
    assert t.status == "pending"
    reviews.reject(reviewer, "template", t.id, "line one\nline two",
                   revision=reviews.load(reviewer, "template", t.id).revision)
    assert t.reject_reason == "line one\nline two"
    assert "Control" in _refused(lambda: unsubscribes.request_removal(
        root, phone_number="+14155550100", signature_id="", sms_type="marketing",
        reason="a\x00b"), "reason")


@pytest.mark.parametrize(("text", "expected"), [
    ("12", 12), (" 7 ", 7), ("²", None), ("٣", None), ("\uff11\uff12", None), ("", None),
    ("-1", None), ("2147483647", 2147483647), ("2147483648", None), ("99999999999999999999", None),
])
def test_ids_typed_as_text(text: str, expected: int | None) -> None:
    """Found from outside: '²' passed str.isdigit() and failed int() (500s across the
    management API), and '٣' read as 3."""
    from app.services.values import digits, record_id

    assert record_id(text) == expected
    assert digits(text.strip()) == (text.strip().isascii() and text.strip().isdigit())
