"""The permission matrix through the management API: every operation x allow / deny /
out-of-scope application, each checked with exactly the policy action the document
names for it (x-policy-action). It covers the actions of the service matrices
(tests/services/test_policy_matrix.py, test_content_matrix.py), which the web and
Slack go through too, and must agree with them: allowed → done, denied → 403, out of
scope → 403 or 404 (never done). Lists that narrow to what the caller may see
instead of refusing are checked for that: the other application's row is absent."""

from __future__ import annotations

import base64
import io
import itertools
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.manage_spec import OPERATIONS
from app.db import utcnow
from app.models import Alarm, AlarmContact, Application, Message, Reply
from app.models.sending import SUBMITTED
from app.services import (
    app_config,
    audience,
    content,
    passwords,
    reviews,
    tasks,
    unsubscribes,
)
from tests.api.mgmt import as_user
from tests.audience import test_groups_service
from tests.helpers import QUALIFICATION, ctx_for, doc, make_app, make_user, root_ctx
from tests.services import test_content_matrix, test_policy_matrix

Setup = Callable[[Session, str], Any]
Case = tuple[str, str, Any, Setup | None]
_names = itertools.count()


def _contact(s: Session, a: str) -> int:
    return app_config.add_contact(root_ctx(s), a, name="Ops", email="ops@example.com",
                                  events=["threshold"]).id


def _mobile_contact(s: Session, a: str) -> int:
    return app_config.add_contact(root_ctx(s), a, name="Ops", mobile="+8613900000001",
                                  events=["threshold"]).id


def _contact_with_code(s: Session, a: str) -> int:
    """A contact whose mobile was sent the code 123456."""
    contact = s.get(AlarmContact, _mobile_contact(s, a))
    assert contact is not None
    contact.confirm_code_hash = passwords.hash_secret("123456")
    contact.confirm_expires_at = utcnow() + timedelta(minutes=5)
    s.flush()
    return contact.id


def _allowlisted(s: Session, a: str) -> None:
    app_config.add_allowlist(root_ctx(s), a, "+8613800000000")


def _country(s: Session, a: str) -> None:
    app_config.set_country(root_ctx(s), a, iso_code="US")


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


def _group_and_template(s: Session, a: str) -> tuple[int, int]:
    group = audience.add_typed(root_ctx(s), text="+14155550110", new_name=f"Fans {next(_names)}",
                               sms_type="verification").group
    return group.id, _effective_template(s, a)


def _sending_task(s: Session, a: str) -> int:
    return tasks.confirm(root_ctx(s), _task(s, a), acknowledged=True).id


def _unsubscribed(s: Session, a: str) -> int:
    sig = _signature(s, a)
    account_id = root_ctx(s).actor.account_id
    unsubscribes.record(s, account_id, "+14155550100", sig, "marketing", "reply")
    return sig


def _app(s: Session, a: str) -> Application:
    return s.scalars(select(Application).where(Application.sdk_app_id == a)).one()


def _message(s: Session, a: str) -> str:
    """A message of the application, as if it had left, and a reply to it."""
    app = _app(s, a)
    serial = uuid.uuid4().hex
    s.add(Message(account_id=app.account_id, app_id=app.id, serial_no=serial,
                  request_id=serial, region="international", phone_number="+14155550100",
                  status=SUBMITTED))
    s.add(Reply(account_id=app.account_id, app_id=app.id, phone_number="+14155550100",
                text=f"reply to {a}"))
    s.flush()
    return serial


def _alarm(s: Session, a: str) -> int:
    app = _app(s, a)
    alarm = Alarm(account_id=app.account_id, app_id=app.id, event="threshold",
                  period=f"p{app.id}", subject="Threshold reached", body="It was.",
                  figures={"sdk_app_id": a})
    s.add(alarm)
    s.flush()
    return alarm.id


TASK_FILE = {"filename": "list.csv",
             "data_base64": base64.b64encode(b"+14155550110,1234\n").decode()}
STATS = "region=international&period=7d&sdk_app_id={a}"
COUNTRY_FILE = {"filename": "countries.csv", "data_base64": base64.b64encode(b"US\nGB\n").decode()}

