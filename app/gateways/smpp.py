"""SMPP 3.4 carriers and aggregators, through smpplib.

Submission binds as a transmitter per batch and keeps a window of submit_sm in
flight, paced by an optional submit-rate cap (a token bucket, per worker
process). Long messages are split by our own rules (app/sms/text.py) with a UDH,
never by smpplib's splitter, which can break surrogate pairs and `€`.

What a batch's messages end as (SubmitResult):
- every part answered ESME_ROK: accepted, with every part's carrier id;
- a part refused (any other error status): failed;
- ESME_RTHROTTLED / ESME_RMSGQFUL mean "slow down and resubmit": the part is
  sent again after a back-off (doubling, up to 1 s) within the batch's time
  budget (SMPP_BATCH_BUDGET_S); after it no new message starts, and what never
  reached the carrier is returned `not_sent` (back to `accepted` in the pipeline);
- the link drops: messages never written are `not_sent`; those written and not
  answered (the in-flight window) may or may not have left, so they are
  `unknown` and never resent blindly. A message with some parts taken and others
  not is `unknown` too (`PARTIAL`): resending it would repeat the taken parts.
A bind that fails opens a back-off (doubling up to SMPP_RETRY_MAX_S) during which
batches give up at once; the pipeline's sweeper re-drives accepted messages, so
the carrier is retried for as long as it is down.

Receipts and replies arrive on a receiver bind held by `Listener` (`smsops
smpp-listen`), as deliver_sm or data_sm. Only final states (2 DELIVERED, 3
EXPIRED, 4 DELETED, 5 UNDELIVERABLE, 8 REJECTED) settle a message; ENROUTE,
ACCEPTED and UNKNOWN (1, 6, 7) are intermediate and ignored. Receipts are handed
over in batches (every 0.2 s or 500), and their deliver_sm_resp / data_sm_resp are
sent only once the batch is stored, so a receipt acknowledged is a receipt kept.
Multi-part replies (UDH with an 8- or 16-bit reference, or sar_* TLVs) are held
until every part arrived, or SMPP_MO_HOLD_S passed, then stored as one reply.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import select
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import smpplib.client
import smpplib.consts as c
import smpplib.exceptions
import smpplib.smpp

from app.gateways.base import GatewayUnavailable, Outbound, Receipt, SubmitResult
from app.sms.text import GSM7, MAINLAND, gsm7_decode, gsm7_encode, segment

log = logging.getLogger("smsops.smpp")
UDH_CONCAT = b"\x05\x00\x03"  # IEI 0: 8-bit reference, total, sequence
ESM_UDHI = 0x40
ESM_RECEIPT = 0x04  # SMSC delivery receipt
ESM_INTERMEDIATE = 0x20  # intermediate delivery notification
DATA_CODING = {GSM7: c.SMPP_ENCODING_DEFAULT, "UCS-2": c.SMPP_ENCODING_ISO10646}
STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD",
          7: "UNKNOWN", 8: "REJECTD"}
FINAL_STATES = {2, 3, 4, 5, 8}
# `stat:` words in a receipt's text, as different SMSCs spell them.
STAT_WORDS = {"DELIVERED": "DELIVRD", "UNDELIVERABLE": "UNDELIV", "REJECTED": "REJECTD",
              "ACCEPTED": "ACCEPTD"}
FINAL_STATS = {STATES[s] for s in FINAL_STATES}
THROTTLED = {c.SMPP_ESME_RTHROTTLED, c.SMPP_ESME_RMSGQFUL}
THROTTLE_MIN_S, THROTTLE_MAX_S = 0.05, 1.0
# A PDU the library cannot read (a vendor command) ends the link like a broken one:
# what was written and unanswered is `unknown`, what was not is sent again.
LINK_ERRORS = (OSError, smpplib.exceptions.ConnectionError, smpplib.exceptions.PDUError,
               smpplib.exceptions.UnknownCommandError)
RECEIPT_FLUSH_S, RECEIPT_FLUSH_MAX = 0.2, 500


def encode_parts(text: str, region: str) -> tuple[int, list[bytes]]:
    """(data_coding, short_message per part), with a UDH when there are several."""
    seg = segment(text, force_ucs2=region == MAINLAND)
    if seg.encoding == GSM7:
        encoded = [gsm7_encode(p) for p in seg.parts]  # the segmenter's own table
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


def describe(exc: BaseException) -> str:
    """smpplib raises ConnectionError() with no text: always say what it was."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class TokenBucket:
    """At most `rate` submits per second, one at a time (no burst): a carrier's cap
    is usually counted over short windows. 0: no cap."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = 1.0
        self.at = time.monotonic()

    def wait_s(self) -> float:
        """Seconds until a submit may go (0: now)."""
        if not self.rate:
            return 0.0
        now = time.monotonic()
        self.tokens = min(1.0, self.tokens + (now - self.at) * self.rate)
        self.at = now
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self) -> None:
        if self.rate:
            self.tokens -= 1


@dataclass
class _Progress:
    """One message of a batch on its way out."""

    coding: int
    parts: list[bytes]
    ids: dict[int, str] = field(default_factory=dict)  # part → carrier id
    unanswered: set[int] = field(default_factory=set)  # written, no answer yet
    refused: str | None = None

    def result(self, message_id: int) -> SubmitResult:
        n, first = len(self.parts), self.ids.get(0)
        if self.refused:
            return SubmitResult(message_id, False, first, "FailedOperation.GatewayRejected",
                                self.refused)
        if len(self.ids) == n:
            return SubmitResult(message_id, True, first, part_ids=tuple(
                self.ids[k] for k in range(n)) if n > 1 else ())
        if not self.ids and not self.unanswered:
            return SubmitResult(message_id, False, None, "FailedOperation.GatewayUnavailable",
                                "NOT_SENT", not_sent=True)
        # Every part's id, "" where none came: a receipt for a part that went out must
        # not settle the message as if it went out whole (pipeline: message_part).
        return SubmitResult(message_id, False, first, "FailedOperation.OutcomeUnknown",
                            "NO_RESP" if self.unanswered else "PARTIAL", unknown=True,
                            part_ids=tuple(self.ids.get(k, "") for k in range(n))
                            if n > 1 else ())


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
        # A batch's results must be recorded within its lease (LEASE_S): the budget
        # and the time after it for started messages (at most half again) fit in it.
        self.batch_budget_s = min(float(config.get("SMPP_BATCH_BUDGET_S") or 20),
                                  0.6 * float(config.get("LEASE_S") or 30))
        self.retry_max_s = float(config.get("SMPP_RETRY_MAX_S") or 30)
        self.mo_hold_s = float(config.get("SMPP_MO_HOLD_S") or 60)
        self.bucket = TokenBucket(float(config.get("SMPP_MAX_SUBMITS_PER_S") or 0))
        self._failures = 0
        self._down_until = 0.0

    def register_signature(self, region: str, content: str) -> bool:
        return True  # the signature travels in the text; nothing to register over SMPP

    def _source(self) -> dict[str, Any]:
        ton = c.SMPP_TON_INTL if self.source.isdigit() else c.SMPP_TON_ALNUM
        return {"source_addr_ton": ton, "source_addr_npi": c.SMPP_NPI_ISDN if
                self.source.isdigit() else c.SMPP_NPI_UNK, "source_addr": self.source}

    def _bind(self, how: str) -> smpplib.client.Client:
        if how == "transmitter" and time.monotonic() < self._down_until:
            raise GatewayUnavailable(
                f"SMPP {self.host}:{self.port} is down; next bind in "
                f"{self._down_until - time.monotonic():.1f} s")
        delay = 0.5
        for attempt in range(1, self.connect_tries + 1):
            client = smpplib.client.Client(self.host, self.port, timeout=self.timeout,
                                           allow_unknown_opt_params=True)
            try:
                client.connect()
                getattr(client, f"bind_{how}")(system_id=self.system_id,
                                               password=self.password)
                self._failures, self._down_until = 0, 0.0
                return client
            except LINK_ERRORS as exc:
                log.warning("SMPP %s bind to %s:%s failed (try %s): %s", how, self.host,
                            self.port, attempt, describe(exc))
                _close(client)
                if attempt < self.connect_tries:
                    time.sleep(delay)
                    delay *= 2
        # Back off (capped), never give up: the sweeper re-drives what waits.
        self._failures += 1
        self._down_until = time.monotonic() + self.backoff_s(self._failures)
        raise GatewayUnavailable(f"SMPP {self.host}:{self.port} did not accept a bind")

    def backoff_s(self, failures: int) -> float:
        return float(min(self.retry_max_s, 0.5 * 2 ** min(failures - 1, 20)))

    def submit(self, batch: list[Outbound]) -> list[SubmitResult]:
        if not batch:
            return []
        progress = [_Progress(*encode_parts(m.text, m.region)) for m in batch]
        client = self._bind("transmitter")
        started = time.monotonic()
        new_until = started + self.batch_budget_s  # no new message starts after this
        give_up = new_until + min(5.0, self.batch_budget_s / 2)  # started ones finish
        todo = deque((i, k) for i, p in enumerate(progress) for k in range(len(p.parts)))
        again: deque[tuple[int, int]] = deque()  # throttled parts: before anything new
        pending: dict[int, tuple[int, int]] = {}  # sequence → (message, part)
        # After a throttle: pause, then one submit in flight, one more per success
        # up to the window (the carrier said its limit; find it again gently).
        pause = {"until": 0.0, "backoff": THROTTLE_MIN_S, "limit": float(self.window)}

        def answered(pdu: Any) -> None:
            where = pending.pop(pdu.sequence, None)
            if where is None:
                return
            index, part = where
            p = progress[index]
            p.unanswered.discard(part)
            if pdu.status in THROTTLED:  # not taken: slow down and send it again
                again.append(where)
                now = time.monotonic()
                if now >= pause["until"]:  # one back-off per throttling episode
                    pause["until"] = now + pause["backoff"]
                    pause["backoff"] = min(pause["backoff"] * 2, THROTTLE_MAX_S)
                pause["limit"] = 1.0
            elif pdu.status != 0:
                p.refused = p.refused or f"ESME:{pdu.status:#04x}"
            else:
                p.ids[part] = _text(pdu.message_id)
                pause["backoff"] = THROTTLE_MIN_S
                pause["limit"] = min(pause["limit"] + 1, self.window)

        client.set_message_sent_handler(answered)
        client.set_error_pdu_handler(answered)
        link_ok = True
        heard = time.monotonic()
        try:
            while todo or again or pending:
                now = time.monotonic()
                if now > give_up:
                    log.warning("SMPP batch out of time: %s parts throttled, %s unanswered",
                                len(again), len(pending))
                    break
                if todo and todo[0][1] == 0 and now > new_until:
                    todo.clear()  # never started: not sent, drained again later
                    continue
                queue = again or todo
                wait: float | None = None  # None: only an answer can free the window
                if queue and len(pending) < pause["limit"]:
                    wait = max(pause["until"] - now, self.bucket.wait_s())
                    if wait <= 0:
                        index, part = queue.popleft()
                        if progress[index].refused:
                            continue  # a refused message's other parts stay home
                        self._send(client, batch[index], progress[index], part, pending,
                                   index)
                        heard = time.monotonic()  # the answer's wait starts now
                        continue
                if not pending:
                    time.sleep(min(wait or 0.0, max(give_up - now, 0.0)))
                    continue
                timeout = min(wait if wait is not None else self.timeout,
                              max(give_up - now, 0.0))
                if select.select([client._socket], [], [], timeout)[0]:
                    client.read_once(auto_send_enquire_link=False)
                    heard = time.monotonic()
                elif time.monotonic() - heard > self.timeout:
                    raise smpplib.exceptions.ConnectionError(
                        f"no answer for {self.timeout:.0f} s")
        except LINK_ERRORS as exc:
            link_ok = False
            log.error("SMPP link failed during a batch: %s", describe(exc))
            _drain(client)  # answers that arrived before the link went still count
        finally:
            if link_ok:
                unbind(client, 2.0)
            _close(client)
        return [p.result(m.message_id) for m, p in zip(batch, progress, strict=True)]

    def _send(self, client: smpplib.client.Client, m: Outbound, p: _Progress, part: int,
              pending: dict[int, tuple[int, int]], index: int) -> None:
        # If this raises, the PDU did not reach the socket whole: the SMSC cannot have
        # read it, so the part counts as never written.
        pdu = client.send_message(
            **self._source(), **_address(m.phone_number), short_message=p.parts[part],
            data_coding=p.coding, esm_class=ESM_UDHI if len(p.parts) > 1 else 0,
            registered_delivery=c.SMPP_SMSC_DELIVERY_RECEIPT_BOTH)
        pending[pdu.sequence] = (index, part)
        p.unanswered.add(part)
        self.bucket.take()


def _drain(client: smpplib.client.Client) -> None:
    """Hand the PDUs already received to the handlers (the link is going)."""
    with contextlib.suppress(*LINK_ERRORS, ValueError, AttributeError, TypeError):
        while select.select([client._socket], [], [], 0)[0]:
            pdu = client.read_pdu()
            if pdu.command == "submit_sm_resp":
                client.message_sent_handler(pdu=pdu)


def unbind(client: smpplib.client.Client, wait_s: float) -> bool:
    """Say unbind and wait (briefly) for unbind_resp; PDUs arriving meanwhile are
    not acknowledged, so the SMSC sends them again on the next bind."""
    with contextlib.suppress(*LINK_ERRORS, ValueError):
        client.send_pdu(smpplib.smpp.make_pdu("unbind", client=client))
        end = time.monotonic() + wait_s
        while (left := end - time.monotonic()) > 0:
            if not select.select([client._socket], [], [], left)[0]:
                break
            if client.read_pdu().command == "unbind_resp":
                return True
    return False


def _close(client: smpplib.client.Client) -> None:
    with contextlib.suppress(Exception):  # already closed
        client.disconnect()


# A receipt's fields, each a word of its own; `text:` (the message's first characters)
# and all after it are the sender's words, never read as fields.
DLR_FIELD = re.compile(r"(?<!\S)(id|stat|err):(\S+)", re.IGNORECASE)
DLR_TEXT = re.compile(r"(?<!\S)text:", re.IGNORECASE)


@dataclass(frozen=True)
class MoPart:
    """A reply as it arrived: possibly one part of several."""

    number: str
    coding: int
    body: bytes
    concat: tuple[int, int, int] | None = None  # (reference, total, this part's number)


def parse(pdu: Any) -> tuple[str, Any]:
    """("receipt", Receipt) for a final delivery report, ("intermediate", state) for
    one that is not final, ("reply", MoPart) for MO; deliver_sm or data_sm."""
    body = getattr(pdu, "short_message", None) or getattr(pdu, "message_payload", None) or b""
    esm = pdu.esm_class or 0
    if esm & (ESM_RECEIPT | ESM_INTERMEDIATE):
        fields: dict[str, str] = {}
        for key, value in DLR_FIELD.findall(DLR_TEXT.split(_text(body), 1)[0]):
            fields.setdefault(key.lower(), value)  # the first of each
        gateway_id = _text(pdu.receipted_message_id) or fields.get("id", "")
        state = pdu.message_state
        if state is not None:
            code, final = STATES.get(state, f"STATE:{state}"), state in FINAL_STATES
        else:
            stat = fields.get("stat", "").upper()
            code = STAT_WORDS.get(stat, stat)
            final = code in FINAL_STATS
        if not final or esm & ESM_INTERMEDIATE:
            return "intermediate", code
        return "receipt", Receipt(delivered=code == "DELIVRD", carrier_code=code,
                                  gateway_id=gateway_id)
    concat = None
    if esm & ESM_UDHI and body:
        concat, body = _split_udh(body)
    if getattr(pdu, "sar_msg_ref_num", None) is not None:
        concat = (pdu.sar_msg_ref_num, pdu.sar_total_segments or 1,
                  pdu.sar_segment_seqnum or 1)
    number = "+" + _text(pdu.source_addr).lstrip("+")
    return "reply", MoPart(number, pdu.data_coding or 0, body, concat)


def parse_deliver_sm(pdu: Any) -> tuple[str, Any]:
    """parse(), with a single-part reply as (number, text)."""
    kind, value = parse(pdu)
    if kind == "reply":
        return kind, (value.number, decode(value.coding, value.body))
    return kind, value


def _split_udh(body: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    """The concatenation element of a UDH (IEI 0: 8-bit reference, IEI 8: 16-bit)."""
    size = body[0]
    udh, rest = body[1:1 + size], body[1 + size:]
    concat, i = None, 0
    while i + 1 < len(udh):
        iei, length = udh[i], udh[i + 1]
        value = udh[i + 2:i + 2 + length]
        if iei == 0 and length == 3:
            concat = (value[0], value[1], value[2])
        elif iei == 8 and length == 4:
            concat = ((value[0] << 8) | value[1], value[2], value[3])
        i += 2 + length
    return concat, rest


def decode(coding: int, body: bytes) -> str:
    if coding == c.SMPP_ENCODING_ISO10646:
        return body.decode("utf-16-be", errors="replace")
    if coding == c.SMPP_ENCODING_ISO88591:
        return body.decode("latin-1")
    return gsm7_decode(body)


class Reassembly:
    """Parts of multi-part replies, held until all arrived or `hold_s` passed."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        # (number, reference, total) → (first seen, coding, part number → body)
        self.held: dict[tuple[str, int, int], tuple[float, int, dict[int, bytes]]] = {}

    def add(self, part: MoPart) -> tuple[tuple[str, int, int], str] | None:
        """The whole text once this part completes its message (then call done())."""
        assert part.concat is not None
        ref, total, seq = part.concat
        key = (part.number, ref, total)
        _, _, parts = self.held.setdefault(key, (time.monotonic(), part.coding, {}))
        parts[seq] = part.body
        if len(parts) >= total:
            return key, self._join(key)
        return None

    def _join(self, key: tuple[str, int, int]) -> str:
        _, coding, parts = self.held[key]
        # Joined before decoding: a sender may split a character across parts.
        return decode(coding, b"".join(parts[n] for n in sorted(parts)))

    def done(self, key: tuple[str, int, int]) -> None:
        self.held.pop(key, None)

    def expired(self) -> list[tuple[tuple[str, int, int], str]]:
        """Messages whose missing parts did not come in time: what arrived."""
        now = time.monotonic()
        return [(key, self._join(key)) for key, (first, _, _) in list(self.held.items())
                if now - first >= self.hold_s]


