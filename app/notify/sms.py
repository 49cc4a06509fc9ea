"""SMS as a notification channel: alarm contacts are texted through the account's
own gateway, with a fixed system signature, outside the customer send checks. Only
catalogue wording is texted (app/sms/alarm_texts.py); the message's subject is not."""

from __future__ import annotations

from app.gateways.base import Gateway, GatewayUnavailable, Outbound
from app.notify import DeliveryError, Message
from app.sms import alarm_texts, numbers
from app.sms.text import INTERNATIONAL, MAINLAND, compose

SYSTEM_SIGNATURE = "smsops"


class SmsChannel:
    name = "sms"

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def send(self, message: Message) -> None:
        try:
            number = numbers.parse_any(message.recipient)
        except numbers.NumberError as exc:
            raise DeliveryError(f"SMS: {exc}", permanent=True) from None
        if not alarm_texts.is_catalogued(message.body):
            # No user-written text leaves by SMS without review: catalogue wording only.
            raise DeliveryError("Refused: SMS alarms use the fixed catalogue wording only.",
                                permanent=True)
        region = MAINLAND if number.startswith("+86") else INTERNATIONAL
        text = compose(message.body, SYSTEM_SIGNATURE, region)
        try:
            [result] = self.gateway.submit([Outbound(0, number, text, region)])
        except GatewayUnavailable as exc:
            raise DeliveryError(f"SMS: the gateway is unavailable ({exc})") from None
        if not result.accepted:
            raise DeliveryError(f"SMS: refused by the carrier ({result.carrier_code})")