# operation → (method, path with {a} for the application and {x} for the setup's
# result (or {x} and {y}: its pair), body, setup). Each is checked with the
# operation's own policy action.
APP_CASES: dict[str, Case] = {
    "DescribeAppInfo": ("GET", "/apps/{a}", None, None),
    "ModifyAppInfo": ("PUT", "/apps/{a}", {"name": "New", "tags": ["a"]}, None),
    "ModifyAppStatus": ("PUT", "/apps/{a}/status", {"enabled": False}, None),
    "DescribeWarningThreshold": ("GET", "/apps/{a}/thresholds", None, None),
    "ModifyWarningThreshold": ("PUT", "/apps/{a}/thresholds/mainland",
                               {"alarm_threshold": 5, "daily_limit": 10}, None),
    "DescribeCountryConfig": ("GET", "/apps/{a}/countries", None, None),
    "ModifyCountryConfig": ("PUT", "/apps/{a}/countries/US", {}, None),
    "ModifyCountryConfig:remove": ("DELETE", "/apps/{a}/countries/US", None, _country),
    "ModifyCountryConfig:import": ("POST", "/apps/{a}/countries/import",
                                   {"file": COUNTRY_FILE}, None),
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
    "ModifyNewsReceiver:send_code": ("POST", "/apps/{a}/contacts/{x}/send-code", None,
                                     _mobile_contact),
    "ModifyNewsReceiver:confirm": ("POST", "/apps/{a}/contacts/{x}/confirm",
                                   {"code": "123456"}, _contact_with_code),
    "DeleteNewsReceiver": ("DELETE", "/apps/{a}/contacts/{x}", None, _contact),
    "DescribeUnsubscribe": ("GET", "/unsubscribes?phone_number=%2B14155550100&sdk_app_id={a}",
                            None, None),
    "CreateSendTask:validate": ("POST", "/tasks/validate", {
        "sdk_app_id": "{a}", "template_id": "{x}", "file": TASK_FILE}, _effective_template),
    "CreateSendTask": ("POST", "/tasks", {
        "sdk_app_id": "{a}", "template_id": "{x}", "file": TASK_FILE}, _effective_template),
    "CreateSendTask:group": ("POST", "/groups/{x}/send", {
        "sdk_app_id": "{a}", "template_id": "{y}", "params": ["1234"]}, _group_and_template),
    "CreateSendTask:confirm": ("POST", "/tasks/{x}/confirm", {"acknowledged": True}, _task),
    "DescribeSendTasks:one": ("GET", "/tasks/{x}", None, _task),
    "DescribeSendTasks:records": ("GET", "/tasks/{x}/records", None, _task),
    "DescribeSendTasks:receipts": ("GET", "/tasks/{x}/receipts", None, _task),
    "DescribeSendTasks:errors": ("GET", "/tasks/{x}/errors", None, _task),
    "ModifyTaskStatusStop": ("POST", "/tasks/{x}/stop", None, _sending_task),
    "CancelSendSMSTask": ("POST", "/tasks/{x}/cancel", None, _task),
    "DescribeStatistics": ("GET", "/statistics/overview?" + STATS, None, None),
    "DescribeStatistics:failures": ("GET", "/statistics/failures?" + STATS, None, None),
    "DescribeStatistics:receipts": ("GET", "/statistics/receipts?" + STATS, None, None),
    "DescribeStatistics:countries": ("GET", "/statistics/countries?" + STATS, None, None),
    "DescribeStatistics:verification": ("GET", "/statistics/verification?" + STATS, None,
                                        None),
    "ModifyAlarms": ("POST", "/alarms/{x}/acknowledge", None, _alarm),
}
# A task is hidden (404), not refused, from who may neither read it nor do the action
# (app/services/tasks.py `_task`): "denied" reads as not found for reading a task.
DENIED_AS_NOT_FOUND = {"DescribeSendTasks:one", "DescribeSendTasks:records",
                       "DescribeSendTasks:receipts", "DescribeSendTasks:errors"}
# What an allowed caller needs besides the operation's action (on the application, or
# on every application): acknowledging an alarm needs reading it; sending to a group,
# reading the group.
ALSO_NEEDS = {"ModifyAlarms": ("sms:DescribeAlarms", "sms:app/{a}"),
              "CreateSendTask:group": ("sms:DescribeCustomerGroup", "sms:app/*")}

# Lists that narrow to the applications the caller may read instead of refusing:
# operation → (path, setup making a row of the application, is that row in the items).
Seen = Callable[[list[dict[str, Any]], str, Any], bool]
NARROWED: dict[str, tuple[str, Setup | None, Seen]] = {
    "DescribeAppList": ("/apps", None, lambda items, a, _x: any(
        i["sdk_app_id"] == a for i in items)),
    "DescribeSendTasks": ("/tasks", _task, lambda items, _a, x: any(
        i["id"] == x for i in items)),
    "DescribeSendSmsRecord": ("/messages?period=today", _message, lambda items, _a, x: any(
        i["serial_no"] == x for i in items)),
    "DescribeSendSmsRecord:replies": ("/replies", _message, lambda items, a, _x: any(
        i["sdk_app_id"] == a for i in items)),
    "DescribeAlarms": ("/alarms", _alarm, lambda items, _a, x: any(
        i["id"] == x for i in items)),
}


