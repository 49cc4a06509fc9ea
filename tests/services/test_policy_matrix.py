"""Every service action x allow / deny / out-of-scope resource."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from app.services import accounts, app_config, apps
from app.services.context import Ctx
from app.services.errors import NotFound, PermissionDenied
from tests.helpers import doc, make_app, make_user, root_ctx

Call = Callable[[Ctx, str, dict[str, Any]], object]


def _contact(session: Session, sid: str) -> int:
    c = app_config.add_contact(root_ctx(session), sid, name="Ops", email="ops@example.com",
                               events=["threshold"])
    return c.id


def _disable(session: Session, sid: str) -> None:
    apps.set_enabled(root_ctx(session), sid, False)


def _allowlisted(session: Session, sid: str) -> None:
    app_config.add_allowlist(root_ctx(session), sid, "+8613800000000")


# action → (service call, optional setup on the target app)
CASES: dict[str, tuple[Call, Callable[[Session, str], Any] | None]] = {
    "DescribeAppInfo": (lambda c, s, _: apps.get_app(c, s), None),
    "ModifyAppInfo": (lambda c, s, _: apps.update_info(c, s, name="New", overview="",
                                                       tags="a"), None),
    "ModifyAppKey": (lambda c, s, _: apps.rotate_key(c, s), None),
    "ModifyAppStatus": (lambda c, s, _: apps.set_enabled(c, s, False), None),
    "DeleteAppInfo": (lambda c, s, _: apps.delete_app(c, s, s), _disable),
    "ModifyWarningThreshold": (lambda c, s, _: app_config.set_thresholds(
        c, s, "mainland", alarm_threshold=5, daily_limit=10), None),
    "ModifyCountryConfig": (lambda c, s, _: app_config.set_country(c, s, iso_code="US"), None),
    "ModifyCallbackInfo": (lambda c, s, _: app_config.set_callback(
        c, s, "https://93.184.216.34/receipts"), None),
    "ModifyFreqRule": (lambda c, s, _: app_config.set_frequency(
        c, s, {"30s": (True, 1), "hour": (True, 3), "day": (True, 5)}), None),
    "AddFrequencyWhiteList": (lambda c, s, _: app_config.add_allowlist(
        c, s, "+14155550100"), None),
    "DeleteFrequencyWhiteList": (lambda c, s, _: app_config.remove_allowlist(
        c, s, ["+8613800000000"]), _allowlisted),
    "AddNewsReceiver": (lambda c, s, _: app_config.add_contact(
        c, s, name="A", email="a@example.com", events=[]), None),
    "ModifyNewsReceiver": (lambda c, s, x: app_config.update_contact(
        c, s, x["setup"], name="B", email="b@example.com", events=[]), _contact),
    "DeleteNewsReceiver": (lambda c, s, x: app_config.delete_contact(c, s, x["setup"]),
                           _contact),
}
# Actions on the account or on "all applications".
GLOBAL_CASES: dict[str, Callable[[Ctx], object]] = {
    "CreateApp": lambda c: apps.create_app(c, name="Another"),
    "DescribeAccountSettings": lambda c: accounts.get_settings(c),
    "ModifyAccountSettings": lambda c: accounts.update_settings(
        c, account_type="enterprise", timezone="UTC", intl_daily_quota=100,
        reply_callback_url="", reply_callback_enabled=False),
}


@pytest.fixture
def two_apps(session: Session) -> tuple[str, str]:
    return make_app(session, "Alpha"), make_app(session, "Beta")


@pytest.mark.parametrize("action", sorted(CASES))
def test_allowed_on_its_app(session: Session, two_apps: tuple[str, str], action: str) -> None:
    a, _b = two_apps
    call, setup = CASES[action]
    extra = {"setup": setup(session, a) if setup else None}
    user = make_user(session, "ops@example.com", policies=[
        doc(("allow", [f"sms:{action}"], [f"sms:app/{a}"]))])
    call(_ctx(session, user), a, extra)


@pytest.mark.parametrize("action", sorted(CASES))
def test_denied_when_a_deny_statement_matches(session: Session, two_apps: tuple[str, str],
                                              action: str) -> None:
    a, _b = two_apps
    call, setup = CASES[action]
    extra = {"setup": setup(session, a) if setup else None}
    user = make_user(session, "ops@example.com", policies=[
        doc(("allow", ["sms:*"], ["sms:app/*"]), ("deny", [f"sms:{action}"], [f"sms:app/{a}"]))])
    with pytest.raises(PermissionDenied):
        call(_ctx(session, user), a, extra)


@pytest.mark.parametrize("action", sorted(CASES))
def test_out_of_scope_app_is_untouchable(session: Session, two_apps: tuple[str, str],
                                         action: str) -> None:
    a, b = two_apps
    call, setup = CASES[action]
    extra = {"setup": setup(session, a) if setup else None}
    user = make_user(session, "ops@example.com", policies=[
        doc(("allow", ["sms:*"], [f"sms:app/{b}"]))])
    with pytest.raises((PermissionDenied, NotFound)):
        call(_ctx(session, user), a, extra)


@pytest.mark.parametrize("action", sorted(GLOBAL_CASES))
def test_account_level_actions(session: Session, two_apps: tuple[str, str], action: str) -> None:
    _a, b = two_apps
    call = GLOBAL_CASES[action]
    allowed = make_user(session, "yes@example.com", policies=[
        doc(("allow", [f"sms:{action}"], ["sms:app/*"]))])
    call(_ctx(session, allowed))
    denied = make_user(session, "no@example.com", policies=[
        doc(("allow", ["sms:*"], ["sms:app/*"]), ("deny", [f"sms:{action}"], ["*"]))])
    with pytest.raises(PermissionDenied):
        call(_ctx(session, denied))
    # A grant on one application is no grant on the account or on all applications.
    scoped = make_user(session, "one@example.com", policies=[
        doc(("allow", ["sms:*"], [f"sms:app/{b}"]))])
    with pytest.raises(PermissionDenied):
        call(_ctx(session, scoped))


def test_no_policy_means_nothing(session: Session, two_apps: tuple[str, str]) -> None:
    a, _ = two_apps
    user = make_user(session, "nobody@example.com")
    c = _ctx(session, user)
    assert apps.list_apps(c) == []
    with pytest.raises((PermissionDenied, NotFound)):
        apps.get_app(c, a)


def test_read_only_sees_everything_and_changes_nothing(
    session: Session, two_apps: tuple[str, str]
) -> None:
    a, b = two_apps
    user = make_user(session, "ro@example.com", presets=["SMSReadOnlyAccess"])
    c = _ctx(session, user)
    assert [x.sdk_app_id for x in apps.list_apps(c)] == [a, b]
    assert apps.get_app(c, a).name == "Alpha"
    accounts.get_settings(c)
    for action, (call, setup) in CASES.items():
        if action.startswith("Describe"):
            continue
        extra = {"setup": setup(session, a) if setup else None}
        with pytest.raises(PermissionDenied):
            call(c, a, extra)
    for action, gcall in GLOBAL_CASES.items():
        if not action.startswith("Describe"):
            with pytest.raises(PermissionDenied):
                gcall(c)


def test_scoped_user_lists_only_their_app(session: Session, two_apps: tuple[str, str]) -> None:
    a, b = two_apps
    user = make_user(session, "b@example.com", policies=[
        doc(("allow", ["sms:*"], [f"sms:app/{b}"]))])
    c = _ctx(session, user)
    assert [x.sdk_app_id for x in apps.list_apps(c)] == [b]
    with pytest.raises(NotFound):
        apps.get_app(c, a)


def _ctx(session: Session, user: Any) -> Ctx:
    from tests.helpers import ctx_for

    return ctx_for(session, user)
