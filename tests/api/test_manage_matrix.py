"""The permission matrix through the management API: every action x allow / deny /
out-of-scope application. It covers the actions of the service matrices
(tests/services/test_policy_matrix.py, test_content_matrix.py) and must agree with
them: allowed → done, denied → 403, out of scope → 403 or 404 (never done)."""

from __future__ import annotations

import base64
import io
import itertools
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from app.services import app_config, audience, content, reviews, tasks, unsubscribes
from tests.api.mgmt import as_user
from tests.audience import test_groups_service
from tests.helpers import QUALIFICATION, ctx_for, doc, make_app, make_user, root_ctx
from tests.services import test_content_matrix, test_policy_matrix

Setup = Callable[[Session, str], Any]
_names = itertools.count()


def _contact(s: Session, a: str) -> int:
    return app_config.add_contact(root_ctx(s), a, name="Ops", email="ops@example.com",
                                  events=["threshold"]).id


def _allowlisted(s: Session, a: str) -> None:
    app_config.add_allowlist(root_ctx(s), a, "+8613800000000")


def _template(s: Session, _a: str) -> int:
    return content.create_template(root_ctx(s), "international", test_content_matrix.TEMPLATE).id


def _signature(s: Session, _a: str) -> int:
    return content.create_signature(root_ctx(s), "international",
                                    test_content_matrix.SIGNATURE).id


def _qualification(s: Session, _a: str) -> int:
    return content.create_qualification(root_ctx(s), dict(QUALIFICATION)).id


def _effective_template(s: Session, _a: str) -> int:
    """An approved international template, to make tasks of."""
    t = content.create_template(root_ctx(s), "international", {
        "name": "Code", "sms_type": "verification", "content": "Your code is {1}"})
    reviewer = make_user(s, f"rev{next(_names)}@example.com", presets=["SMSReviewer"])
    reviews.approve(ctx_for(s, reviewer), "template", t.id, revision=t.revision)
    return t.id


def _task(s: Session, a: str) -> int:
    draft = tasks.Draft(a, _effective_template(s, a))
    task, _summary = tasks.create_task(root_ctx(s), draft, io.BytesIO(b"+14155550110,1234\n"),
                                       "list.csv")
    return task.id


def _sending_task(s: Session, a: str) -> int:
    return tasks.confirm(root_ctx(s), _task(s, a), acknowledged=True).id


def _unsubscribed(s: Session, a: str) -> int:
    sig = _signature(s, a)
    account_id = root_ctx(s).actor.account_id
    unsubscribes.record(s, account_id, "+14155550100", sig, "marketing", "reply")
    return sig