def _group(s: Session, _a: str) -> int:
    return audience.add_typed(root_ctx(s), text="13800138000",
                              new_name=f"Target {next(_names)}", sms_type="marketing").group.id


def _removal(s: Session, a: str) -> int:
    return unsubscribes.request_removal(
        root_ctx(s), phone_number="+14155550100", signature_id=_unsubscribed(s, a),
        sms_type="marketing", reason="Asked to hear from us again").id


GROUP_FILE = {"filename": "more.csv", "data_base64": base64.b64encode(b"13900139000\n").decode()}
T = test_content_matrix.TEMPLATE
ACCOUNT_CASES: dict[str, Case] = {
    "DescribeCustomerGroup": ("GET", "/groups", None, _group),
    "DescribeCustomerGroup:one": ("GET", "/groups/{x}", None, _group),
    "DescribeCustomerGroup:numbers": ("GET", "/groups/{x}/numbers", None, _group),
    "CreateCustomerGroup": ("POST", "/groups", {"name": "N", "sms_type": "marketing"}, None),
    "ModifyCustomerGroup": ("PUT", "/groups/{x}", {"name": "Renamed"}, _group),
    "DeleteCustomerGroup": ("DELETE", "/groups/{x}", None, _group),
    "AddCustomerNumbers": ("POST", "/groups/{x}/numbers", {"phone_numbers": ["13900139000"]},
                           _group),
    "AddCustomerNumbers:import": ("POST", "/groups/import",
                                  {"group_id": "{x}", "file": GROUP_FILE}, _group),
    "DeleteCustomerNumbers": ("POST", "/groups/{x}/numbers/remove", {"ids": [1]}, _group),
    "DescribeSmsTemplateList": ("GET", "/templates?region=mainland", None, None),
    "DescribeSmsTemplateList:one": ("GET", "/templates/{x}", None, _template),
    "DescribeSmsTemplateList:standard_file": ("GET", "/templates/{x}/standard-file", None,
                                              _template),
    "AddSmsTemplate": ("POST", "/templates", {**T, "region": "mainland"}, None),
    "ModifySmsTemplate": ("PUT", "/templates/{x}", T, _template),
    "ModifySmsTemplate:carrier": ("PUT", "/templates/{x}/carrier-template-id",
                                  {"carrier_template_id": "T-100"}, _template),
    "DeleteSmsTemplate": ("DELETE", "/templates/{x}", None, _template),
    "DescribeSmsSignList": ("GET", "/signatures?region=mainland", None, None),
    "DescribeSmsSignList:one": ("GET", "/signatures/{x}", None, _signature),
    "AddSmsSign": ("POST", "/signatures",
                   {**test_content_matrix.SIGNATURE, "region": "international"}, None),
    "ModifySmsSign": ("PUT", "/signatures/{x}", test_content_matrix.SIGNATURE, _signature),
    "DeleteSmsSign": ("DELETE", "/signatures/{x}", None, _signature),
    "DescribeQualification": ("GET", "/qualifications", None, None),
    "DescribeQualification:one": ("GET", "/qualifications/{x}", None, _qualification),
    "AddQualification": ("POST", "/qualifications", dict(QUALIFICATION), None),
    "ModifyQualification": ("PUT", "/qualifications/{x}", {"admin_name": "New Admin"},
                            _qualification),
    "DeleteQualification": ("DELETE", "/qualifications/{x}", None, _qualification),
    "ReviewContent:queue": ("GET", "/reviews", None, _template),
    "ReviewContent": ("POST", "/reviews/template/{x}/decision",
                      {"decision": "approve", "revision": 1}, _template),
    "DescribeBlackList": ("GET", "/mute-list", None, None),
    "AddBlackList": ("POST", "/mute-list", {"phone_number": "+14155550100",
                                            "signature_id": "{x}", "consent": True},
                     _signature),
    "DeleteBlackList": ("POST", "/mute-list/remove", {"ids": [1]}, None),
    "DescribeUnsubscribe:removals": ("GET", "/unsubscribe-removals", None, _removal),
    "ModifyUnsubscribe": ("POST", "/unsubscribe-removals", {
        "phone_number": "+14155550100", "signature_id": "{x}", "sms_type": "marketing",
        "reason": "Asked to hear from us again"}, _unsubscribed),
}


