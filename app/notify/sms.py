"""SMS as a notification channel: alarm contacts are texted through the account's
own gateway, with a fixed system signature, outside the customer send checks."""

from __future__ import annotations

from app.gateways.base import Gateway, GatewayUnavailable, Outbound
from app.notify import DeliveryError, Message
from app.sms import numbers
from app.sms.text import INTERNATIONAL, MAINLAND, compose

SYSTEM_SIGNATURE = "smsops"
MAX_LENGTH = 300  # a short alarm; the full text goes by email and Slack


class SmsChannel:
    name = "sms"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def send(self, message: Message) -> None:
        try:
            number = numbers.parse_any(message.recipient)
        except numbers.NumberError as exc:
            raise DeliveryError(f"SMS: {exc}") from None
        region = MAINLAND if number.startswith("+86") else INTERNATIONAL
        body = f"{message.subject}. {message.body}"
        text = compose(body[:MAX_LENGTH], SYSTEM_SIGNATURE, region)
        try:
            [result] = self.gateway.submit([Outbound(0, number, text, region)])
        except GatewayUnavailable as exc:
            raise DeliveryError(f"SMS: the gateway is unavailable ({exc})") from None
        if not result.accepted:
            raise DeliveryError(f"SMS: refused by the carrier ({result.carrier_code})")