# action → (method, path with {a} for the application and {x} for the setup's id, body, setup)
APP_CASES: dict[str, tuple[str, str, Any, Setup | None]] = {
    "DescribeAppInfo": ("GET", "/apps/{a}", None, None),
    "ModifyAppInfo": ("PUT", "/apps/{a}", {"name": "New", "tags": ["a"]}, None),
    "ModifyAppStatus": ("PUT", "/apps/{a}/status", {"enabled": False}, None),
    "DescribeWarningThreshold": ("GET", "/apps/{a}/thresholds", None, None),
    "ModifyWarningThreshold": ("PUT", "/apps/{a}/thresholds/mainland",
                               {"alarm_threshold": 5, "daily_limit": 10}, None),
    "DescribeCountryConfig": ("GET", "/apps/{a}/countries", None, None),
    "ModifyCountryConfig": ("PUT", "/apps/{a}/countries/US", {}, None),
    "DescribeFreqRule": ("GET", "/apps/{a}/frequency", None, None),
    "ModifyFreqRule": ("PUT", "/apps/{a}/frequency", {
        "30s": {"enabled": True, "limit": 1}, "hour": {"enabled": True, "limit": 3},
        "day": {"enabled": True, "limit": 5}}, None),
    "DescribeFrequencyWhitelist": ("GET", "/apps/{a}/allowlist", None, None),
    "AddFrequencyWhiteList": ("POST", "/apps/{a}/allowlist",
                              {"phone_numbers": ["+14155550100"]}, None),
    "DeleteFrequencyWhiteList": ("POST", "/apps/{a}/allowlist/remove",
                                 {"phone_numbers": ["+8613800000000"]}, _allowlisted),
    "DescribeCallbackInfo": ("GET", "/apps/{a}/callback", None, None),
    "ModifyCallbackInfo": ("PUT", "/apps/{a}/callback",
                           {"status_callback_url": "https://93.184.216.34/receipts"}, None),
    "DescribeNewsReceiver": ("GET", "/apps/{a}/contacts", None, None),
    "AddNewsReceiver": ("POST", "/apps/{a}/contacts",
                        {"name": "A", "email": "a@example.com", "events": []}, None),
    "ModifyNewsReceiver": ("PUT", "/apps/{a}/contacts/{x}",
                           {"name": "B", "email": "b@example.com", "events": []}, _contact),
    "DeleteNewsReceiver": ("DELETE", "/apps/{a}/contacts/{x}", None, _contact),
    "DescribeUnsubscribe": ("GET", "/unsubscribes?phone_number=%2B14155550100&sdk_app_id={a}",
                            None, None),
    "CreateSendTask": ("POST", "/tasks", {
        "sdk_app_id": "{a}", "template_id": "{x}", "file": {
            "filename": "list.csv", "data_base64": base64.b64encode(b"+14155550110,1234\n")
            .decode()}}, _effective_template),
    "DescribeSendTasks": ("GET", "/tasks/{x}", None, _task),
    "ModifyTaskStatusStop": ("POST", "/tasks/{x}/stop", None, _sending_task),
    "CancelSendSMSTask": ("POST", "/tasks/{x}/cancel", None, _task),
    "DescribeStatistics": ("GET", "/statistics/overview?sdk_app_id={a}&period=7d", None, None),
}
# A task is hidden (404), not refused, from who may neither read it nor do the action
# (app/services/tasks.py `_task`): "denied" reads as not found for reading a task.
DENIED_AS_NOT_FOUND = {"DescribeSendTasks"}
T = test_content_matrix.TEMPLATE
def _group(s: Session, _a: str) -> int:
    return audience.add_typed(root_ctx(s), text="13800138000",
                              new_name=f"Target {next(_names)}", sms_type="marketing").group.id


ACCOUNT_CASES: dict[str, tuple[str, str, Any, Setup | None]] = {
    "DescribeCustomerGroup": ("GET", "/groups/{x}/numbers", None, _group),
    "CreateCustomerGroup": ("POST", "/groups", {"name": "N", "sms_type": "marketing"}, None),
    "ModifyCustomerGroup": ("PUT", "/groups/{x}", {"name": "Renamed"}, _group),
    "DeleteCustomerGroup": ("DELETE", "/groups/{x}", None, _group),
    "AddCustomerNumbers": ("POST", "/groups/{x}/numbers", {"phone_numbers": ["13900139000"]},
                           _group),
    "DeleteCustomerNumbers": ("POST", "/groups/{x}/numbers/remove", {"ids": [1]}, _group),
    "DescribeSmsTemplateList": ("GET", "/templates?region=mainland", None, None),
    "AddSmsTemplate": ("POST", "/templates", {**T, "region": "mainland"}, None),
    "ModifySmsTemplate": ("PUT", "/templates/{x}", T, _template),
    "DeleteSmsTemplate": ("DELETE", "/templates/{x}", None, _template),
    "DescribeSmsSignList": ("GET", "/signatures?region=mainland", None, None),
    "AddSmsSign": ("POST", "/signatures",
                   {**test_content_matrix.SIGNATURE, "region": "international"}, None),
    "ModifySmsSign": ("PUT", "/signatures/{x}", test_content_matrix.SIGNATURE, _signature),
    "DeleteSmsSign": ("DELETE", "/signatures/{x}", None, _signature),
    "DescribeQualification": ("GET", "/qualifications", None, None),
    "AddQualification": ("POST", "/qualifications", dict(QUALIFICATION), None),
    "ModifyQualification": ("PUT", "/qualifications/{x}", {"admin_name": "New Admin"},
                            _qualification),
    "DeleteQualification": ("DELETE", "/qualifications/{x}", None, _qualification),
    "ReviewContent": ("POST", "/reviews/template/{x}/decision",
                      {"decision": "approve", "revision": 1}, _template),
    "DescribeBlackList": ("GET", "/mute-list", None, None),
    "AddBlackList": ("POST", "/mute-list", {"phone_number": "+14155550100",
                                            "signature_id": "{x}", "consent": True},
                     _signature),
    "DeleteBlackList": ("POST", "/mute-list/remove", {"ids": [1]}, None),
    "ModifyUnsubscribe": ("POST", "/unsubscribe-removals", {
        "phone_number": "+14155550100", "signature_id": "{x}", "sms_type": "marketing",
        "reason": "Asked to hear from us again"}, _unsubscribed),
}


