"""Access policies (SPEC.md §9): parsing, validation and evaluation.

A policy document:
    {"version": "2.0", "statement": [{"effect": "allow"|"deny",
      "action": ["sms:*" | "sms:<Action>" | "sms:Describe*"],
      "resource": ["sms:app/*" | "sms:app/<SdkAppId>" | "*"]}]}
Deny wins over allow; nothing is allowed unless a statement allows it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from app import safejson
from app.services.errors import PermissionDenied

# Every action a policy may name. Later capabilities add theirs here.
ACTIONS: frozenset[str] = frozenset(
    {
        # applications
        "DescribeAppList", "DescribeAppInfo", "CreateApp", "ModifyAppInfo", "ModifyAppStatus",
        "DeleteAppInfo", "ModifyAppKey",
        # basic configuration
        "DescribeWarningThreshold", "ModifyWarningThreshold",
        "DescribeCountryConfig", "ModifyCountryConfig",
        "DescribeCallbackInfo", "ModifyCallbackInfo",
        "DescribeFreqRule", "ModifyFreqRule",
        "DescribeFrequencyWhitelist", "AddFrequencyWhiteList", "DeleteFrequencyWhiteList",
        "DescribeNewsReceiver", "AddNewsReceiver", "ModifyNewsReceiver", "DeleteNewsReceiver",
        # account
        "DescribeAccountSettings", "ModifyAccountSettings",
        # content and review
        "DescribeQualification", "AddQualification", "ModifyQualification", "DeleteQualification",
        "DescribeSmsSignList", "AddSmsSign", "ModifySmsSign", "DeleteSmsSign",
        "DescribeSmsTemplateList", "AddSmsTemplate", "ModifySmsTemplate", "DeleteSmsTemplate",
        "ReviewContent",
        # sending
        "SendSms", "DescribeSendSmsRecord", "CreateSendTask",
        "DescribeSendTasks",
        "ModifyTaskStatusStart", "ModifyTaskStatusStop", "CancelSendSMSTask",
        # audience and general management
        "DescribeBlackList", "AddBlackList", "DeleteBlackList",
        "DescribeUnsubscribe", "ModifyUnsubscribe", "DescribeCustomerGroup", "ModifyCustomerGroup",
        "CreateCustomerGroup", "DeleteCustomerGroup", "AddCustomerNumbers", "DeleteCustomerNumbers",
        "DescribePackageList", "ModifyPackage",
        # statistics and alarms
        "DescribeStatistics", "DescribeAlarms", "ModifyAlarms",
    }
)

ALL_APPS = "sms:app/*"
_RESOURCE = re.compile(r"^(\*|sms:app/\*|sms:app/\d{10})$")
_ACTION = re.compile(r"^sms:[A-Za-z*]+$")

PRESETS: dict[str, tuple[str, dict]] = {
    "SMSFullAccess": (
        "Every SMS action on every application.",
        {"version": "2.0", "statement": [
            {"effect": "allow", "action": ["sms:*"], "resource": [ALL_APPS]}]},
    ),
    "SMSReadOnlyAccess": (
        "Read everything, change nothing.",
        {"version": "2.0", "statement": [
            {"effect": "allow", "action": ["sms:Describe*"], "resource": [ALL_APPS]}]},
    ),
    "SMSReviewer": (
        "Read everything and approve or reject content.",
        {"version": "2.0", "statement": [
            {"effect": "allow", "action": ["sms:Describe*", "sms:ReviewContent"],
             "resource": [ALL_APPS]}]},
    ),
}


class PolicyError(ValueError):
    """A policy document that cannot be accepted; the message says exactly why."""


@dataclass(frozen=True)
class Statement:
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]

    def matches(self, action: str, resource: str) -> bool:
        return any(fnmatchcase(action, a[4:]) for a in self.actions) and any(
            _resource_matches(r, resource) for r in self.resources
        )


def _resource_matches(pattern: str, resource: str) -> bool:
    if pattern in ("*", ALL_APPS):
        return True
    return pattern == resource


def app_resource(sdk_app_id: str | None) -> str:
    return f"sms:app/{sdk_app_id}" if sdk_app_id else ALL_APPS


def _strings(value: object, what: str, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: {what} must be a non-empty list of strings")
    return value


def parse_policy(text: str) -> tuple[Statement, ...]:
    """Validate a policy document; raise PolicyError naming the first problem."""
    try:
        doc = safejson.loads(text)
    except safejson.Refused as exc:
        raise PolicyError(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise PolicyError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except ValueError as exc:  # e.g. an integer past the decoder's 4,300 digits
        raise PolicyError(f"not accepted: {exc}") from None
    if not isinstance(doc, dict):
        raise PolicyError("the document must be a JSON object")
    unknown = set(doc) - {"version", "statement"}
    if unknown:
        raise PolicyError(f"unknown key {sorted(unknown)[0]!r}; allowed: version, statement")
    if doc.get("version") != "2.0":
        raise PolicyError('"version" must be "2.0"')
    raw = doc.get("statement")
    if not isinstance(raw, list) or not raw:
        raise PolicyError('"statement" must be a non-empty list')
    statements = []
    for n, st in enumerate(raw, start=1):
        where = f"statement {n}"
        if not isinstance(st, dict):
            raise PolicyError(f"{where}: must be an object")
        extra = set(st) - {"effect", "action", "resource"}
        if extra:
            raise PolicyError(f"{where}: unknown key {sorted(extra)[0]!r}")
        effect = st.get("effect")
        if effect not in ("allow", "deny"):
            raise PolicyError(f'{where}: unknown effect {effect!r}; use "allow" or "deny"')
        actions = _strings(st.get("action"), "action", where)
        for a in actions:
            if not _ACTION.match(a) or not any(fnmatchcase(x, a[4:]) for x in ACTIONS):
                raise PolicyError(f"{where}: unknown action {a!r}")
        resources = _strings(st.get("resource"), "resource", where)
        for r in resources:
            if not _RESOURCE.match(r):
                raise PolicyError(
                    f"{where}: bad resource pattern {r!r}; use \"sms:app/*\" or "
                    '"sms:app/<10-digit SdkAppId>"'
                )
        statements.append(Statement(effect, tuple(actions), tuple(resources)))
    return tuple(statements)


def evaluate(statements: tuple[Statement, ...], action: str, resource: str) -> bool:
    allowed = False
    for st in statements:
        if st.matches(action, resource):
            if st.effect == "deny":
                return False
            allowed = True
    return allowed


@dataclass(frozen=True)
class Actor:
    """Who is acting: a web user, a Slack user linked to one, an API key, the CLI."""

    account_id: int
    label: str
    user_id: int | None = None
    is_root: bool = False
    statements: tuple[Statement, ...] = field(default=())

    def can(self, action: str, sdk_app_id: str | None = None) -> bool:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action}")  # a programming error, not a user's
        return self.is_root or evaluate(self.statements, action, app_resource(sdk_app_id))

    def require(self, action: str, sdk_app_id: str | None = None) -> None:
        if not self.can(action, sdk_app_id):
            raise PermissionDenied(
                f"You are not allowed to do sms:{action} on {app_resource(sdk_app_id)}."
            )

    def require_root(self) -> None:
        if not self.is_root:
            raise PermissionDenied("Only the root user may do this.")
