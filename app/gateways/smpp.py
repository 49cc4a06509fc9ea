"""SMPP 3.4 carriers and aggregators, through smpplib.

Submission binds as a transmitter per batch and keeps a window of submit_sm in
flight. Long messages are split by our own rules (app/sms/text.py) with a UDH,
never by smpplib's splitter, which can break surrogate pairs and `€`. Delivery
receipts and replies (deliver_sm) arrive on a receiver bind held by `Listener`
(`smsops smpp-listen`), which keeps the link alive with enquire_link and
reconnects with back-off.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import time
from collections.abc import Callable
from typing import Any

import smpplib.client
import smpplib.consts as c
import smpplib.exceptions
import smpplib.gsm

from app.gateways.base import GatewayUnavailable, Outbound, Receipt, SubmitResult
from app.sms.text import GSM7, MAINLAND, segment

log = logging.getLogger("smsops.smpp")
UDH_CONCAT = b"\x05\x00\x03"  # IEI 0: 8-bit reference, total, sequence
ESM_UDHI = 0x40
ESM_RECEIPT = 0x04
DATA_CODING = {GSM7: c.SMPP_ENCODING_DEFAULT, "UCS-2": c.SMPP_ENCODING_ISO10646}
STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD",
          7: "UNKNOWN", 8: "REJECTD"}


def encode_parts(text: str, region: str) -> tuple[int, list[bytes]]:
    """(data_coding, short_message per part), with a UDH when there are several."""
    seg = segment(text, force_ucs2=region == MAINLAND)
    if seg.encoding == GSM7:
        encoded = [smpplib.gsm.gsm_encode(p) for p in seg.parts]
    else:
        encoded = [p.encode("utf-16-be") for p in seg.parts]
    if len(encoded) > 1:
        ref = random.randrange(256)
        total = len(encoded)
        encoded = [UDH_CONCAT + bytes((ref, total, n)) + body
                   for n, body in enumerate(encoded, start=1)]
    return DATA_CODING[seg.encoding], encoded


def _address(number: str) -> dict[str, Any]:
    return {"dest_addr_ton": c.SMPP_TON_INTL, "dest_addr_npi": c.SMPP_NPI_ISDN,
            "destination_addr": number.lstrip("+")}


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")


class SmppGateway:
    name = "smpp"

    def __init__(self, config: dict[str, Any]) -> None:
        self.host = config.get("SMPP_HOST") or "127.0.0.1"
        self.port = int(config.get("SMPP_PORT") or 2775)
        self.system_id = config.get("SMPP_SYSTEM_ID") or ""
        self.password = config.get("SMPP_PASSWORD") or ""
        self.source = str(config.get("SMPP_SOURCE_ADDR") or "smsops")
        self.window = max(1, int(config.get("SMPP_WINDOW") or 10))
        self.timeout = float(config.get("SMPP_TIMEOUT_S") or 10)
        self.connect_tries = int(config.get("SMPP_CONNECT_TRIES") or 3)

    def register_signature(self, region: str, content: str) -> bool:
        return True  # the signature travels in the text; nothing to register over SMPP

    def _source(self) -> dict[str, Any]:
        ton = c.SMPP_TON_INTL if self.source.isdigit() else c.SMPP_TON_ALNUM
        return {"source_addr_ton": ton, "source_addr_npi": c.SMPP_NPI_ISDN if
                self.source.isdigit() else c.SMPP_NPI_UNK, "source_addr": self.source}

    def _bind(self, how: str) -> smpplib.client.Client:
        delay = 0.5
        for attempt in range(1, self.connect_tries + 1):
            client = smpplib.client.Client(self.host, self.port, timeout=self.timeout,
                                           allow_unknown_opt_params=True)
            try:
                client.connect()
                getattr(client, f"bind_{how}")(system_id=self.system_id,
                                               password=self.password)
                return client
            except (OSError, smpplib.exceptions.ConnectionError,
                    smpplib.exceptions.PDUError) as exc:
                log.warning("SMPP %s bind to %s:%s failed (try %s): %s", how, self.host,
                            self.port, attempt, exc)
                _close(client)
                if attempt < self.connect_tries:
                    time.sleep(delay)
                    delay *= 2
        raise GatewayUnavailable(f"SMPP {self.host}:{self.port} did not accept a bind")

    def submit(self, batch: list[Outbound]) -> list[SubmitResult]:
        client = self._bind("transmitter")
        pending: dict[int, tuple[int, int]] = {}  # sequence → (message index, part)
        first_id: dict[int, str] = {}
        refused: dict[int, str] = {}

        def answered(pdu: Any) -> None:
            where = pending.pop(pdu.sequence, None)
            if where is None:
                return
            index, part = where
            if pdu.status != 0:
                refused.setdefault(index, f"ESME:{pdu.status:#04x}")
            elif part == 0:
                first_id[index] = _text(pdu.message_id)

        client.set_message_sent_handler(answered)
        client.set_error_pdu_handler(answered)
        try:
            for index, m in enumerate(batch):
                data_coding, parts = encode_parts(m.text, m.region)
                for part, body in enumerate(parts):
                    while len(pending) >= self.window:
                        client.read_once(auto_send_enquire_link=False)
                    pdu = client.send_message(
                        **self._source(), **_address(m.phone_number), short_message=body,
                        data_coding=data_coding, esm_class=ESM_UDHI if len(parts) > 1 else 0,
                        registered_delivery=c.SMPP_SMSC_DELIVERY_RECEIPT_BOTH)
                    pending[pdu.sequence] = (index, part)
            while pending:
                client.read_once(auto_send_enquire_link=False)
        except (OSError, smpplib.exceptions.ConnectionError,
                smpplib.exceptions.PDUError) as exc:
            # Parts without an answer may or may not have left: never send them again.
            log.error("SMPP link failed during a batch: %s", exc)
        finally:
            with contextlib.suppress(Exception):  # closing a link that may have failed
                client.unbind()
            _close(client)
        results = []
        for index, m in enumerate(batch):
            if index in refused:
                results.append(SubmitResult(m.message_id, False, first_id.get(index),
                                            "FailedOperation.GatewayRejected", refused[index]))
            elif index in first_id:
                results.append(SubmitResult(m.message_id, True, first_id[index]))
            else:
                results.append(SubmitResult(m.message_id, False, None,
                                            "FailedOperation.GatewayUnavailable", "NO_RESP"))
        return results


def _close(client: smpplib.client.Client) -> None:
    with contextlib.suppress(Exception):  # already closed
        client.disconnect()


DLR_FIELD = re.compile(r"(id|stat|err):(\S+)", re.IGNORECASE)


def parse_deliver_sm(pdu: Any) -> tuple[str, Any]:
    """("receipt", Receipt) for a delivery report, ("reply", (number, text)) for MO."""
    if (pdu.esm_class or 0) & ESM_RECEIPT:
        fields = {k.lower(): v for k, v in DLR_FIELD.findall(_text(pdu.short_message))}
        gateway_id = _text(pdu.receipted_message_id) or fields.get("id", "")
        state = STATES.get(pdu.message_state or 0) or fields.get("stat", "UNKNOWN").upper()
        return "receipt", Receipt(delivered=state == "DELIVRD", carrier_code=state,
                                  gateway_id=gateway_id)
    body = pdu.short_message or b""
    if (pdu.esm_class or 0) & ESM_UDHI and body:
        body = body[body[0] + 1:]
    text = body.decode("utf-16-be", errors="replace") if pdu.data_coding == \
        c.SMPP_ENCODING_ISO10646 else _gsm_decode(body)
    return "reply", ("+" + _text(pdu.source_addr).lstrip("+"), text)


def _gsm_decode(body: bytes) -> str:
    table = smpplib.gsm.GSM_CHARACTER_TABLE
    out, escape = [], False
    for byte in body:
        if byte == 0x1B:
            escape = True
            continue
        index = byte + 0x80 if escape else byte
        out.append(table[index] if index < len(table) else "?")
        escape = False
    return "".join(out)


class Listener:
    """Holds a receiver bind: receipts and replies flow to the callbacks."""

    def __init__(self, gateway: SmppGateway, on_receipt: Callable[[Receipt], None],
                 on_reply: Callable[[str, str], None], *, idle_s: float = 30) -> None:
        self.gateway = gateway
        self.on_receipt, self.on_reply = on_receipt, on_reply
        self.idle_s = idle_s
        self.running = True
        self.binds = 0

    def _handle(self, pdu: Any) -> None:
        kind, value = parse_deliver_sm(pdu)
        if kind == "receipt":
            self.on_receipt(value)
        else:
            self.on_reply(*value)

    def run(self) -> None:
        delay = 1.0
        while self.running:
            try:
                client = self.gateway._bind("receiver")
            except GatewayUnavailable as exc:
                log.warning("%s; again in %.0f s", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 60)
                continue
            self.binds += 1
            delay = 1.0
            client._socket.settimeout(self.idle_s)  # silence → enquire_link
            client.set_message_received_handler(self._handle)
            try:
                while self.running:
                    client.read_once(auto_send_enquire_link=True)
            except (OSError, smpplib.exceptions.ConnectionError,
                    smpplib.exceptions.PDUError) as exc:
                log.warning("SMPP receiver link lost: %s; reconnecting", exc)
            finally:
                _close(client)

    def stop(self) -> None:
        self.running = False
