"""The SMPP findings of issue 9, each reproduced against the loopback SMSC
(tests/smsc.py: real SMPP 3.4 over TCP) behaving as the open-source gateway did:
intermediate receipts, link drops mid-batch, throttling, data_sm receipts,
multi-part replies, refused binds; and the receiver bind's manners (unbind on
close, receipts stored in batches and acknowledged only once stored)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import smpplib.smpp

from app.gateways.base import GatewayUnavailable, Outbound, Receipt, SubmitResult
from app.gateways.smpp import Listener, SmppGateway, parse_deliver_sm
from tests.smsc import SMSC, _Sequence, taken_per_destination


@pytest.fixture
def smsc() -> Iterator[SMSC]:
    server = SMSC()
    yield server
    server.close()


def gateway(smsc: SMSC, **kw: object) -> SmppGateway:
    return SmppGateway({"SMPP_PORT": smsc.port, "SMPP_SYSTEM_ID": "smsops",
                        "SMPP_PASSWORD": "secret", **kw})


def batch(n: int, text: str = "hi") -> list[Outbound]:
    return [Outbound(i, f"+1415555{i:04d}", text, "international") for i in range(n)]


class Heard:
    """What a listener handed over: receipts (and in how many batches) and replies."""

    def __init__(self) -> None:
        self.receipts: list[Receipt] = []
        self.batches = 0
        self.replies: list[tuple[str, str]] = []
        self.fail_receipts = False

    def on_receipts(self, got: Any) -> None:
        if self.fail_receipts:
            raise RuntimeError("database down")
        self.batches += 1
        self.receipts.extend(got if isinstance(got, list) else [got])

    def on_reply(self, number: str, text: str) -> None:
        self.replies.append((number, text))


@pytest.fixture
def listen(smsc: SMSC) -> Iterator[Callable[..., tuple[Listener, Heard]]]:
    started: list[Listener] = []

    def start(**kw: object) -> tuple[Listener, Heard]:
        heard = Heard()
        listener = Listener(gateway(smsc, **kw), heard.on_receipts, heard.on_reply,
                            idle_s=0.5)
        started.append(listener)
        threading.Thread(target=listener.run, daemon=True).start()
        smsc.wait_for(lambda: smsc.receivers)
        return listener, heard

    yield start
    for listener in started:
        listener.stop()


def by_outcome(results: list[SubmitResult]) -> dict[str, set[int]]:
    out: dict[str, set[int]] = {"accepted": set(), "failed": set(), "unknown": set(),
                                "not_sent": set()}
    for r in results:
        kind = ("accepted" if r.accepted else "unknown" if r.unknown else
                "not_sent" if getattr(r, "not_sent", False) else "failed")
        out[kind].add(r.message_id)
    return out


# --- 1. intermediate receipts -------------------------------------------------

def test_intermediate_receipts_are_not_final(smsc: SMSC, listen: Any) -> None:
    _, heard = listen()
    smsc.intermediate = [6, 1]  # ACCEPTD, ENROUTE, then the final state
    smsc.undeliverable.add("+14155550001")
    sent = gateway(smsc).submit(batch(2))
    smsc.wait_for(lambda: len(smsc.responses) >= 6)  # every receipt answered
    time.sleep(0.3)  # a batch of receipts is handed over at most 0.2 s after it came
    assert {(r.gateway_id, r.delivered, r.carrier_code) for r in heard.receipts} == {
        (sent[0].gateway_id, True, "DELIVRD"), (sent[1].gateway_id, False, "UNDELIV")}


@pytest.mark.parametrize(("state", "stat", "final"), [
    (None, "ACCEPTD", False), (None, "ENROUTE", False), (None, "UNKNOWN", False),
    (6, "ACCEPTD", False), (7, "UNKNOWN", False), (1, "ENROUTE", False),
    (2, "DELIVRD", True), (3, "EXPIRED", True), (4, "DELETED", True), (5, "UNDELIV", True),
    (8, "REJECTD", True), (None, "DELIVRD", True), (None, "UNDELIV", True)])
def test_only_states_2_3_4_5_8_are_final(state: int | None, stat: str, final: bool) -> None:
    params: dict[str, Any] = {"source_addr": "14155550101", "destination_addr": "smsops",
                              "esm_class": 0x04, "short_message": (
                                  f"id:77 sub:001 dlvrd:000 stat:{stat} err:000 text:").encode()}
    if state is not None:
        params.update(message_state=state, receipted_message_id="77")
    seq = _Sequence()  # through the wire format, as the listener reads it
    pdu = smpplib.smpp.parse_pdu(smpplib.smpp.make_pdu("deliver_sm", client=seq, **params)
                                 .generate(), client=seq, allow_unknown_opt_params=True)
    kind, value = parse_deliver_sm(pdu)
    if final:
        assert kind == "receipt" and value.gateway_id == "77"
        assert value.delivered == (stat == "DELIVRD")
    else:
        assert kind != "receipt"


# --- 2. link dropped mid-batch --------------------------------------------------

def test_link_drop_only_the_in_flight_window_is_unknown(smsc: SMSC,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    smsc.drop_after_submits = 7  # answers 6, takes the 7th, then the link goes
    with caplog.at_level(logging.ERROR, logger="smsops.smpp"):
        results = gateway(smsc, SMPP_WINDOW=10).submit(batch(118))
    out = by_outcome(results)
    assert out["accepted"] == set(range(6))
    assert out["failed"] == set()
    # Written but unanswered: at most a window, and it includes the one the SMSC took.
    assert 6 in out["unknown"] and 1 <= len(out["unknown"]) <= 10
    assert len(out["not_sent"]) == 118 - 6 - len(out["unknown"]) >= 102
    taken = {int(s.destination[-4:]) for s in smsc.submitted}
    assert taken <= out["accepted"] | out["unknown"]  # nothing not_sent reached it
    # The log line says what failed (smpplib's ConnectionError has no text).
    assert "SMPP link failed during a batch: ConnectionError" in caplog.text
    # Sending the not-sent ones again puts each on the carrier once.
    again = [m for m in batch(118) if m.message_id in out["not_sent"]]
    assert all(r.accepted for r in gateway(smsc).submit(again))
    assert set(taken_per_destination(smsc).values()) == {1}
    assert len(smsc.submitted) == 118 - len(out["unknown"]) + 1


def test_a_multi_part_message_cut_by_the_drop_is_never_resent(smsc: SMSC) -> None:
    smsc.drop_after_submits = 2  # part 1 of the first message answered, part 2 taken
    long = "a" * 400  # 3 parts each
    results = gateway(smsc, SMPP_WINDOW=4).submit(batch(10, long))
    out = by_outcome(results)
    assert out["accepted"] == set() and out["failed"] == set()
    assert 0 in out["unknown"] and results[0].carrier_code in ("NO_RESP", "PARTIAL")
    assert len(out["unknown"]) <= 2 and len(out["not_sent"]) >= 8  # a window of 4 parts
    assert {int(s.destination[-4:]) for s in smsc.submitted} == {0}


# --- 3. throttling ----------------------------------------------------------------

@pytest.mark.parametrize("status", [0x58, 0x14])
def test_throttled_submits_are_sent_again(smsc: SMSC, status: int) -> None:
    smsc.max_per_s, smsc.throttle_status = 50, status
    smsc.tokens = 0.0
    results = gateway(smsc).submit(batch(100))
    assert smsc.throttled > 0
    assert [r.accepted for r in results] == [True] * 100
    assert len(smsc.submitted) == 100 and set(taken_per_destination(smsc).values()) == {1}


def test_a_submit_rate_cap_keeps_under_the_carriers(smsc: SMSC) -> None:
    smsc.max_per_s = 50
    started = time.monotonic()
    results = gateway(smsc, SMPP_MAX_SUBMITS_PER_S=40).submit(batch(60))
    assert all(r.accepted for r in results)
    assert smsc.throttled == 0
    assert time.monotonic() - started >= 59 / 40 - 0.1


def test_what_throttling_leaves_unsent_goes_back(smsc: SMSC) -> None:
    smsc.max_per_s = 20
    smsc.tokens = 0.0
    results = gateway(smsc, SMPP_BATCH_BUDGET_S=0.5).submit(batch(80))
    out = by_outcome(results)
    assert out["failed"] == set() and out["unknown"] == set()
    assert 5 <= len(out["accepted"]) <= 40 and len(out["not_sent"]) >= 40
    assert {int(s.destination[-4:]) for s in smsc.submitted} == out["accepted"]


# --- 4. data_sm receipts -------------------------------------------------------------

def test_receipts_as_data_sm_are_answered_and_taken(smsc: SMSC, listen: Any) -> None:
    _, heard = listen()
    smsc.receipts_as_data_sm = True
    sent = gateway(smsc).submit(batch(3))
    smsc.wait_for(lambda: len(heard.receipts) == 3, timeout=3)
    assert {r.gateway_id for r in heard.receipts} == {r.gateway_id for r in sent}
    assert all(r.delivered for r in heard.receipts)
    smsc.wait_for(lambda: smsc.responses.count(("data_sm_resp", 0)) == 3, timeout=3)


# --- 5. multi-part replies ----------------------------------------------------------

LONG = "退订" * 40 + "谢谢" * 50 + "!"  # 181 characters: 4 parts of 60 (UCS-2)


@pytest.mark.parametrize("how", ["udh8", "udh16", "sar"])
def test_multi_part_replies_are_reassembled(smsc: SMSC, listen: Any, how: str) -> None:
    _, heard = listen()
    smsc.mo_parts("+8613800000000", LONG, how=how, ref=0x1A2B, order=[2, 1, 4, 3])
    smsc.mo_parts("+8613800000001", "x" * 70, how=how, ref=0x1A2B)  # same ref, other number
    smsc.wait_for(lambda: len(heard.replies) == 2, timeout=3)
    assert sorted(heard.replies) == [("+8613800000000", LONG), ("+8613800000001", "x" * 70)]


def test_a_part_that_never_comes_does_not_hold_the_rest_for_ever(smsc: SMSC,
                                                                 listen: Any) -> None:
    _, heard = listen(SMPP_MO_HOLD_S=0.5)
    smsc.mo_parts("+8613800000000", LONG, skip={3})
    time.sleep(0.2)
    assert heard.replies == []  # held while the rest may come
    smsc.wait_for(lambda: heard.replies, timeout=3)
    assert heard.replies == [("+8613800000000", LONG[:120] + LONG[180:])]


# --- 6. the carrier down for a while --------------------------------------------------

def test_binds_refused_back_off_then_resume(smsc: SMSC) -> None:
    smsc.refuse_binds_until = time.monotonic() + 1.5
    gw = gateway(smsc, SMPP_CONNECT_TRIES=1, SMPP_RETRY_MAX_S=0.4)
    with pytest.raises(GatewayUnavailable):
        gw.submit(batch(1))
    refused = smsc.refused_binds
    with pytest.raises(GatewayUnavailable, match="next bind in"):
        gw.submit(batch(1))  # backing off: no new bind yet
    assert smsc.refused_binds == refused
    deadline = time.monotonic() + 5
    while True:  # as the sweeper re-drives: until the carrier is back
        try:
            results = gw.submit(batch(1))
            break
        except GatewayUnavailable:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert results[0].accepted and smsc.refused_binds >= 3


# --- minor: the receiver bind --------------------------------------------------------

def test_receiver_unbinds_on_close(smsc: SMSC, listen: Any) -> None:
    listener, _ = listen()
    listener.stop()
    smsc.wait_for(lambda: "bind_receiver" in smsc.unbinds, timeout=3)


def test_a_silent_link_is_noticed_and_bound_again(smsc: SMSC, listen: Any) -> None:
    listener, _ = listen()  # idle 0.5 s: enquire_link after 0.5 s of silence
    smsc.deafen_receivers()
    deaf_at = time.monotonic()
    smsc.wait_for(lambda: listener.binds >= 2, timeout=5)
    assert time.monotonic() - deaf_at >= 1.0  # asked first, gave up after 3 idle periods


def test_receipts_are_handed_over_in_batches_and_acknowledged_once_stored(
        smsc: SMSC, listen: Any) -> None:
    _, heard = listen()
    sent = gateway(smsc, SMPP_WINDOW=50).submit(batch(200))
    smsc.wait_for(lambda: len(heard.receipts) == 200, timeout=5)
    assert {r.gateway_id for r in heard.receipts} == {r.gateway_id for r in sent}
    assert heard.batches <= 20  # not one hand-over per receipt
    smsc.wait_for(lambda: smsc.responses.count(("deliver_sm_resp", 0)) == 200, timeout=3)
    heard.fail_receipts = True  # storing fails: the SMSC is told to send them again
    gateway(smsc).submit(batch(3))
    smsc.wait_for(lambda: smsc.responses.count(("deliver_sm_resp", 0x64)) == 3, timeout=3)


def test_smpp_listen_unbinds_when_stopped(smsc: SMSC, tmp_path: Path) -> None:
    env = dict(os.environ, SMSOPS_GATEWAY="smpp", SMSOPS_SMPP_PORT=str(smsc.port),
               SMSOPS_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",
               SMSOPS_INSTANCE_DIR=str(tmp_path), SMSOPS_SECRET_KEY="x")
    proc = subprocess.Popen([sys.executable, "-m", "app.cli", "smpp-listen"], env=env,
                            cwd=Path(__file__).resolve().parents[2],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        smsc.wait_for(lambda: smsc.receivers, timeout=20)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        # The SMSC's own thread records the unbind; it may read it after the exit.
        smsc.wait_for(lambda: smsc.unbinds, timeout=10)
        assert smsc.unbinds == ["bind_receiver"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
