"""The management API's operations: one table drives both the Flask routes
(app/api/manage.py) and their part of the OpenAPI document, so the two agree."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(kind: str, **kw: Any) -> Schema:
    return {"type": kind, "nullable": True, **kw}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
STRS: Schema = {"type": "array", "items": STR}
WHEN: Schema = _nullable("string", format="date-time")
ID: Schema = {"type": "integer", "minimum": 1, "maximum": 2147483647}


def _obj(props: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    return out


def _page(item: str) -> Schema:
    return _obj({"items": {"type": "array", "items": _ref(item)}, "page": INT,
                 "page_size": INT, "total": INT}, ("items", "page", "page_size", "total"))


REVIEWED = {"id": INT, "status": STR, "revision": INT, "reject_reason": _nullable("string"),
            "submitted_by": STR, "submitted_at": WHEN, "decided_by": _nullable("string"),
            "decided_at": WHEN}
LIMIT = _obj({"alarm_threshold": _nullable("integer"), "daily_limit": _nullable("integer")})
IMAGE = _nullable("object", properties={"filename": STR, "data_base64": STR},
                  required=["data_base64"],
                  description="A JPG or PNG, base64-encoded; at most 5 MB decoded.")
RULE = _obj({"enabled": BOOL, "limit": INT}, ("limit",))
NUM: Schema = {"type": "number"}
FIGURES = _obj({"requests": INT, "success": INT, "billed": INT,
                "success_rate": _nullable("number")})

SCHEMAS: dict[str, Schema] = {
    "ManageError": _obj({"error": _obj({
        "code": STR, "message": STR, "fields": _obj({}),
        "errors": {"type": "integer", "description": "A file with bad rows (a customer "
                   "group import): how many; nothing was imported."},
        "first_errors": {"type": "array", "items": _ref("RowError"),
                         "description": "The first bad rows, as task validation lists "
                                        "them."}}, ("code", "message"))}, ("error",)),
    "RowError": _obj({"row": INT, "column": STR, "reason": STR}, ("row", "column", "reason")),
    "App": _obj({"sdk_app_id": STR, "name": STR, "overview": STR, "tags": STRS,
                 "enabled": BOOL, "created_at": WHEN}),
    "Thresholds": _obj({"mainland": LIMIT, "international": LIMIT}),
    "Country": _obj({"iso_code": STR, "alarm_threshold": _nullable("integer"),
                     "daily_limit": _nullable("integer")}),
    "FrequencyRules": _obj({"30s": RULE, "hour": RULE, "day": RULE}),
    "AllowlistEntry": _obj({"phone_number": STR, "created_at": WHEN}),
    "Callback": _obj({"status_callback_url": _nullable("string")}),
    "Contact": _obj({"id": INT, "name": STR, "mobile": _nullable("string"),
                     "email": _nullable("string"), "slack_user_id": _nullable("string"),
                     "events": STRS, "mobile_confirmed": BOOL}),
    "Qualification": _obj({**REVIEWED, "use": STR, "enterprise_name": STR,
                           "licence_number": STR, "legal_rep_name": STR,
                           "legal_rep_id_number": STR, "admin_name": STR, "admin_phone": STR}),
    "Signature": _obj({**REVIEWED, "region": STR, "purpose": STR,
                       "qualification_id": _nullable("integer"), "sign_type": STR,
                       "content": STR, "notes": STR, "usable": BOOL, "has_proof_image": BOOL,
                       "has_authorization_image": BOOL}),
    "Template": _obj({**REVIEWED, "region": STR, "name": STR, "sms_type": STR, "content": STR,
                      "notes": STR, "allow_url_params": BOOL,
                      "carrier_template_id": _nullable("string")}),
    "ReviewItem": _obj({"kind": STR, **REVIEWED, "title": STR,
                        "changes": {"type": "array", "items": _obj({"field": STR})},
                        "facts": _obj({})}),
    "Decision": _obj({"kind": STR, **REVIEWED}),
    "MuteEntry": _obj({"id": INT, "phone_number": STR, "signature_id": INT,
                       "sms_type": _nullable("string"), "created_at": WHEN}),
    "Unsubscribe": _obj({"id": INT, "phone_number": STR, "signature_id": INT, "sms_type": STR,
                         "source": STR, "created_at": WHEN}),
    "RemovalRequest": _obj({**REVIEWED, "phone_number": STR, "signature_id": INT,
                            "sms_type": STR, "reason": STR}),
    "Count": _obj({"added": INT, "removed": INT}),
    "Group": _obj({"id": INT, "name": STR, "sms_type": STR, "numbers": INT,
                   "created_by": STR, "created_at": WHEN}),
    "GroupNumber": _obj({"id": INT, "phone_number": STR, "muted": BOOL,
                         "unsubscribed": BOOL, "created_at": WHEN}),
    "GroupAdded": _obj({"group": _ref("Group"), "added": INT, "merged": INT}),
    "Task": _obj({"id": INT, "sdk_app_id": STR, "name": STR, "region": STR, "status": STR,
                  "template_id": INT, "signature_id": _nullable("integer"),
                  "file_name": STR, "send_at": WHEN, "rate_limit": _nullable("integer"),
                  "total_rows": INT, "valid_rows": INT, "error_rows": INT,
                  "billed_items": INT, "failure_reason": _nullable("string"),
                  "created_at": WHEN, "confirmed_at": WHEN, "started_at": WHEN,
                  "finished_at": WHEN}),
    "TaskProgress": _obj({"task": _ref("Task"), "progress": _obj({
        "total": INT, "submitted": INT, "delivered": INT, "failed": INT, "rejected": INT,
        "remaining": INT, "unsent": INT, "rate": NUM, "seconds_left": _nullable("number"),
        "percent": INT})}),
    "TaskValidation": _obj({"rows": INT, "valid": INT, "errors": INT, "billed_items": INT,
                            "seconds": NUM, "first_errors": {"type": "array",
                                                             "items": _ref("RowError")}}),
    "TaskCreated": _obj({"task": _ref("Task"), "validation": _ref("TaskValidation")}),
    "TaskRecord": _obj({"row_no": _nullable("integer"), "phone_number": STR, "status": STR,
                        "content": STR, "billed_items": INT,
                        "error_code": _nullable("string"), "carrier_code": _nullable("string"),
                        "submitted_at": WHEN, "receipt_at": WHEN}),
    "Receipts": _obj({"with_receipt": INT, "without_receipt": INT, "delivered": INT,
                      "failed": INT, "receipt_rate": _nullable("number"),
                      "delivery_rate": _nullable("number"),
                      "reasons": {"type": "array", "items": _ref("Share")}}),
    "Share": _obj({"code": STR, "reason": STR, "count": INT, "share": NUM}),
    "Figures": FIGURES,
    "StatsOverview": _obj({"start": STR, "end": STR, "hourly": BOOL, "total": FIGURES,
                           "trend": {"type": "array", "items": _obj(
                               {"at": STR, **FIGURES["properties"]})}}),
    "CountryFigures": _obj({"iso_code": STR, "calling_code": STR, **FIGURES["properties"],
                            "share": NUM, "unit_price": _nullable("integer")}),
    "VerificationHour": _obj({"sdk_app_id": STR, "app_name": STR, "hour": STR,
                              "requests": INT, "success": INT,
                              "success_rate": _nullable("number"), "yesterday": INT,
                              "growth": _nullable("number")}),
    "Reply": _obj({"id": INT, "phone_number": STR, "text": STR,
                   "sdk_app_id": _nullable("string"), "unsubscribed": BOOL,
                   "received_at": WHEN}),
    "LogMessage": _obj({"id": INT, "serial_no": STR, "sdk_app_id": STR, "phone_number": STR,
                        "region": STR, "iso_code": STR, "sms_type": STR, "status": STR,
                        "content": STR, "characters": INT, "parts": INT,
                        "billed_items": INT, "error_code": _nullable("string"),
                        "reason": _nullable("string"), "carrier_code": _nullable("string"),
                        "task_id": _nullable("integer"),
                        "template_id": _nullable("integer"),
                        "signature_id": _nullable("integer"), "created_at": WHEN,
                        "submitted_at": WHEN, "receipt_at": WHEN}),
    "Alarm": _obj({"id": INT, "event": STR, "label": STR, "sdk_app_id": _nullable("string"),
                   "subject": STR, "body": STR, "created_at": WHEN,
                   "acknowledged_by": _nullable("string"), "acknowledged_at": WHEN}),
    "StandardFile": _obj({"columns": STRS, "example": STRS}, ("columns", "example")),
    "Imported": _obj({"imported": INT}),
    "Deleted": _obj({"deleted": INT, "removed": STR,
                     "signatures_made_unusable": {"type": "array", "items": INT}}),
}

QUALIFICATION_IN = _obj({k: STR for k in (
    "use", "enterprise_name", "licence_number", "legal_rep_name", "legal_rep_id_number",
    "admin_name", "admin_phone")})
SIGNATURE_IN = _obj({"region": {"type": "string", "enum": ["mainland", "international"]},
                     "purpose": STR, "sign_type": STR, "content": STR, "notes": STR,
                     "qualification_id": _nullable("integer"), "proof_image": IMAGE,
                     "authorization_image": IMAGE})
TEMPLATE_IN = _obj({"region": {"type": "string", "enum": ["mainland", "international"]},
                    "name": STR, "sms_type": STR, "content": STR, "notes": STR,
                    "allow_url_params": BOOL})
FILE_TEXT = ("A CSV or XLSX file, base64-encoded; its name says which. At most "
             "TASK_MAX_UPLOAD_MB (30 MB) decoded; CSV in UTF-8, UTF-16 or GB18030.")
FILE: Schema = {"type": "object", "properties": {"filename": STR, "data_base64": STR},
                "required": ["filename", "data_base64"], "description": FILE_TEXT}
TASK_IN = _obj({"sdk_app_id": STR, "template_id": ID, "name": STR, "sign_name": STR,
                "send_at": {"type": "string", "format": "date-time"},
                "rate_limit": _nullable("integer"),
                "file": {**FILE, "description": "Recipients: phone, then variable 1..N. "
                                                + FILE_TEXT}},
               ("sdk_app_id", "template_id", "file"))
DRAFT = {k: v for k, v in TASK_IN["properties"].items() if k != "file"}
GROUP_SEND_IN = _obj({**DRAFT, "params": {
    "type": "array", "items": STR, "nullable": True,
    "description": "The template's variables, the same for every number; leave it out to "
                   "use each number's own imported columns."}}, ("sdk_app_id", "template_id"))
COUNTRIES_IN = _obj({"file": {**FILE, "description": "CSV lines ISO code[,alarm threshold"
                                                     "[,daily limit]], an optional header; "
                                                     "base64-encoded, in a body of at most "
                                                     "1 MB like every small write."}},
                    ("file",))
GROUP_IMPORT_IN = _obj({
    "group_id": {**ID, "description": "An existing group; or give name and sms_type."},
    "name": {"type": "string", "description": "A new group's name."},
    "sms_type": {"type": "string", "description": "A new group's message type."},
    "file": {**FILE, "description": "Numbers, one a row (mainland as 11 digits or +86, "
                                    "others with their country code); other columns are "
                                    "kept with each number. " + FILE_TEXT}},
    ("file",))
STATS_QUERY = ("region", "period", "start", "end", "sdk_app_id", "signature_id", "template_id",
               "iso_code")
CONTACT_IN = _obj({"name": STR, "mobile": STR, "email": STR, "slack_user_id": STR,
                   "events": STRS}, ("name",))


@dataclass(frozen=True)
class Operation:
    key: str  # unique; the policy action, with a suffix where one action has two calls
    method: str
    path: str  # OpenAPI form, under /api/v1
    summary: str
    action: str  # the policy action (SPEC.md §9) the service checks
    response: str
    body: Schema | None = None
    query: tuple[str, ...] = ()
    status: int = 200
    tag: str = "Applications"
    paged: bool = field(default=False)
    upload: str = ""  # "image" or "file": the body carries base64 data (a larger cap)

    @property
    def flask_rule(self) -> str:
        return re.sub(r"\{(\w+_id)\}", r"<int:\1>", self.path).replace(
            "{", "<").replace("}", ">").replace("<int:sdk_app_id>", "<sdk_app_id>")


APP = "/apps/{sdk_app_id}"
_OPS = [
    Operation("DescribeAppList", "GET", "/apps", "List applications", "DescribeAppList",
              "App", paged=True),
    Operation("DescribeAppInfo", "GET", APP, "An application", "DescribeAppInfo", "App"),
    Operation("ModifyAppInfo", "PUT", APP, "Change name, overview and tags", "ModifyAppInfo",
              "App", _obj({"name": STR, "overview": STR, "tags": STRS}, ("name",))),
    Operation("ModifyAppStatus", "PUT", APP + "/status", "Enable or disable",
              "ModifyAppStatus", "App", _obj({"enabled": BOOL}, ("enabled",))),
    Operation("DescribeWarningThreshold", "GET", APP + "/thresholds", "Alarm thresholds and "
              "daily limits", "DescribeWarningThreshold", "Thresholds"),
    Operation("ModifyWarningThreshold", "PUT", APP + "/thresholds/{region}",
              "Set one region's alarm threshold and daily limit", "ModifyWarningThreshold",
              "Thresholds", _obj({"alarm_threshold": _nullable("integer", minimum=0),
                                  "daily_limit": _nullable("integer", minimum=0)})),
    Operation("DescribeCountryConfig", "GET", APP + "/countries", "Allowed countries/regions",
              "DescribeCountryConfig", "Country", paged=True),
    Operation("ModifyCountryConfig", "PUT", APP + "/countries/{iso_code}",
              "Allow a country/region, with its own threshold and limit",
              "ModifyCountryConfig", "Country",
              _obj({"alarm_threshold": _nullable("integer", minimum=0),
                    "daily_limit": _nullable("integer", minimum=0)})),
    Operation("ModifyCountryConfig:import", "POST", APP + "/countries/import",
              "Allow many countries/regions from a CSV file (all or nothing)",
              "ModifyCountryConfig", "Imported", COUNTRIES_IN),
    Operation("ModifyCountryConfig:remove", "DELETE", APP + "/countries/{iso_code}",
              "Stop allowing a country/region", "ModifyCountryConfig", "Deleted"),
    Operation("DescribeFreqRule", "GET", APP + "/frequency", "Frequency limits",
              "DescribeFreqRule", "FrequencyRules"),
    Operation("ModifyFreqRule", "PUT", APP + "/frequency", "Set the frequency limits",
              "ModifyFreqRule", "FrequencyRules",
              _obj({"30s": RULE, "hour": RULE, "day": RULE}, ("30s", "hour", "day"))),
    Operation("DescribeFrequencyWhitelist", "GET", APP + "/allowlist",
              "Numbers exempt from frequency limits", "DescribeFrequencyWhitelist",
              "AllowlistEntry", paged=True),
    Operation("AddFrequencyWhiteList", "POST", APP + "/allowlist", "Add numbers",
              "AddFrequencyWhiteList", "Count", _obj({"phone_numbers": STRS},
                                                     ("phone_numbers",))),
    Operation("DeleteFrequencyWhiteList", "POST", APP + "/allowlist/remove", "Remove numbers",
              "DeleteFrequencyWhiteList", "Count", _obj({"phone_numbers": STRS},
                                                        ("phone_numbers",))),
    Operation("DescribeCallbackInfo", "GET", APP + "/callback", "The status callback URL",
              "DescribeCallbackInfo", "Callback"),
    Operation("ModifyCallbackInfo", "PUT", APP + "/callback", "Set or clear the status "
              "callback URL", "ModifyCallbackInfo", "Callback",
              _obj({"status_callback_url": STR}, ("status_callback_url",))),
    Operation("DescribeNewsReceiver", "GET", APP + "/contacts", "Alarm contacts",
              "DescribeNewsReceiver", "Contact", paged=True),
    Operation("AddNewsReceiver", "POST", APP + "/contacts", "Add an alarm contact",
              "AddNewsReceiver", "Contact", CONTACT_IN, status=201),
    Operation("ModifyNewsReceiver", "PUT", APP + "/contacts/{contact_id}",
              "Change an alarm contact", "ModifyNewsReceiver", "Contact", CONTACT_IN),
    Operation("ModifyNewsReceiver:send_code", "POST", APP + "/contacts/{contact_id}/send-code",
              "Text a one-time code to the contact's mobile (to confirm it for SMS alarms)",
              "ModifyNewsReceiver", "Contact"),
    Operation("ModifyNewsReceiver:confirm", "POST", APP + "/contacts/{contact_id}/confirm",
              "Confirm the contact's mobile with the code texted to it (a wrong code counts "
              "as a try)", "ModifyNewsReceiver", "Contact", _obj({"code": STR}, ("code",))),
    Operation("DeleteNewsReceiver", "DELETE", APP + "/contacts/{contact_id}",
              "Delete an alarm contact", "DeleteNewsReceiver", "Deleted"),
    # content
    Operation("DescribeQualification", "GET", "/qualifications", "Qualifications",
              "DescribeQualification", "Qualification", paged=True, tag="Content"),
    Operation("DescribeQualification:one", "GET", "/qualifications/{qualification_id}",
              "A qualification", "DescribeQualification", "Qualification", tag="Content"),
    Operation("AddQualification", "POST", "/qualifications", "Submit a qualification",
              "AddQualification", "Qualification", QUALIFICATION_IN, status=201,
              tag="Content"),
    Operation("ModifyQualification", "PUT", "/qualifications/{qualification_id}",
              "Change a qualification (back to review)", "ModifyQualification",
              "Qualification", QUALIFICATION_IN, tag="Content"),
    Operation("DeleteQualification", "DELETE", "/qualifications/{qualification_id}",
              "Delete a qualification", "DeleteQualification", "Deleted", tag="Content"),
    Operation("DescribeSmsSignList", "GET", "/signatures", "Signatures of a region",
              "DescribeSmsSignList", "Signature", query=("region",), paged=True,
              tag="Content"),
    Operation("DescribeSmsSignList:one", "GET", "/signatures/{signature_id}", "A signature",
              "DescribeSmsSignList", "Signature", tag="Content"),
    Operation("AddSmsSign", "POST", "/signatures", "Submit a signature, with images",
              "AddSmsSign", "Signature", SIGNATURE_IN, status=201, tag="Content",
              upload="image"),
    Operation("ModifySmsSign", "PUT", "/signatures/{signature_id}",
              "Change a pending or rejected signature", "ModifySmsSign", "Signature",
              SIGNATURE_IN, tag="Content", upload="image"),
    Operation("DeleteSmsSign", "DELETE", "/signatures/{signature_id}", "Delete a signature",
              "DeleteSmsSign", "Deleted", tag="Content"),
    Operation("DescribeSmsTemplateList", "GET", "/templates", "Templates of a region",
              "DescribeSmsTemplateList", "Template", query=("region",), paged=True,
              tag="Content"),
    Operation("DescribeSmsTemplateList:one", "GET", "/templates/{template_id}",
              "A template and its review status", "DescribeSmsTemplateList", "Template",
              tag="Content"),
    Operation("AddSmsTemplate", "POST", "/templates", "Submit a template", "AddSmsTemplate",
              "Template", TEMPLATE_IN, status=201, tag="Content"),
    Operation("ModifySmsTemplate", "PUT", "/templates/{template_id}",
              "Change a pending or rejected template", "ModifySmsTemplate", "Template",
              TEMPLATE_IN, tag="Content"),
    Operation("DeleteSmsTemplate", "DELETE", "/templates/{template_id}", "Delete a template",
              "DeleteSmsTemplate", "Deleted", tag="Content"),
    Operation("ModifySmsTemplate:carrier", "PUT", "/templates/{template_id}/carrier-template-id",
              "Set or clear the template's id at a carrier that sends by template (a change "
              "sends it back to review)", "ModifySmsTemplate", "Template",
              _obj({"carrier_template_id": _nullable("string")}, ("carrier_template_id",)),
              tag="Content"),
    # reviews
    Operation("ReviewContent:queue", "GET", "/reviews", "Everything pending review",
              "DescribeSmsTemplateList", "ReviewItem", paged=True, tag="Reviews"),
    Operation("ReviewContent", "POST", "/reviews/{kind}/{object_id}/decision",
              "Approve or reject the revision you saw", "ReviewContent", "Decision",
              _obj({"decision": {"type": "string", "enum": ["approve", "reject"]},
                    "revision": {"type": "integer", "minimum": 1}, "reason": STR},
                   ("decision", "revision")), tag="Reviews"),
    # audience
    Operation("DescribeBlackList", "GET", "/mute-list", "The mute list", "DescribeBlackList",
              "MuteEntry", query=("phone_number",), paged=True, tag="Audience"),
    Operation("AddBlackList", "POST", "/mute-list", "Mute a number for a signature",
              "AddBlackList", "MuteEntry",
              _obj({"phone_number": STR, "signature_id": INT, "sms_type": STR,
                    "consent": BOOL}, ("phone_number", "signature_id", "consent")),
              status=201, tag="Audience"),
    Operation("DeleteBlackList", "POST", "/mute-list/remove", "Unmute entries",
              "DeleteBlackList", "Count", _obj({"ids": {"type": "array", "items": ID}},
                                               ("ids",)), tag="Audience"),
    Operation("DescribeUnsubscribe", "GET", "/unsubscribes", "What a number unsubscribed from",
              "DescribeUnsubscribe", "Unsubscribe",
              query=("phone_number", "sdk_app_id", "signature_id"), paged=True,
              tag="Audience"),
    Operation("DescribeUnsubscribe:removals", "GET", "/unsubscribe-removals",
              "Removal requests", "DescribeUnsubscribe", "RemovalRequest", paged=True,
              tag="Audience"),
    Operation("ModifyUnsubscribe", "POST", "/unsubscribe-removals",
              "Ask to message an unsubscribed number again (reviewed)", "ModifyUnsubscribe",
              "RemovalRequest",
              _obj({"phone_number": STR, "signature_id": INT, "sms_type": STR, "reason": STR},
                   ("phone_number", "signature_id", "sms_type", "reason")),
              status=201, tag="Audience"),
    # customer groups (SPEC.md §4)
    Operation("DescribeCustomerGroup", "GET", "/groups", "Customer groups, newest first",
              "DescribeCustomerGroup", "Group", query=("name",), paged=True, tag="Audience"),
    Operation("DescribeCustomerGroup:one", "GET", "/groups/{group_id}", "A customer group",
              "DescribeCustomerGroup", "Group", tag="Audience"),
    Operation("DescribeCustomerGroup:numbers", "GET", "/groups/{group_id}/numbers",
              "A group's numbers (prefix: the start of a number)", "DescribeCustomerGroup",
              "GroupNumber", query=("prefix",), paged=True, tag="Audience"),
    Operation("CreateCustomerGroup", "POST", "/groups", "Create a customer group",
              "CreateCustomerGroup", "Group", _obj({"name": STR, "sms_type": STR},
                                                   ("name", "sms_type")),
              status=201, tag="Audience"),
    Operation("ModifyCustomerGroup", "PUT", "/groups/{group_id}", "Rename a group",
              "ModifyCustomerGroup", "Group", _obj({"name": STR}, ("name",)), tag="Audience"),
    Operation("DeleteCustomerGroup", "DELETE", "/groups/{group_id}",
              "Delete a group and its numbers", "DeleteCustomerGroup", "Deleted",
              tag="Audience"),
    Operation("AddCustomerNumbers", "POST", "/groups/{group_id}/numbers",
              "Add up to 100 numbers (all or nothing; duplicates merged)",
              "AddCustomerNumbers", "GroupAdded",
              _obj({"phone_numbers": {"type": "array", "items": STR, "maxItems": 100}},
                   ("phone_numbers",)), tag="Audience"),
    Operation("AddCustomerNumbers:import", "POST", "/groups/import",
              "Import numbers from a CSV or XLSX file into a group, or a new one (all or "
              "nothing: any bad row imports nothing, and the rows are listed)",
              "AddCustomerNumbers", "GroupAdded", GROUP_IMPORT_IN, tag="Audience",
              upload="file"),
    Operation("DeleteCustomerNumbers", "POST", "/groups/{group_id}/numbers/remove",
              "Remove numbers from a group by id", "DeleteCustomerNumbers", "Count",
              _obj({"ids": {"type": "array", "items": ID}}, ("ids",)), tag="Audience"),
    # bulk send tasks (SPEC.md §3)
    Operation("DescribeSendTasks", "GET", "/tasks", "Bulk send tasks, newest first",
              "DescribeSendTasks", "Task", query=("region",), paged=True, tag="Tasks"),
    Operation("DescribeSendTasks:one", "GET", "/tasks/{task_id}",
              "A task, with its progress", "DescribeSendTasks", "TaskProgress", tag="Tasks"),
    Operation("DescribeSendTasks:records", "GET", "/tasks/{task_id}/records",
              "A task's per-recipient records (status: pending lists rows not sent yet)",
              "DescribeSendTasks", "TaskRecord", query=("status", "phone_number"),
              paged=True, tag="Tasks"),
    Operation("DescribeSendTasks:receipts", "GET", "/tasks/{task_id}/receipts",
              "A task's receipt analysis", "DescribeSendTasks", "Receipts", tag="Tasks"),
    Operation("DescribeSendTasks:errors", "GET", "/tasks/{task_id}/errors",
              "Every row of the task's file that cannot be sent, with why", "DescribeSendTasks",
              "RowError", paged=True, tag="Tasks"),
    Operation("DescribeSmsTemplateList:standard_file", "GET",
              "/templates/{template_id}/standard-file",
              "The exact columns of a task file for a template, with an example row",
              "DescribeSmsTemplateList", "StandardFile", tag="Tasks"),
    Operation("CreateSendTask:group", "POST", "/groups/{group_id}/send",
              "Create a task whose recipients are a group's numbers; it awaits confirmation",
              "CreateSendTask", "TaskCreated", GROUP_SEND_IN, status=201, tag="Tasks"),
    Operation("CreateSendTask:validate", "POST", "/tasks/validate",
              "Check a recipient file without creating anything", "CreateSendTask",
              "TaskValidation", TASK_IN, tag="Tasks",
              upload="file"),
    Operation("CreateSendTask", "POST", "/tasks",
              "Create a task from a recipient file; it awaits confirmation",
              "CreateSendTask", "TaskCreated", TASK_IN, status=201, tag="Tasks",
              upload="file"),
    Operation("CreateSendTask:confirm", "POST", "/tasks/{task_id}/confirm",
              "Confirm a task: it starts sending (or waits for send_at)", "CreateSendTask",
              "Task", _obj({"acknowledged": BOOL}, ("acknowledged",)), tag="Tasks"),
    Operation("ModifyTaskStatusStop", "POST", "/tasks/{task_id}/stop", "Stop a sending task",
              "ModifyTaskStatusStop", "Task", tag="Tasks"),
    Operation("CancelSendSMSTask", "POST", "/tasks/{task_id}/cancel",
              "Cancel an unconfirmed or scheduled task", "CancelSendSMSTask", "Task",
              tag="Tasks"),
    # statistics (SPEC.md §7)
    Operation("DescribeStatistics", "GET", "/statistics/overview",
              "Requests, successes and billed items, with their trend", "DescribeStatistics",
              "StatsOverview", query=STATS_QUERY, tag="Statistics"),
    Operation("DescribeStatistics:failures", "GET", "/statistics/failures",
              "Failures by error code", "DescribeStatistics", "Share", query=STATS_QUERY,
              paged=True, tag="Statistics"),
    Operation("DescribeStatistics:receipts", "GET", "/statistics/receipts",
              "Receipt analysis", "DescribeStatistics", "Receipts", query=STATS_QUERY,
              tag="Statistics"),
    Operation("DescribeStatistics:countries", "GET", "/statistics/countries",
              "International traffic by destination", "DescribeStatistics",
              "CountryFigures", query=STATS_QUERY, paged=True, tag="Statistics"),
    Operation("DescribeStatistics:verification", "GET", "/statistics/verification",
              "Verification-code traffic by application and hour", "DescribeStatistics",
              "VerificationHour", query=STATS_QUERY, paged=True, tag="Statistics"),
    Operation("DescribeSendSmsRecord", "GET", "/messages",
              "The SMS log, newest first (total is counted up to 1,001, or to just "
              "past the page asked for: a total that ends the count means at least; "
              "read it again with each page)",
              "DescribeSendSmsRecord", "LogMessage",
              query=("sdk_app_id", "phone_number", "status", "region", "period", "start",
                     "end", "template_id", "signature_id", "iso_code"), paged=True,
              tag="Statistics"),
    Operation("DescribeSendSmsRecord:replies", "GET", "/replies",
              "Replies from recipients, newest first (phone_number: a number or its start)",
              "DescribeSendSmsRecord", "Reply", query=("phone_number",), paged=True,
              tag="Statistics"),
    # alarms (SPEC.md §8)
    Operation("DescribeAlarms", "GET", "/alarms", "Alarms, newest first (since/until: "
              "YYYY-MM-DD, UTC)", "DescribeAlarms", "Alarm",
              query=("sdk_app_id", "event", "since", "until", "unacknowledged"), paged=True,
              tag="Alarms"),
    Operation("ModifyAlarms", "POST", "/alarms/{alarm_id}/acknowledge",
              "Acknowledge an alarm (the first person is kept)", "ModifyAlarms", "Alarm",
              tag="Alarms"),
]
OPERATIONS: dict[str, Operation] = {op.key: op for op in _OPS}

SIGNING = ("Lowercase hex HMAC-SHA256(key=SecretKey, message=method + \"\\n\" + path?query + "
           "\"\\n\" + timestamp + \"\\n\" + nonce + \"\\n\" + raw body), exactly as for the "
           "send API with the AppKey.")
HEADERS = [
    {"name": "X-SMS-SecretId", "in": "header", "required": True,
     "schema": {"type": "string", "maxLength": 64}, "description": "Your SecretId."},
    {"name": "X-SMS-Timestamp", "in": "header", "required": True,
     "schema": {"type": "string", "pattern": "^[0-9]+$"},
     "description": "Unix seconds; at most 300 s from the server's clock."},
    {"name": "X-SMS-Nonce", "in": "header", "required": True,
     "schema": {"type": "string", "minLength": 8, "maxLength": 64,
                "pattern": "^[A-Za-z0-9_.~-]+$"}, "description": "Single use."},
    {"name": "X-SMS-Signature", "in": "header", "required": True,
     "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "description": SIGNING},
]
IDEMPOTENCY = {"name": "Idempotency-Key", "in": "header", "required": False,
               "schema": {"type": "string", "minLength": 1, "maxLength": 128,
                          "pattern": "^[!-~]+$"},
               "description": "Retrying a write with the same key returns the stored answer "
                              "instead of writing twice (header Idempotent-Replayed: true)."}
PAGE_PARAMS = [
    {"name": "page", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": 1000000}},
    {"name": "page_size", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
]
PATH_PARAMS: dict[str, Schema] = {
    "sdk_app_id": {"type": "string", "pattern": "^[0-9]{10}$"},
    "region": {"type": "string", "enum": ["mainland", "international"]},
    "iso_code": {"type": "string", "pattern": "^[A-Za-z]{2}$"},
    "kind": {"type": "string", "enum": ["qualification", "signature", "template",
                                        "unsubscribe_removal"]},
}
# Query parameters that are more than a plain string.
QUERY_PARAMS: dict[str, Schema] = {
    "unacknowledged": {"schema": {"type": "boolean", "default": False},
                       "description": "true: only alarms nobody has acknowledged yet (the "
                       "ones waiting for someone; review results and test alarms are only "
                       "told, so never listed). Also 1/0."},
}
ERRORS = {"400": "Invalid input; fields says which.", "401": "Missing, stale, replayed or "
          "wrong signature, or a disabled pair.", "403": "Your policies do not allow this.",
          "404": "No such object, or not one you may see.", "409": "The current state "
          "forbids this (e.g. it changed since you read it).", "413": "The body is too large.",
          "422": "The Idempotency-Key was used with a different request."}


def _error_response(text: str) -> Schema:
    return {"description": text,
            "content": {"application/json": {"schema": _ref("ManageError")}}}


def document_part() -> tuple[dict[str, Any], dict[str, Schema]]:
    """The paths and component schemas of the management API."""
    paths: dict[str, Any] = {}
    for op in _OPS:
        params = list(HEADERS)
        for name in re.findall(r"\{(\w+)\}", op.path):
            schema = PATH_PARAMS.get(name, ID if name.endswith("_id") else STR)
            params.append({"name": name, "in": "path", "required": True, "schema": schema})
        params += [{"name": q, "in": "query",
                    # Statistics are of one region: no default stands in for both.
                    "required": q == "region" and op.action == "DescribeStatistics",
                    "schema": PATH_PARAMS["region"] if q == "region" else STR,
                    **QUERY_PARAMS.get(q, {})} for q in op.query]
        if op.paged:
            params += PAGE_PARAMS
        if op.method != "GET":
            params.append(IDEMPOTENCY)
        result = _page(op.response) if op.paged else _ref(op.response)
        spec: dict[str, Any] = {
            "operationId": op.key.replace(":", "_"), "summary": op.summary,
            "tags": [op.tag], "x-policy-action": f"sms:{op.action}", "parameters": params,
            "responses": {str(op.status): {"description": "Done.", "content": {
                "application/json": {"schema": result}}},
                **{code: _error_response(text) for code, text in ERRORS.items()}},
        }
        if op.body is not None:
            spec["requestBody"] = {"required": True,
                                   "content": {"application/json": {"schema": op.body}}}
        paths.setdefault("/api/v1" + op.path, {})[op.method.lower()] = spec
    return paths, SCHEMAS
