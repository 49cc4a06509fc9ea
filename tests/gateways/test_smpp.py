"""The SMPP gateway against an SMSC on loopback: windowed submits, our own splitting,
refusals, receipts and replies on a receiver bind, reconnection."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import smpplib.gsm

from app.gateways.base import GatewayUnavailable, Outbound, Receipt
from app.gateways.smpp import Listener, SmppGateway, encode_parts
from tests.smsc import SMSC


@pytest.fixture
def smsc() -> Iterator[SMSC]:
    server = SMSC()
    yield server
    server.close()


def gateway(smsc: SMSC, **kw: object) -> SmppGateway:
    return SmppGateway({"SMPP_PORT": smsc.port, "SMPP_SYSTEM_ID": "smsops",
                        "SMPP_PASSWORD": "secret", **kw})


def test_short_and_long_messages_are_split_by_our_rules(smsc: SMSC) -> None:
    long_gsm = "€" + "a" * 310  # 312 septets: 3 parts; the escape is never split
    emoji = "a" * 66 + "😀" * 3
    results = gateway(smsc).submit([
        Outbound(1, "+14155550101", "[Shop] Your code is 1234", "international"),
        Outbound(2, "+14155550102", long_gsm, "international"),
        Outbound(3, "+8613800000000", emoji, "mainland"),
    ])
    assert [r.accepted for r in results] == [True, True, True]
    assert all(r.gateway_id for r in results)
    by_dest: dict[str, list] = {}
    for s in smsc.submitted:
        by_dest.setdefault(s.destination, []).append(s)
    [short] = by_dest["+14155550101"]
    assert short.data_coding == 0 and short.esm_class == 0
    assert short.short_message == smpplib.gsm.gsm_encode("[Shop] Your code is 1234")
    parts = by_dest["+14155550102"]
    assert len(parts) == 3 and all(p.esm_class == 0x40 for p in parts)
    assert [p.short_message[3:6][1:] for p in parts] == [b"\x03\x01", b"\x03\x02",
                                                         b"\x03\x03"]
    rejoined = b"".join(p.short_message[6:] for p in parts)
    assert rejoined == smpplib.gsm.gsm_encode(long_gsm)
    ucs = by_dest["+8613800000000"]
    assert [p.data_coding for p in ucs] == [8, 8]
    texts = [p.short_message[6:].decode("utf-16-be") for p in ucs]  # each part decodes alone
    assert "".join(texts) == emoji and texts[0] == "a" * 66


def test_a_window_of_submits_is_in_flight(smsc: SMSC) -> None:
    smsc.respond_delay_s = 0.05
    batch = [Outbound(i, f"+1415555{i:04d}", "hi", "international") for i in range(30)]
    results = gateway(smsc, SMPP_WINDOW=8).submit(batch)
    assert all(r.accepted for r in results)
    assert smsc.max_in_flight == 8


def test_refused_destination_and_unreachable_smsc(smsc: SMSC) -> None:
    smsc.refuse.add("+14155550102")
    ok, refused = gateway(smsc).submit([
        Outbound(1, "+14155550101", "hi", "international"),
        Outbound(2, "+14155550102", "hi", "international")])
    assert ok.accepted
    assert (refused.accepted, refused.error_code, refused.carrier_code) == (
        False, "FailedOperation.GatewayRejected", "ESME:0x0b")
    closed = SmppGateway({"SMPP_PORT": 9, "SMPP_CONNECT_TRIES": 1})
    with pytest.raises(GatewayUnavailable):
        closed.submit([Outbound(1, "+14155550101", "hi", "international")])


def test_receipts_and_replies_reach_the_listener_which_reconnects(smsc: SMSC) -> None:
    receipts: list[Receipt] = []
    replies: list[tuple[str, str]] = []
    listener = Listener(gateway(smsc), receipts.extend, lambda n, t: replies.append((n, t)),
                        idle_s=0.2)  # short: enquire_link while idle
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    smsc.wait_for(lambda: smsc.receivers)
    smsc.undeliverable.add("+14155550103")
    sent = gateway(smsc).submit([Outbound(1, "+14155550101", "hi", "international"),
                                 Outbound(2, "+14155550103", "hi", "international")])
    smsc.wait_for(lambda: len(receipts) == 2)
    outcome = {r.gateway_id: (r.delivered, r.carrier_code) for r in receipts}
    assert outcome == {sent[0].gateway_id: (True, "DELIVRD"),
                       sent[1].gateway_id: (False, "UNDELIV")}
    smsc.mo("+8613800000000", "退订")
    smsc.wait_for(lambda: replies)
    assert replies == [("+8613800000000", "退订")]
    smsc.drop_connections()
    smsc.wait_for(lambda: listener.binds >= 2)  # reconnected by itself
    smsc.mo("+14155550101", "STOP")
    smsc.wait_for(lambda: len(replies) == 2)
    listener.stop()


def test_encode_parts_matches_the_billing_rules() -> None:
    coding, parts = encode_parts("x" * 160, "international")
    assert coding == 0 and len(parts) == 1
    coding, parts = encode_parts("好" * 70, "mainland")
    assert coding == 8 and len(parts) == 1 and len(parts[0]) == 140
    _, parts = encode_parts("好" * 71, "mainland")
    assert len(parts) == 2 and all(len(p) <= 140 for p in parts)


def _text_receipt(body: str) -> object:
    """A receipt with its fields only in the text (no TLVs), as many SMPP 3.4 SMSCs
    send it."""
    import smpplib.client
    import smpplib.smpp

    client = smpplib.client.Client("127.0.0.1", 1)
    pdu = smpplib.smpp.make_pdu("deliver_sm", client=client, source_addr="14155550100",
                                destination_addr="smsops", esm_class=0x04,
                                short_message=body.encode())
    return smpplib.smpp.parse_pdu(pdu.generate(), client=client)


def test_a_receipts_text_field_is_never_read_as_its_id_or_state() -> None:
    """`text:` echoes the message's first characters: 'Order paid:98765' held an
    'id:' and 'stat:DELIVRD' a state, and the last match won."""
    from app.gateways import smpp

    head = "id:abc123 sub:001 dlvrd:000 submit date:2611241200 done date:2611241200"
    kind, receipt = smpp.parse(_text_receipt(f"{head} stat:UNDELIV err:001 "
                                             "text:Order paid:98765"))
    assert kind == "receipt" and receipt.gateway_id == "abc123" and not receipt.delivered
    kind, receipt = smpp.parse(_text_receipt(f"{head} stat:UNDELIV err:001 "
                                             "Text:stat:DELIVRD id:1"))
    assert kind == "receipt" and receipt.gateway_id == "abc123" and not receipt.delivered
    kind, receipt = smpp.parse(_text_receipt(f"{head} stat:DELIVRD err:000 text:hi"))
    assert kind == "receipt" and receipt.delivered
