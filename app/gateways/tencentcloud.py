"""Tencent Cloud SMS, through the official SDK.

Tencent sends by its own template ids and parameters, not by text: a template
sends here once its `carrier_template_id` is set (on the template's page) and
its signature text is registered at Tencent as well. Messages of one template,
signature and parameters go out in one SendSms call (up to 200 numbers).
Receipts and replies are pulled (`Poller`, run by `smsops run`).
"""

from __future__ import annotations

import logging
import re
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
        groups: dict[tuple[str, str, tuple[str, ...]], list[Outbound]] = {}
        for m in batch:
            if not m.template_ref:
                results[m.message_id] = SubmitResult(
                    m.message_id, False, None, "FailedOperation.TemplateNotEffective",
                    "NO_CARRIER_TEMPLATE")
                continue
            groups.setdefault((m.template_ref, m.sign_name or "", m.params), []).append(m)
        reached = False
        for (template, sign, params), members in groups.items():
            for start in range(0, len(members), MAX_PER_CALL):
                chunk = members[start:start + MAX_PER_CALL]
                req = models.SendSmsRequest()
                req.SmsSdkAppId, req.TemplateId = self.sdk_app_id, template
                req.SignName = sign or None
                req.TemplateParamSet = list(params)
                req.PhoneNumberSet = [m.phone_number for m in chunk]
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
