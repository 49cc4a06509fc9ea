"""An SMSC on loopback for the SMPP tests and benchmark: real SMPP 3.4 over TCP
(binds, submit_sm with responses, deliver_sm receipts and MO, enquire_link,
unbind), encoded and decoded by smpplib's PDU classes.

Behaviours of real carriers the tests switch on: intermediate receipts (ACCEPTD,
ENROUTE) before the final one, per-part receipts, receipts sent as data_sm, a
submit rate cap answered with ESME_RTHROTTLED / ESME_RMSGQFUL, dropping the link
after N submits, refusing binds for a while, multi-part MO (UDH with an 8-bit or
16-bit reference, or sar_* TLVs)."""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import smpplib.smpp

STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD",
          7: "UNKNOWN", 8: "REJECTD"}


class _Sequence:
    """What smpplib's PDU classes need to number the PDUs we originate."""

    def __init__(self) -> None:
        self.sequence = 0
        self.lock = threading.Lock()

    def next_sequence(self) -> int:
        with self.lock:
            self.sequence += 1
            return self.sequence


@dataclass
class Submitted:
    destination: str
    short_message: bytes
    data_coding: int
    esm_class: int
    message_id: str


@dataclass
class SMSC:
    refuse: set[str] = field(default_factory=set)  # destinations answered ESME_RINVDSTADR
    undeliverable: set[str] = field(default_factory=set)  # get an UNDELIV receipt
    # Receipts sent before the final one (message_state 6 ACCEPTD, 1 ENROUTE, ...).
    intermediate: list[int] = field(default_factory=list)
    silent: set[str] = field(default_factory=set)  # never get a receipt
    last_part_fails: set[str] = field(default_factory=set)  # multi-part: last part UNDELIV
    receipts_as_data_sm: bool = False
    receipt_delay_s: float = 0.0
    # Submits per second taken (a token bucket of one second, full at first); more
    # are answered with `throttle_status` and not taken.
    max_per_s: float = 0.0
    tokens: float | None = None
    throttle_status: int = 0x58
    throttled: int = 0
    drop_after_submits: int = 0  # take the N-th submit, answer nothing, close the link
    refuse_binds_until: float = 0.0  # time.monotonic(): binds refused (ESME_RBINDFAIL)
    refused_binds: int = 0
    respond_delay_s: float = 0.0
    submitted: list[Submitted] = field(default_factory=list)
    binds: list[str] = field(default_factory=list)
    unbinds: list[str] = field(default_factory=list)  # the bind that said unbind
    responses: list[tuple[str, int]] = field(default_factory=list)  # (command, status)
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.seq = _Sequence()
        self.ids = itertools.count(1000)
        self.receivers: list[socket.socket] = []
        self.connections: list[socket.socket] = []
        self.lock = threading.RLock()
        self.in_flight = 0
        self.submits_seen = 0
        self.refilled = time.monotonic()
        self.kind: dict[socket.socket, str] = {}
        self.stored: list[tuple[str, dict[str, Any]]] = []  # for a receiver to come
        self.deaf: set[socket.socket] = set()  # links up, but nothing answered (dead peer)
        self.running = True
        threading.Thread(target=self._accept, daemon=True).start()

    # --- plumbing ---
    def _accept(self) -> None:
        while self.running:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _send(self, conn: socket.socket, pdu: Any) -> None:
        with self.lock, contextlib.suppress(OSError):  # a closed link: nothing to answer
            conn.sendall(pdu.generate())

    def _read(self, conn: socket.socket) -> Any | None:
        head = self._exact(conn, 4)
        if head is None:
            return None
        (length,) = struct.unpack(">L", head)
        rest = self._exact(conn, length - 4)
        if rest is None:
            return None
        return smpplib.smpp.parse_pdu(head + rest, client=self.seq,
                                      allow_unknown_opt_params=True)

    @staticmethod
    def _exact(conn: socket.socket, n: int) -> bytes | None:
        data = b""
        while len(data) < n:
            try:
                chunk = conn.recv(n - len(data))
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        return data

    def _reply(self, conn: socket.socket, name: str, request: Any, **kw: Any) -> None:
        pdu = smpplib.smpp.make_pdu(name, client=self.seq, **kw)
        pdu.sequence = request.sequence  # a response carries its request's number
        self._send(conn, pdu)

    def _serve(self, conn: socket.socket) -> None:
        while self.running:
            pdu = self._read(conn)
            if pdu is None:
                break
            if conn in self.deaf:
                continue
            if pdu.command.startswith("bind_"):
                if time.monotonic() < self.refuse_binds_until:
                    self.refused_binds += 1
                    self._reply(conn, pdu.command + "_resp", pdu, status=0x0D,
                                system_id="SMSC")
                    continue
                self.binds.append(pdu.command)
                self.kind[conn] = pdu.command
                self._reply(conn, pdu.command + "_resp", pdu, system_id="SMSC")
                if pdu.command in ("bind_receiver", "bind_transceiver"):
                    with self.lock:
                        self.receivers.append(conn)
                    self._forward_stored()
            elif pdu.command == "submit_sm":
                if not self._submit(conn, pdu):
                    break
            elif pdu.command == "enquire_link":
                self._reply(conn, "enquire_link_resp", pdu)
            elif pdu.command == "unbind":
                self.unbinds.append(self.kind.get(conn, ""))
                self._reply(conn, "unbind_resp", pdu)
                break
            elif pdu.command.endswith("_resp"):
                self.responses.append((pdu.command, pdu.status))
        with self.lock:
            if conn in self.receivers:
                self.receivers.remove(conn)
        conn.close()

    def _throttle(self) -> bool:
        """True when this submit is over the rate cap."""
        if not self.max_per_s:
            return False
        with self.lock:
            now = time.monotonic()
            if self.tokens is None:
                self.tokens = self.max_per_s
            self.tokens = min(self.max_per_s, self.tokens
                              + (now - self.refilled) * self.max_per_s)
            self.refilled = now
            if self.tokens < 1:
                self.throttled += 1
                return True
            self.tokens -= 1
            return False

    def _submit(self, conn: socket.socket, pdu: Any) -> bool:
        """Takes (or refuses) one submit_sm; False when the link is to be dropped."""
        destination = "+" + pdu.destination_addr.decode()
        self.submits_seen += 1
        if self.drop_after_submits and self.submits_seen == self.drop_after_submits:
            # Taken, but the link fails before the answer: the sender cannot know.
            self.submitted.append(Submitted(destination, pdu.short_message, pdu.data_coding,
                                            pdu.esm_class or 0, str(next(self.ids))))
            self.drop_after_submits = 0
            self.drop_connections()
            return False
        if self._throttle():
            self._reply(conn, "submit_sm_resp", pdu, status=self.throttle_status,
                        message_id="")
            return True
        message_id = str(next(self.ids))
        self.submitted.append(Submitted(destination, pdu.short_message, pdu.data_coding,
                                        pdu.esm_class or 0, message_id))
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

        def answer() -> None:
            with self.lock:
                self.in_flight -= 1
            if destination in self.refuse:
                self._reply(conn, "submit_sm_resp", pdu, status=0x0B, message_id="")
                return
            self._reply(conn, "submit_sm_resp", pdu, message_id=message_id)
            if pdu.registered_delivery and destination not in self.silent:
                final = 5 if destination in self.undeliverable else 2
                body = pdu.short_message or b""
                if (pdu.esm_class or 0) & 0x40 and destination in self.last_part_fails \
                        and len(body) > 5 and body[4] == body[5]:
                    final = 5  # UDH: total == this part's number
                states = [*self.intermediate, final]
                if self.receipt_delay_s:
                    threading.Timer(self.receipt_delay_s, self.receipts,
                                    (pdu.destination_addr.decode(), message_id, states)).start()
                else:
                    self.receipts(pdu.destination_addr.decode(), message_id, states)

        if self.respond_delay_s:
            threading.Timer(self.respond_delay_s, answer).start()
        else:
            answer()
        return True

    def receipts(self, source: str, message_id: str, states: list[int]) -> None:
        for state in states:
            stat = STATES[state]
            text = (f"id:{message_id} sub:001 dlvrd:{'001' if state == 2 else '000'} "
                    f"submit date:2611241200 done date:2611241200 stat:{stat} err:000 text:")
            if self.receipts_as_data_sm:
                self.deliver(command="data_sm", source_addr=source, destination_addr="smsops",
                             esm_class=0x04, receipted_message_id=message_id,
                             message_state=state)
            else:
                self.deliver(source_addr=source, destination_addr="smsops", esm_class=0x04,
                             short_message=text.encode(), receipted_message_id=message_id,
                             message_state=state)

    # --- what tests do ---
    def deliver(self, command: str = "deliver_sm", **params: Any) -> None:
        """Send a deliver_sm (or data_sm) to every bound receiver; with none bound,
        keep it for the next receiver bind (store and forward, as SMSCs do)."""
        with self.lock:
            receivers = list(self.receivers)
            if not receivers:
                self.stored.append((command, params))
                return
        for conn in receivers:
            pdu = smpplib.smpp.make_pdu(command, client=self.seq, **params)
            try:
                with self.lock:
                    conn.sendall(pdu.generate())
            except OSError:  # that link just went: keep it for the next bind
                with self.lock:
                    self.stored.append((command, params))

    def _forward_stored(self) -> None:
        with self.lock:
            stored, self.stored = self.stored, []
        for command, params in stored:
            self.deliver(command, **params)

    def mo(self, source: str, text: str) -> None:
        self.deliver(source_addr_ton=1, source_addr=source.lstrip("+"),
                     destination_addr="smsops", esm_class=0, data_coding=8,
                     short_message=text.encode("utf-16-be"))

    def mo_parts(self, source: str, text: str, how: str = "udh8", ref: int = 0x1234,
                 order: list[int] | None = None, skip: set[int] | None = None) -> None:
        """A multi-part MO in UCS-2, 60 characters a part: `how` is udh8, udh16 or sar;
        parts sent in `order` (1-based), those in `skip` never."""
        chunks = [text[i:i + 60] for i in range(0, len(text), 60)]
        total = len(chunks)
        for n in order or range(1, total + 1):
            if skip and n in skip:
                continue
            body = chunks[n - 1].encode("utf-16-be")
            params: dict[str, Any] = {"source_addr_ton": 1, "source_addr": source.lstrip("+"),
                                      "destination_addr": "smsops", "data_coding": 8}
            if how == "sar":
                params.update(esm_class=0, short_message=body, sar_msg_ref_num=ref,
                              sar_total_segments=total, sar_segment_seqnum=n)
            elif how == "udh16":
                udh = bytes((6, 8, 4, ref >> 8, ref & 0xFF, total, n))
                params.update(esm_class=0x40, short_message=udh + body)
            else:
                udh = bytes((5, 0, 3, ref & 0xFF, total, n))
                params.update(esm_class=0x40, short_message=udh + body)
            self.deliver(**params)

    def deafen_receivers(self) -> None:
        """The receiver links stay open but nothing on them is answered any more."""
        self.deaf.update(self.receivers)

    def drop_connections(self) -> None:
        with self.lock:
            self.receivers.clear()  # what comes now waits for the next receiver bind
        for conn in list(self.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.connections.clear()

    def wait_for(self, predicate: Any, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.01)
        raise AssertionError("timed out waiting on the SMSC")

    def close(self) -> None:
        self.running = False
        self.server.close()
        self.drop_connections()


def taken_per_destination(smsc: SMSC) -> dict[str, int]:
    """How many submits the SMSC took per destination (parts counted once per UDH
    part number), to prove nothing went out twice."""
    seen: dict[tuple[str, int], int] = {}
    for s in smsc.submitted:
        part = s.short_message[5] if s.esm_class & 0x40 and len(s.short_message) > 5 else 1
        seen[(s.destination, part)] = seen.get((s.destination, part), 0) + 1
    out: dict[str, int] = {}
    for (destination, _part), n in seen.items():
        out[destination] = max(out.get(destination, 0), n)
    return out