class Listener:
    """Holds a receiver bind: receipts (in batches) and replies flow to the callbacks."""

    def __init__(self, gateway: SmppGateway, on_receipts: Callable[[list[Receipt]], None],
                 on_reply: Callable[[str, str], None], *, idle_s: float = 30) -> None:
        self.gateway = gateway
        self.on_receipts, self.on_reply = on_receipts, on_reply
        self.idle_s = idle_s
        self.running = True
        self.binds = 0
        self.reassembly = Reassembly(gateway.mo_hold_s)
        self._held: list[Receipt] = []
        self._held_resps: list[tuple[str, int]] = []  # (response command, sequence)
        self._held_at = 0.0

    def run(self) -> None:
        delay = 0.5
        while self.running:
            try:
                client = self.gateway._bind("receiver")
            except GatewayUnavailable as exc:
                log.warning("%s; again in %.1f s", exc, delay)
                end = time.monotonic() + delay
                while self.running and time.monotonic() < end:
                    time.sleep(min(0.2, end - time.monotonic()))
                delay = min(delay * 2, self.gateway.retry_max_s)  # capped, never gives up
                continue
            self.binds += 1
            delay = 0.5
            try:
                self._serve(client)
            except LINK_ERRORS as exc:
                log.warning("SMPP receiver link lost: %s; reconnecting", describe(exc))
            except KeyboardInterrupt:  # SIGTERM / Ctrl-C in `smsops smpp-listen`
                self.running = False
                with contextlib.suppress(*LINK_ERRORS):
                    self._flush(client)
                unbind(client, 2.0)
                raise
            finally:
                self._flush(None)  # stored even though unacknowledged: applying twice is harmless
                _close(client)

    def _serve(self, client: smpplib.client.Client) -> None:
        heard = asked = time.monotonic()
        while self.running:
            now = time.monotonic()
            timeout = min(self.idle_s, 0.5)  # 0.5: stop() is noticed soon
            if self._held:
                timeout = min(timeout, max(self._held_at + RECEIPT_FLUSH_S - now, 0.0))
            if select.select([client._socket], [], [], timeout)[0]:
                self._dispatch(client, client.read_pdu())
                heard = time.monotonic()
            else:
                now = time.monotonic()
                if now - heard > 3 * self.idle_s:  # silent through two enquire_links
                    raise smpplib.exceptions.ConnectionError("no answer to enquire_link")
                if now - heard > self.idle_s and now - asked > self.idle_s:
                    client.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=client))
                    asked = now
            if self._held and (len(self._held) >= RECEIPT_FLUSH_MAX
                               or time.monotonic() - self._held_at >= RECEIPT_FLUSH_S):
                self._flush(client)
            for key, text in self.reassembly.expired():
                log.info("reply from %s stored with parts missing", key[0])
                self._reply(key[0], text)
                self.reassembly.done(key)
        self._flush(client)
        unbind(client, 2.0)

    def _dispatch(self, client: smpplib.client.Client, pdu: Any) -> None:
        if pdu.command in ("deliver_sm", "data_sm"):
            status = self._take(pdu)
            if status is not None:
                _respond(client, pdu.command + "_resp", pdu.sequence, status)
            else:
                self._held_resps.append((pdu.command + "_resp", pdu.sequence))
        elif pdu.command == "enquire_link":
            _respond(client, "enquire_link_resp", pdu.sequence, 0)
        elif pdu.command == "unbind":
            _respond(client, "unbind_resp", pdu.sequence, 0)
            raise smpplib.exceptions.ConnectionError("the SMSC unbound")

    def _take(self, pdu: Any) -> int | None:
        """The response status now, or None when it waits for the receipts' batch."""
        try:
            kind, value = parse(pdu)
        except (ValueError, IndexError, TypeError) as exc:
            log.warning("unreadable %s dropped: %s", pdu.command, describe(exc))
            return 0
        if kind == "receipt":
            if not self._held:
                self._held_at = time.monotonic()
            self._held.append(value)
            return None
        if kind == "intermediate":
            log.debug("intermediate receipt (%s) ignored", value)
            return 0
        part: MoPart = value
        if part.concat is None or part.concat[1] <= 1:
            return 0 if self._reply(part.number, decode(part.coding, part.body)) \
                else c.SMPP_ESME_RX_T_APPN
        whole = self.reassembly.add(part)
        if whole is None:
            return 0  # held in memory until the rest arrives
        key, text = whole
        if not self._reply(part.number, text):
            return c.SMPP_ESME_RX_T_APPN  # the SMSC sends this part again
        self.reassembly.done(key)
        return 0

    def _reply(self, number: str, text: str) -> bool:
        try:
            self.on_reply(number, text)
            return True
        except Exception as exc:  # the database is down: ask the SMSC to resend
            log.warning("reply from %s not stored: %s", number, describe(exc))
            return False

    def _flush(self, client: smpplib.client.Client | None) -> None:
        """Store the receipts held, then acknowledge them (temporary error if the
        store failed, so the SMSC sends them again)."""
        if not self._held:
            return
        receipts, resps = self._held, self._held_resps
        self._held, self._held_resps = [], []
        status = 0
        try:
            self.on_receipts(receipts)
        except Exception as exc:
            log.warning("%s receipts not stored: %s", len(receipts), describe(exc))
            status = c.SMPP_ESME_RX_T_APPN
        if client is not None:
            for command, sequence in resps:
                _respond(client, command, sequence, status)

    def stop(self) -> None:
        self.running = False


def _respond(client: smpplib.client.Client, command: str, sequence: int, status: int) -> None:
    pdu = smpplib.smpp.make_pdu(command, client=client, status=status)
    pdu.sequence = sequence
    client.send_pdu(pdu)
