"""Account settings, users, policies and login throttling."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from app.models import User
from app.services import accounts, auth, policies, users
from app.services.context import Settings
from app.services.errors import Conflict, PermissionDenied, ValidationError
from tests.conftest import Backend
from tests.helpers import PASSWORD, ctx_for, doc, make_user, root_ctx


def _settings(**kw: object) -> dict:
    base = dict(account_type="enterprise", timezone="Asia/Shanghai", intl_daily_quota=100,
                reply_callback_url="", reply_callback_enabled=False)
    return {**base, **kw}


def test_account_settings_validation(session: Session) -> None:
    c = root_ctx(session)
    with pytest.raises(ValidationError) as exc:
        accounts.update_settings(c, **_settings(
            account_type="corp", timezone="Mars/Olympus", intl_daily_quota="lots",
            reply_callback_enabled=True))
    assert set(exc.value.errors) == {"account_type", "timezone", "intl_daily_quota",
                                     "reply_callback_url"}
    with pytest.raises(ValidationError, match="private"):
        accounts.update_settings(c, **_settings(reply_callback_url="http://10.0.0.8/replies"))
    account = accounts.update_settings(c, **_settings(
        timezone="Europe/Berlin", intl_daily_quota="250",
        reply_callback_url="https://93.184.216.34/replies", reply_callback_enabled=True))
    assert (account.timezone, account.intl_daily_quota, account.reply_callback_enabled) == (
        "Europe/Berlin", 250, True)


def test_quota_cannot_drop_below_an_app_limit(session: Session) -> None:
    from app.services import app_config, apps

    c = root_ctx(session)
    app, _ = apps.create_app(c, name="Intl")
    app_config.set_thresholds(c, app.sdk_app_id, "international", alarm_threshold=None,
                              daily_limit=90)
    with pytest.raises(ValidationError, match=app.sdk_app_id):
        accounts.update_settings(c, **_settings(intl_daily_quota=80))


def test_root_manages_users_and_policies(session: Session) -> None:
    c = root_ctx(session)
    user, password = users.create_sub_user(c, email=" Ana@Example.com ", name="Ana")
    assert user.email == "ana@example.com" and user.must_change_password and len(password) >= 12
    with pytest.raises(ValidationError, match="already exists"):
        users.create_sub_user(c, email="ana@example.com", name="")
    custom = policies.create_policy(c, name="apps-readers", description="",
                                    document=doc(("allow", ["sms:DescribeAppList"],
                                                  ["sms:app/*"])))
    preset = next(p for p in policies.list_policies(c) if p.name == "SMSReviewer")
    users.set_policies(c, user.id, [custom.id, preset.id])
    assert [p.name for p in user.policies] == ["SMSReviewer", "apps-readers"]
    with pytest.raises(ValidationError, match="unknown action 'sms:Nope'"):
        policies.update_policy(c, custom.id, name="apps-readers", description="",
                               document=doc(("allow", ["sms:Nope"], ["*"])))
    with pytest.raises(Conflict):
        policies.delete_policy(c, preset.id)
    policies.delete_policy(c, custom.id)
    session.expire_all()
    assert [p.name for p in session.get(User, user.id).policies] == ["SMSReviewer"]
    users.set_active(c, user.id, False)
    users.delete_user(c, user.id)
    with pytest.raises(Conflict):
        users.delete_user(c, c.actor.user_id)


def test_sub_users_cannot_manage_users_policies_or_audit(session: Session) -> None:
    from app.services import audit

    full = make_user(session, "full@example.com", presets=["SMSFullAccess"])
    c = ctx_for(session, full)
    for call in (lambda: users.list_users(c),
                 lambda: users.create_sub_user(c, email="x@example.com", name=""),
                 lambda: policies.list_policies(c),
                 lambda: policies.create_policy(c, name="p", description="",
                                                document=doc(("allow", ["sms:*"], ["*"]))),
                 lambda: audit.browse(c)):
        with pytest.raises(PermissionDenied):
            call()


def test_change_own_password(session: Session, backend: Backend) -> None:
    user = make_user(session, "me@example.com")
    c = ctx_for(session, user)
    with pytest.raises(ValidationError, match="current"):
        users.change_own_password(c, "wrong", "new-password-1", "new-password-1",
                                  redis=backend.redis)
    with pytest.raises(ValidationError) as exc:
        users.change_own_password(c, PASSWORD, "short", "other", redis=backend.redis)
    assert set(exc.value.errors) == {"new", "confirm"}
    users.change_own_password(c, PASSWORD, "a-new-password", "a-new-password", redis=backend.redis)
    assert not user.must_change_password and user.password_hash.startswith("$argon2id$")


def test_login_throttles_failures(session: Session, backend: Backend) -> None:
    make_user(session, "me@example.com")
    settings = Settings(login_max_failures=3, login_window_seconds=60)
    for _ in range(3):
        with pytest.raises(auth.LoginFailed, match="Wrong email or password"):
            auth.authenticate(session, backend.redis, settings, "me@example.com", "bad", "1.2.3.4")
    with pytest.raises(auth.LoginFailed, match="Too many"):
        auth.authenticate(session, backend.redis, settings, "ME@example.com", PASSWORD, "1.2.3.4")
    # Unknown emails fail the same way and count too.
    with pytest.raises(auth.LoginFailed, match="Wrong email"):
        auth.authenticate(session, backend.redis, settings, "who@example.com", "x", "5.6.7.8")
    backend.redis.flushdb()
    user = auth.authenticate(session, backend.redis, settings, "me@example.com", PASSWORD,
                             "1.2.3.4")
    assert user.last_login_at is not None


def test_disabled_user_cannot_log_in(session: Session, backend: Backend) -> None:
    user = make_user(session, "off@example.com")
    user.active = False
    with pytest.raises(auth.LoginFailed):
        auth.authenticate(session, backend.redis, Settings(), "off@example.com", PASSWORD, "ip")