def test_every_operation_is_in_the_matrix() -> None:
    cases = [APP_CASES, NARROWED, ACCOUNT_CASES]
    assert sorted(k for c in cases for k in c) == sorted(OPERATIONS)
    # It covers the service matrices' actions (key rotation and deleting an
    # application are console-only for now).
    actions = {OPERATIONS[k].action for k in OPERATIONS}
    assert set(test_policy_matrix.CASES) - {"ModifyAppKey", "DeleteAppInfo"} <= actions
    assert set(test_content_matrix.CASES) <= actions
    assert set(test_groups_service.ACTIONS) <= actions
    for key in ACCOUNT_CASES:  # what the service matrices say of account-wide actions
        assert key.split(":")[0] not in test_policy_matrix.CASES, key


def request_of(case: Case, session: Session, a: str) -> tuple[str, str, Any]:
    """A case's method, path and body on a fresh setup for application `a`."""
    method, path, body, setup = case
    x = setup(session, a) if setup else None
    x, y = x if isinstance(x, tuple) else (x, None)

    def fill(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return {"{x}": x, "{y}": y, "{a}": a}.get(value, value) if isinstance(
            value, str) else value

    return method, path.format(a=a, x=x, y=y), fill(body)


def _call(api: Flask, session: Session, case: Case, a: str, *policies: str) -> int:
    """The case's request by a new user holding `policies`, on a fresh setup."""
    method, path, body = request_of(case, session, a)
    user = make_user(session, f"caller{next(_names)}@example.com", policies=list(policies))
    resp = as_user(api.test_client(), session, user).call(method, path, body)
    assert resp.status_code != 500, resp.get_data(as_text=True)
    return resp.status_code


@pytest.mark.parametrize("key", sorted(APP_CASES))
def test_app_operation(api: Flask, session: Session, key: str) -> None:
    """Allowed on its application → done; a deny on it → refused; a grant on another
    application only → refused or not found."""
    action, case = f"sms:{OPERATIONS[key].action}", APP_CASES[key]
    a, b = make_app(session, "Alpha"), make_app(session, "Beta")
    denied = _call(api, session, case, a, doc(("allow", ["sms:*"], ["sms:app/*"]),
                                              ("deny", [action], [f"sms:app/{a}"])))
    assert denied == (404 if key in DENIED_AS_NOT_FOUND else 403)
    assert _call(api, session, case, a, doc(("allow", ["sms:*"], [f"sms:app/{b}"]))) in (
        403, 404)
    also = [("allow", [extra], [where.format(a=a)]) for extra, where in [ALSO_NEEDS[key]]
            ] if key in ALSO_NEEDS else []
    allowed = _call(api, session, case, a, doc(("allow", [action], [f"sms:app/{a}"]), *also))
    assert allowed in (200, 201)


@pytest.mark.parametrize("key", sorted(NARROWED))
def test_list_narrows_to_the_allowed_applications(api: Flask, session: Session,
                                                  key: str) -> None:
    action = f"sms:{OPERATIONS[key].action}"
    path, setup, seen = NARROWED[key]
    a, b = make_app(session, "Alpha"), make_app(session, "Beta")
    x = setup(session, a) if setup else None
    session.commit()

    def items(*policies: str) -> list[dict[str, Any]]:
        user = make_user(session, f"reader{next(_names)}@example.com", policies=list(policies))
        resp = as_user(api.test_client(), session, user).get(path)
        assert resp.status_code == 200, resp.get_json()
        return resp.get_json()["items"]

    assert seen(items(doc(("allow", [action], [f"sms:app/{a}"]))), a, x)
    assert not seen(items(doc(("allow", ["sms:*"], ["sms:app/*"]),
                              ("deny", [action], [f"sms:app/{a}"]))), a, x)
    assert not seen(items(doc(("allow", ["sms:*"], [f"sms:app/{b}"]))), a, x)


@pytest.mark.parametrize("key", sorted(ACCOUNT_CASES))
def test_account_operation(api: Flask, session: Session, key: str) -> None:
    """Account-wide operations (content, reviews, audience) are checked against all
    applications: a grant on one application is no grant here."""
    action, case = f"sms:{OPERATIONS[key].action}", ACCOUNT_CASES[key]
    one_app = make_app(session)
    assert _call(api, session, case, one_app, doc(("allow", ["sms:*"], ["sms:app/*"]),
                                                  ("deny", [action], ["sms:app/*"]))) == 403
    assert _call(api, session, case, one_app,
                 doc(("allow", ["sms:*"], [f"sms:app/{one_app}"]))) == 403
    make_user(session, "other@example.com")  # not the submitter: it may review
    allowed = _call(api, session, case, one_app,
                    doc(("allow", [action, "sms:Describe*"], ["sms:app/*"])))
    assert allowed in (200, 201)