def test_the_api_matrix_covers_the_service_matrices() -> None:
    # Key rotation and deleting an application are console-only for now.
    assert set(test_policy_matrix.CASES) - {"ModifyAppKey", "DeleteAppInfo"} <= set(APP_CASES)
    assert set(test_content_matrix.CASES) <= set(ACCOUNT_CASES)
    assert set(test_groups_service.ACTIONS) <= set(ACCOUNT_CASES)


def _call(api: Flask, session: Session, policy: str, case: tuple[str, str, Any, Setup | None],
          a: str, target: str) -> int:
    method, path, body, setup = case
    x = setup(session, target) if setup else None
    if isinstance(body, dict):
        body = {k: {"{x}": x, "{a}": a}.get(v, v) if isinstance(v, str) else v
                for k, v in body.items()}
    user = make_user(session, "caller@example.com", policies=[policy])
    m = as_user(api.test_client(), session, user)
    resp = m.call(method, path.format(a=a, x=x), body)
    assert resp.status_code != 500
    return resp.status_code


@pytest.mark.parametrize("action", sorted(APP_CASES))
def test_app_action_allowed(api: Flask, session: Session, action: str) -> None:
    a, _b = make_app(session, "Alpha"), make_app(session, "Beta")
    status = _call(api, session, doc(("allow", [f"sms:{action}"], [f"sms:app/{a}"])),
                   APP_CASES[action], a, a)
    assert status in (200, 201)


@pytest.mark.parametrize("action", sorted(APP_CASES))
def test_app_action_denied(api: Flask, session: Session, action: str) -> None:
    a, _b = make_app(session, "Alpha"), make_app(session, "Beta")
    status = _call(api, session, doc(("allow", ["sms:*"], ["sms:app/*"]),
                                     ("deny", [f"sms:{action}"], [f"sms:app/{a}"])),
                   APP_CASES[action], a, a)
    assert status == (404 if action in DENIED_AS_NOT_FOUND else 403)


@pytest.mark.parametrize("action", sorted(APP_CASES))
def test_app_action_out_of_scope(api: Flask, session: Session, action: str) -> None:
    a, b = make_app(session, "Alpha"), make_app(session, "Beta")
    status = _call(api, session, doc(("allow", ["sms:*"], [f"sms:app/{b}"])),
                   APP_CASES[action], a, a)
    assert status in (403, 404)


@pytest.mark.parametrize("action", sorted(ACCOUNT_CASES))
def test_account_action_matrix(api: Flask, session: Session, action: str) -> None:
    """Account-wide actions (content, reviews, audience) are checked against all
    applications: a grant on one application is no grant here."""
    one_app = make_app(session)
    case = ACCOUNT_CASES[action]
    denied = _call(api, session, doc(("allow", ["sms:*"], ["sms:app/*"]),
                                     ("deny", [f"sms:{action}"], ["sms:app/*"])),
                   case, one_app, one_app)
    assert denied == 403
    session.rollback()


@pytest.mark.parametrize("action", sorted(ACCOUNT_CASES))
def test_account_action_scoped_and_allowed(api: Flask, session: Session, action: str) -> None:
    one_app = make_app(session)
    case = ACCOUNT_CASES[action]
    scoped = _call(api, session, doc(("allow", ["sms:*"], [f"sms:app/{one_app}"])),
                   case, one_app, one_app)
    assert scoped == 403
    make_user(session, "other@example.com")  # a different caller for the allowed run
    method, path, body, setup = case
    x = setup(session, one_app) if setup else None
    if isinstance(body, dict):
        body = {k: (x if v == "{x}" else v) for k, v in body.items()}
    allowed = make_user(session, "yes@example.com", policies=[
        doc(("allow", [f"sms:{action}", "sms:Describe*"], ["sms:app/*"]))])
    m = as_user(api.test_client(), session, allowed)
    resp = m.call(method, path.format(a=one_app, x=x), body)
    assert resp.status_code in (200, 201), resp.get_json()
