"""Tencent Cloud SMS, through the official SDK.

Tencent sends by its own template ids and parameters, not by text: a template
sends here once its `carrier_template_id` is set (on the template's page) and
its signature text is registered at Tencent as well. Messages of one template,
signature and parameters go out in one SendSms call (up to 200 numbers).
Receipts and replies are pulled (`Poller`, run by `smsops run`).

Each SendSms call carries the claim's attempt id as its SessionContext, which
Tencent returns with every status report: `lookup` finds what became of an attempt
whose answer never came (a read timeout, a worker killed after the call) by asking
for the number's reports and matching that context. Within one context a number is
sent at most once (a repeat goes alone, under a context of its own), so a report
names exactly one message. No report yet proves nothing: such messages stay
`unknown` and are asked about again (app/services/pipeline.py, `ask_carrier`).
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from typing import Any

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
    TencentCloudSDKException,
)
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client

from app.gateways.base import GatewayUnavailable, Outbound, Receipt, SubmitResult

log = logging.getLogger("smsops.tencentcloud")
MAX_PER_CALL = 200
# What a failed SendSms call means for its messages. The SDK wraps every transport
# error as ClientNetworkError with the underlying message: only one that says no
# connection was made proves the request never left. A read timeout, a dropped
# answer or a non-200 from Tencent's front may follow a send: unknown, never resent.
NEVER_CONNECTED = re.compile(r"Failed to establish a new connection|NameResolution|"
                             r"Name or service not known|Connection refused|"
                             r"ConnectTimeout|timed out\. \(connect timeout", re.IGNORECASE)
# Error codes of requests Tencent turned away without sending (throttled, or our
# credentials refused): sent again once it takes them.
TURNED_AWAY = ("RequestLimitExceeded", "AuthFailure", "UnauthorizedOperation")
NOT_SENT, UNKNOWN, REFUSED = "not_sent", "unknown", "refused"
# Reports of one number searched when an attempt is looked up: one call, Tencent's
# most (100; its Offset is fixed at 0), from the message's acceptance until now,
# within the 7 days Tencent keeps (LOOKUP_BACK_S when the acceptance is unknown).
LOOKUP_LIMIT = 100
LOOKUP_BACK_S = 72 * 3600
LOOKUP_KEPT_S = 7 * 86400 - 3600
Group = tuple[str, str, tuple[str, ...]]  # one SendSms: template, signature, parameters


def outcome_of(exc: TencentCloudSDKException) -> str:
    """NOT_SENT, UNKNOWN or REFUSED (an Error in the answer: these messages fail)."""
    code = str(exc.get_code() or "")
    if code == "ClientNetworkError":
        return NOT_SENT if NEVER_CONNECTED.search(str(exc.get_message() or "")) else UNKNOWN
    if code == "ServerNetworkError" or code.startswith("InternalError"):
        return UNKNOWN
    return NOT_SENT if code.startswith(TURNED_AWAY) else REFUSED


class TencentCloudGateway:
    name = "tencentcloud"
    asks_again = True  # a report may come after the lookup that found none

    def __init__(self, config: dict[str, Any]) -> None:
        self.sdk_app_id = str(config.get("TENCENTCLOUD_SDK_APP_ID") or "")
        http = HttpProfile(endpoint=config.get("TENCENTCLOUD_ENDPOINT")
                           or "sms.tencentcloudapi.com",
                           protocol=config.get("TENCENTCLOUD_PROTOCOL") or "https",
                           reqTimeout=int(config.get("TENCENTCLOUD_TIMEOUT_S") or 20))
        self.client = sms_client.SmsClient(
            credential.Credential(config.get("TENCENTCLOUD_SECRET_ID") or "",
                                  config.get("TENCENTCLOUD_SECRET_KEY") or ""),
            config.get("TENCENTCLOUD_REGION") or "ap-guangzhou",
            ClientProfile(httpProfile=http))

    def register_signature(self, region: str, content: str) -> bool:
        return True  # registered at Tencent by its own review, under the same text

    def submit(self, batch: list[Outbound]) -> list[SubmitResult]:
        results: dict[int, SubmitResult] = {}
        groups: dict[Group, list[Outbound]] = {}
        for m in batch:
            if not m.template_ref:
                results[m.message_id] = SubmitResult(
                    m.message_id, False, None, "FailedOperation.TemplateNotEffective",
                    "NO_CARRIER_TEMPLATE")
                continue
            groups.setdefault((m.template_ref, m.sign_name or "", m.params), []).append(m)
        reached = False
        attempt = batch[0].attempt_id if batch else None  # a batch is one claim
        times = Counter(m.phone_number for m in batch)  # template-less ones too
        for (template, sign, params), chunk, session in _calls(groups, attempt, times):
            req = models.SendSmsRequest()
            req.SmsSdkAppId, req.TemplateId = self.sdk_app_id, template
            req.SignName = sign or None
            req.TemplateParamSet = list(params)
            req.PhoneNumberSet = [m.phone_number for m in chunk]
            req.SessionContext = session or None
            try:
                resp = self.client.SendSms(req)
            except TencentCloudSDKException as exc:
                outcome = outcome_of(exc)
                log.error("Tencent Cloud SendSms failed (%s): %s", outcome, exc.get_code())
                code = str(exc.get_code())[:64]
                reached = reached or outcome != NOT_SENT
                for m in chunk:
                    results[m.message_id] = SubmitResult(
                        m.message_id, False, None,
                        "FailedOperation.GatewayRejected" if outcome == REFUSED
                        else "FailedOperation.GatewayUnavailable", code,
                        unknown=outcome == UNKNOWN, not_sent=outcome == NOT_SENT)
                continue
            reached = True
            by_number = {s.PhoneNumber: s for s in resp.SendStatusSet or []}
            for m in chunk:
                status = by_number.get(m.phone_number)
                if status is not None and status.Code == "Ok":
                    results[m.message_id] = SubmitResult(m.message_id, True, status.SerialNo)
                else:
                    code = status.Code if status is not None else "NO_STATUS"
                    results[m.message_id] = SubmitResult(
                        m.message_id, False, status.SerialNo if status else None,
                        "FailedOperation.GatewayRejected", code[:64])
        if groups and not reached:  # nothing left: the whole batch waits for Tencent
            raise GatewayUnavailable("Tencent Cloud SMS could not be reached")
        return [results[m.message_id] for m in batch]

    def lookup(self, batch: list[Outbound]) -> list[SubmitResult | None]:
        """What became of each message of an attempt, from its number's status reports:
        found, the submission with its receipt; not found, `unknown` (Tencent cannot
        be told to refuse a late call, and a report may still come)."""
        now = int(time.time())
        out: list[SubmitResult | None] = []
        for m in batch:
            try:
                report = self._report(m, now)
            except GatewayUnavailable:
                if not out:
                    raise
                # Throttled part-way: keep what was found; the rest stay unknown and
                # are asked about again (pipeline.ask_carrier).
                out += [_unknown(o.message_id) for o in batch[len(out):]]
                break
            if report is None:
                out.append(_unknown(m.message_id))
                continue
            serial = str(report.SerialNo or "")
            out.append(SubmitResult(m.message_id, True, serial, receipt=Receipt(
                delivered=report.ReportStatus == "SUCCESS",
                carrier_code=(report.Description or report.ReportStatus or "")[:64],
                gateway_id=serial)))
        return out

    def _report(self, m: Outbound, now: int) -> Any:
        """The status report of `m`'s attempt for its number, or None (none yet, or
        Tencent refused this question: asked again later). Raises GatewayUnavailable
        when Tencent cannot be asked now (unreachable, throttled, its own fault)."""
        contexts = {_context(m.attempt_id), _context(m.attempt_id, m.message_id)}
        req = models.PullSmsSendStatusByPhoneNumberRequest()
        req.SmsSdkAppId, req.PhoneNumber = self.sdk_app_id, m.phone_number
        req.Offset, req.Limit = 0, LOOKUP_LIMIT
        begin = int(m.since.timestamp()) - 60 if m.since else now - LOOKUP_BACK_S
        req.BeginTime, req.EndTime = max(begin, now - LOOKUP_KEPT_S), now
        try:
            found = self.client.PullSmsSendStatusByPhoneNumber(req).PullSmsSendStatusSet
        except TencentCloudSDKException as exc:
            code = str(exc.get_code() or "")
            if code in ("ClientNetworkError", "ServerNetworkError") \
                    or code.startswith(("InternalError", "RequestLimitExceeded")):
                raise GatewayUnavailable(f"Tencent Cloud lookup failed: {code}") from exc
            log.warning("Tencent Cloud refused a lookup (%s): the message stays unknown", code)
            return None
        # A number repeated in an attempt went out only under contexts of its own
        # (_calls), so either context names exactly one message.
        return next((r for r in found or [] if r.SessionContext in contexts
                     and r.PhoneNumber == m.phone_number), None)

    def pull(self) -> tuple[list[Receipt], list[tuple[str, str]]]:
        """Receipts and replies waiting at Tencent (each is handed out once)."""
        receipts, replies = [], []
        req = models.PullSmsSendStatusRequest()
        req.Limit, req.SmsSdkAppId = 100, self.sdk_app_id
        for s in self.client.PullSmsSendStatus(req).PullSmsSendStatusSet or []:
            receipts.append(Receipt(delivered=s.ReportStatus == "SUCCESS",
                                    carrier_code=(s.Description or s.ReportStatus or "")[:64],
                                    gateway_id=s.SerialNo))
        reply_req = models.PullSmsReplyStatusRequest()
        reply_req.Limit, reply_req.SmsSdkAppId = 100, self.sdk_app_id
        for r in self.client.PullSmsReplyStatus(reply_req).PullSmsReplyStatusSet or []:
            replies.append((r.PhoneNumber, r.ReplyContent))
        return receipts, replies


def _unknown(message_id: int) -> SubmitResult:
    return SubmitResult(message_id, False, None, "FailedOperation.OutcomeUnknown",
                        unknown=True)


def _context(attempt: str | None, message_id: int | None = None) -> str:
    if not attempt:
        return ""
    return f"smsops:{attempt}" if message_id is None else f"smsops:{attempt}:{message_id}"


def _calls(groups: dict[Group, list[Outbound]], attempt: str | None,
           times: Counter[str]) -> list[tuple[Group, list[Outbound], str]]:
    """SendSms calls of up to MAX_PER_CALL numbers, with their SessionContext: the
    attempt's, except for a number the attempt holds more than once, whose messages
    each go alone under a context of their own. A report's (context, number) then
    names one message, whichever of the attempt's messages are asked about later."""
    calls = []
    for key, members in groups.items():
        shared = [m for m in members if times[m.phone_number] == 1]
        alone = [m for m in members if times[m.phone_number] > 1]
        calls += [(key, shared[i:i + MAX_PER_CALL], _context(attempt))
                  for i in range(0, len(shared), MAX_PER_CALL)]
        calls += [(key, [m], _context(attempt, m.message_id)) for m in alone]
    return calls
