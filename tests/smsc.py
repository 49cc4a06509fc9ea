"""An SMSC on loopback for the SMPP tests and benchmark: real SMPP 3.4 over TCP
(binds, submit_sm with responses, deliver_sm receipts and MO, enquire_link,
unbind), encoded and decoded by smpplib's PDU classes."""

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
    respond_delay_s: float = 0.0
    submitted: list[Submitted] = field(default_factory=list)
    binds: list[str] = field(default_factory=list)
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
            if pdu.command.startswith("bind_"):
                self.binds.append(pdu.command)
                if pdu.command in ("bind_receiver", "bind_transceiver"):
                    self.receivers.append(conn)
                self._reply(conn, pdu.command + "_resp", pdu, system_id="SMSC")
            elif pdu.command == "submit_sm":
                self._submit(conn, pdu)
            elif pdu.command == "enquire_link":
                self._reply(conn, "enquire_link_resp", pdu)
            elif pdu.command == "unbind":
                self._reply(conn, "unbind_resp", pdu)
                break
        if conn in self.receivers:
            self.receivers.remove(conn)
        conn.close()

    def _submit(self, conn: socket.socket, pdu: Any) -> None:
        destination = "+" + pdu.destination_addr.decode()
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
            if pdu.registered_delivery:
                state, stat = (5, "UNDELIV") if destination in self.undeliverable else (
                    2, "DELIVRD")
                self.deliver(
                    source_addr=pdu.destination_addr.decode(), destination_addr="smsops",
                    esm_class=0x04, short_message=(
                        f"id:{message_id} sub:001 dlvrd:001 submit date:2611241200 done "
                        f"date:2611241200 stat:{stat} err:000 text:").encode(),
                    receipted_message_id=message_id, message_state=state)

        if self.respond_delay_s:
            threading.Timer(self.respond_delay_s, answer).start()
        else:
            answer()

    # --- what tests do ---
    def deliver(self, **params: Any) -> None:
        """Send a deliver_sm to every bound receiver."""
        for conn in list(self.receivers):
            pdu = smpplib.smpp.make_pdu("deliver_sm", client=self.seq, **params)
            self._send(conn, pdu)

    def mo(self, source: str, text: str) -> None:
        self.deliver(source_addr_ton=1, source_addr=source.lstrip("+"),
                     destination_addr="smsops", esm_class=0, data_coding=8,
                     short_message=text.encode("utf-16-be"))

    def drop_connections(self) -> None:
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
