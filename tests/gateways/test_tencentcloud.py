"""The tencentcloud gateway through the official SDK, with Tencent Cloud's SMS API
answered by a loopback server: grouped SendSms calls, results by number, pulled
receipts and replies, and the whole pipeline with a real RQ worker."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import create_app
from app.db import utcnow
from app.gateways.base import GatewayUnavailable, Outbound
from app.gateways.tencentcloud import TencentCloudGateway
from app.models import Message, Unsubscribe, User
from app.queue import enqueue_deferred
from app.services import content, pipeline, reviews
from jobs import worker
from jobs.listeners import tencentcloud_poll_once
from jobs.sending import sweep_once
from tests.conftest import Backend
from tests.helpers import claim_handed, ctx_for
from tests.sending.conftest import Shop


class TencentAPI:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.refuse: set[str] = set()
        self.receipts: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []
        self.serials = iter(range(1, 10_000))
        self.errors: dict[str, str] = {}  # template id → an Error code for its SendSms
        self.slow: dict[str, float] = {}  # template id → seconds before answering
        self.sent: list[dict[str, Any]] = []  # every number SendSms took, with its context
        self.reports: list[dict[str, Any]] = []  # status reports, found by number
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                action = self.headers["X-TC-Action"]
                api.calls.append((action, body))
                data = json.dumps({"Response": api.answer(action, body)}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        if action == "SendSms" and body["TemplateId"] in self.slow:
            time.sleep(self.slow[body["TemplateId"]])  # taken, answered too late
        if action == "SendSms" and body["TemplateId"] in self.errors:
            return {"RequestId": "r", "Error": {"Code": self.errors[body["TemplateId"]],
                                                "Message": "refused"}}
        if action == "SendSms":
            statuses = [
                {"SerialNo": f"sn-{next(self.serials)}", "PhoneNumber": p, "Fee": 1,
                 "SessionContext": body.get("SessionContext") or "", "IsoCode": "US",
                 "Code": "LimitExceeded.PhoneNumberDailyLimit" if p in self.refuse else "Ok",
                 "Message": ""} for p in body["PhoneNumberSet"]]
            self.sent += [s for s in statuses if s["Code"] == "Ok"]
            return {"RequestId": "r", "SendStatusSet": statuses}
        if action == "PullSmsSendStatusByPhoneNumber":
            mine = [r for r in self.reports if r["PhoneNumber"] == body["PhoneNumber"]]
            return {"RequestId": "r", "PullSmsSendStatusSet":
                    mine[body["Offset"]:body["Offset"] + body["Limit"]]}
        if action == "PullSmsSendStatus":
            out, self.receipts = self.receipts, []
            return {"RequestId": "r", "PullSmsSendStatusSet": out}
        if action == "PullSmsReplyStatus":
            out, self.replies = self.replies, []
            return {"RequestId": "r", "PullSmsReplyStatusSet": out}
        return {"RequestId": "r", "Error": {"Code": "InvalidAction", "Message": action}}


    def deliver(self, phone: str) -> None:
        """Tencent's status reports come for every message it took for `phone`."""
        self.reports += [{"SerialNo": s["SerialNo"], "PhoneNumber": phone,
                          "ReportStatus": "SUCCESS", "Description": "DELIVRD",
                          "SessionContext": s["SessionContext"], "UserReceiveTime": "",
                          "CountryCode": "1", "SubscriberNumber": phone[2:]}
                         for s in self.sent if s["PhoneNumber"] == phone]

    def asked(self) -> int:
        return sum(1 for action, _ in self.calls if action == "PullSmsSendStatusByPhoneNumber")


@pytest.fixture
def tencent() -> Iterator[TencentAPI]:
    api = TencentAPI()
    yield api
    api.server.shutdown()


def _config(api: TencentAPI) -> dict[str, Any]:
    return {"TENCENTCLOUD_ENDPOINT": api.endpoint, "TENCENTCLOUD_PROTOCOL": "http",
            "TENCENTCLOUD_SDK_APP_ID": "1400787878", "TENCENTCLOUD_SECRET_ID": "AKID-test",
            "TENCENTCLOUD_SECRET_KEY": "test-key"}


def test_grouped_calls_and_results_by_number(tencent: TencentAPI) -> None:
    gateway = TencentCloudGateway(_config(tencent))
    tencent.refuse.add("+14155550102")
    results = gateway.submit([
        Outbound(1, "+14155550101", "[Shop] Code 1", "international", "T1", ("1",), "Shop"),
        Outbound(2, "+14155550102", "[Shop] Code 1", "international", "T1", ("1",), "Shop"),
        Outbound(3, "+14155550103", "[Shop] Code 2", "international", "T1", ("2",), "Shop"),
        Outbound(4, "+14155550104", "[Shop] Code 2", "international", None, ("2",), "Shop"),
    ])
    sends = [body for action, body in tencent.calls if action == "SendSms"]
    assert [(b["TemplateId"], b["TemplateParamSet"], b["PhoneNumberSet"]) for b in sends] == [
        ("T1", ["1"], ["+14155550101", "+14155550102"]), ("T1", ["2"], ["+14155550103"])]
    assert sends[0]["SmsSdkAppId"] == "1400787878" and sends[0]["SignName"] == "Shop"
    assert [(r.accepted, r.carrier_code) for r in results] == [
        (True, None), (False, "LimitExceeded.PhoneNumberDailyLimit"), (True, None),
        (False, "NO_CARRIER_TEMPLATE")]
    assert results[0].gateway_id == "sn-1"


def test_unreachable_api_is_gateway_unavailable() -> None:
    gateway = TencentCloudGateway({"TENCENTCLOUD_ENDPOINT": "127.0.0.1:9",
                                   "TENCENTCLOUD_PROTOCOL": "http", "TENCENTCLOUD_TIMEOUT_S": 2,
                                   "TENCENTCLOUD_SECRET_ID": "AKID",
                                   "TENCENTCLOUD_SECRET_KEY": "k"})
    with pytest.raises(GatewayUnavailable):
        gateway.submit([Outbound(1, "+14155550101", "x", "international", "T1")])


def _outbound(n: int, template: str) -> Outbound:
    return Outbound(n, f"+1415555010{n}", "x", "international", template, ("1",), "Shop")


def test_a_refused_request_fails_its_messages_and_a_timeout_leaves_them_unknown(
        tencent: TencentAPI) -> None:
    """An Error in SendSms's answer (a template Tencent does not know) is a refusal of
    those messages, not an unreachable carrier (re-driven for ever before); a call
    Tencent took but answered after our timeout may have sent: `unknown`, never sent
    again (before: 'unavailable', back to accepted, sent twice)."""
    gateway = TencentCloudGateway({**_config(tencent), "TENCENTCLOUD_TIMEOUT_S": 1})
    tencent.errors["T-gone"] = "FailedOperation.TemplateIncorrectOrUnapproved"
    tencent.slow["T-slow"] = 1.5
    results = gateway.submit([_outbound(1, "T-gone"), _outbound(2, "T-slow"),
                              _outbound(3, "T-ok")])
    assert [(r.accepted, r.unknown, r.not_sent, r.carrier_code) for r in results] == [
        (False, False, False, "FailedOperation.TemplateIncorrectOrUnapproved"),
        (False, True, False, "ClientNetworkError"), (True, False, False, None)]
    assert len([c for c in tencent.calls if c[0] == "SendSms"]) == 3  # each once
    # A refusal of the whole request is one, too, even when nothing else went out.
    assert not gateway.submit([_outbound(4, "T-gone")])[0].accepted


def test_requests_tencent_turned_away_unsent_are_sent_again(tencent: TencentAPI) -> None:
    """Throttled or not authorised: Tencent sent nothing. Beside a call that went
    through, those messages are `not_sent` (back to accepted); alone, the carrier is
    unavailable for now."""
    gateway = TencentCloudGateway(_config(tencent))
    tencent.errors["T-busy"] = "RequestLimitExceeded"
    results = gateway.submit([_outbound(1, "T-busy"), _outbound(2, "T-ok")])
    assert [(r.accepted, r.not_sent) for r in results] == [(False, True), (True, False)]
    tencent.errors["T-ok"] = "AuthFailure.SecretIdNotFound"
    with pytest.raises(GatewayUnavailable):
        gateway.submit([_outbound(1, "T-busy"), _outbound(2, "T-ok")])


@pytest.fixture
def tc_app(backend: Backend, session: Session, tmp_path: Path,
           tencent: TencentAPI) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "GATEWAY": "tencentcloud", **_config(tencent)})
    yield app
    app.extensions["db"].engine.dispose()


def test_pipeline_with_pulled_receipts_and_replies(shop: Shop, session: Session,
                                                   tc_app: Flask, tencent: TencentAPI) -> None:
    t = content.set_carrier_template_id(shop.ctx, shop.templates["international"], "1110123")
    reviewer = ctx_for(session, session.scalar(select(User).where(
        User.email == "rev@example.com")))
    reviews.approve(reviewer, "template", t.id, revision=t.revision)  # a new id is reviewed
    [r] = shop.send(["+14155550101"], params=["4321"])
    session.commit()
    enqueue_deferred(tc_app.extensions["redis"], shop.ctx.deferred)
    assert worker.run(tc_app, burst=True)
    [(_, sent)] = [c for c in tencent.calls if c[0] == "SendSms"]
    assert (sent["TemplateId"], sent["TemplateParamSet"], sent["SignName"]) == (
        "1110123", ["4321"], "Shop")
    session.expire_all()
    msg = session.scalar(select(Message).where(Message.serial_no == r.serial_no))
    assert (msg.status, msg.gateway_message_id) == ("submitted", "sn-1")
    tencent.receipts.append({"SerialNo": "sn-1", "ReportStatus": "SUCCESS",
                             "Description": "DELIVRD", "PhoneNumber": "+14155550101"})
    tencent.replies.append({"PhoneNumber": "+14155550101", "ReplyContent": "TD",
                            "SignName": "Shop"})
    assert tencentcloud_poll_once(tc_app) == 2
    assert worker.run(tc_app, burst=True)
    session.expire_all()
    msg = session.scalar(select(Message).where(Message.serial_no == r.serial_no))
    assert (msg.status, msg.carrier_code) == ("delivered", "DELIVRD")
    deadline = time.monotonic() + 5
    while session.scalar(select(Unsubscribe.id)) is None and time.monotonic() < deadline:
        session.expire_all()
    assert session.scalar(select(Unsubscribe.sms_type)) == "verification"


def test_calls_carry_the_attempt_and_a_repeated_number_goes_alone(tencent: TencentAPI) -> None:
    """Each SendSms names its attempt (SessionContext, which Tencent returns with each
    report), and a number the attempt holds twice goes out under contexts of each
    message's own: the same number twice in one call was answered with one status for
    both messages before (one SerialNo, so one receipt settled both and the other's
    never matched)."""
    gateway = TencentCloudGateway(_config(tencent))
    batch = [replace(_outbound(n, "T1"), phone_number=phone, attempt_id="a1")
             for n, phone in ((1, "+14155550101"), (2, "+14155550102"), (3, "+14155550101"))]
    results = gateway.submit(batch)
    sends = [(b["PhoneNumberSet"], b["SessionContext"]) for a, b in tencent.calls
             if a == "SendSms"]
    assert sends == [(["+14155550102"], "smsops:a1"), (["+14155550101"], "smsops:a1:1"),
                     (["+14155550101"], "smsops:a1:3")]
    assert len({r.gateway_id for r in results}) == 3


def test_lookup_finds_an_attempt_by_its_reports(tencent: TencentAPI) -> None:
    """A call answered too late (read timeout: `unknown`) is found by the numbers'
    status reports carrying its attempt; a report of another attempt for the same
    number proves nothing, and no report yet leaves the message unknown."""
    gateway = TencentCloudGateway({**_config(tencent), "TENCENTCLOUD_TIMEOUT_S": 1})
    tencent.slow["T-slow"] = 1.5
    earlier = replace(_outbound(2, "T-ok"), attempt_id="other")
    assert gateway.submit([earlier])[0].accepted
    tencent.deliver("+14155550102")  # a report for this number, of another attempt
    batch = [replace(_outbound(n, "T-slow"), attempt_id="a2") for n in (1, 2)]
    assert all(r.unknown for r in gateway.submit(batch))
    deadline = time.monotonic() + 5
    while len(tencent.sent) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)  # the loopback records the late call when it answers it
    tencent.deliver("+14155550101")
    first, second = gateway.lookup(batch)
    assert first is not None and (first.accepted, first.unknown) == (True, False)
    assert first.gateway_id == next(s["SerialNo"] for s in tencent.sent
                                    if s["PhoneNumber"] == "+14155550101")
    assert first.receipt is not None and first.receipt.delivered
    assert second is not None and second.unknown and not second.accepted
    assert len([c for c in tencent.calls if c[0] == "SendSms"]) == 2  # nothing resent


def test_lookup_that_cannot_ask_is_gateway_unavailable(tencent: TencentAPI) -> None:
    gateway = TencentCloudGateway(_config(tencent))
    tencent.server.shutdown()
    tencent.server.server_close()
    with pytest.raises(GatewayUnavailable):
        gateway.lookup([replace(_outbound(1, "T1"), attempt_id="a3")])


@pytest.fixture
def tc_slow_app(backend: Backend, session: Session, tmp_path: Path,
                tencent: TencentAPI) -> Iterator[Flask]:
    app = create_app({"DATABASE_URL": backend.db.url, "REDIS_URL": backend.redis_url,
                      "INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x",
                      "GATEWAY": "tencentcloud", **_config(tencent),
                      "TENCENTCLOUD_TIMEOUT_S": 1})
    yield app
    app.extensions["db"].engine.dispose()


def _effective(shop: Shop, session: Session, ref: str) -> None:
    t = content.set_carrier_template_id(shop.ctx, shop.templates["international"], ref)
    reviewer = ctx_for(session, session.scalar(select(User).where(
        User.email == "rev@example.com")))
    reviews.approve(reviewer, "template", t.id, revision=t.revision)


def _ask_now(session: Session) -> None:
    """Time passes: every unknown message is due to be asked about (again)."""
    session.execute(update(Message).where(Message.status == "unknown")
                    .values(lease_until=utcnow() - timedelta(seconds=1),
                            submitted_at=utcnow() - timedelta(seconds=60)))
    session.commit()


def test_unknown_after_a_timeout_is_resolved_by_the_report(
        shop: Shop, session: Session, tc_slow_app: Flask, tencent: TencentAPI) -> None:
    """SendSms took the message but answered after our timeout: `unknown`, never
    resent. The sweeper asks Tencent again (not at every pass) until the report
    comes, then records the submission and its receipt: delivered (before: unknown
    for ever, though Tencent could say)."""
    _effective(shop, session, "1110124")
    tencent.slow["1110124"] = 1.5
    [r] = shop.send(["+14155550101"], params=["4321"])
    session.commit()
    enqueue_deferred(tc_slow_app.extensions["redis"], shop.ctx.deferred)
    assert worker.run(tc_slow_app, burst=True)
    msg = session.scalar(select(Message).where(Message.serial_no == r.serial_no))
    assert msg is not None and msg.status == "unknown"
    sweep_once(tc_slow_app)
    assert tencent.asked() == 0  # not in its first 30 s: a report takes longer
    _ask_now(session)
    assert sweep_once(tc_slow_app).resolved_unknown == 0  # no report yet: asked, not found
    assert tencent.asked() == 1
    sweep_once(tc_slow_app)
    assert tencent.asked() == 1  # not asked again at once
    deadline = time.monotonic() + 5
    while not tencent.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    tencent.deliver("+14155550101")
    _ask_now(session)
    assert sweep_once(tc_slow_app).resolved_unknown == 1
    assert worker.run(tc_slow_app, burst=True)
    session.expire_all()
    msg = session.scalar(select(Message).where(Message.serial_no == r.serial_no))
    assert msg is not None
    assert (msg.status, msg.gateway_message_id, msg.carrier_code) == (
        "delivered", tencent.sent[0]["SerialNo"], "DELIVRD")
    assert len([c for c in tencent.calls if c[0] == "SendSms"]) == 1


def test_an_expired_lease_is_resolved_by_reports_and_never_resent(
        shop: Shop, session: Session, tc_slow_app: Flask, tencent: TencentAPI) -> None:
    """A worker killed after its claim: one message had gone to Tencent, the other
    not. The report finds the first (submitted, then delivered); the second stays
    `unknown` (Tencent cannot prove it never came), is not resent, and is asked
    about again later. Before, both ended unknown without asking."""
    _effective(shop, session, "1110125")
    results = shop.send(["+14155550101", "+14155550102"], params=["4321"])
    session.commit()
    settings = pipeline.PipelineSettings()
    attempt = pipeline.new_attempt()
    claimed = claim_handed(session, attempt, settings)
    session.commit()
    gateway = tc_slow_app.extensions["gateway"]
    assert gateway.submit(pipeline.outbound(session, claimed[:1], attempt))[0].accepted
    session.execute(update(Message).where(Message.status == "submitting")
                    .values(lease_until=utcnow() - timedelta(seconds=1)))
    session.commit()
    tencent.deliver("+14155550101")
    report = sweep_once(tc_slow_app)
    assert (report.resolved_sent, report.unknown, report.requeued) == (1, 1, 0)
    assert worker.run(tc_slow_app, burst=True)
    session.expire_all()
    states = [session.scalar(select(Message.status).where(Message.serial_no == r.serial_no))
              for r in results]
    assert states == ["delivered", "unknown"]
    _ask_now(session)
    asked = tencent.asked()
    sweep_once(tc_slow_app)
    assert tencent.asked() == asked + 1
    assert len([c for c in tencent.calls if c[0] == "SendSms"]) == 1


def test_a_repeated_number_never_takes_another_messages_report(tencent: TencentAPI) -> None:
    """Two messages of one attempt to one number; only the first left (the worker died
    before the second's call). The second must stay unknown: with the first under the
    attempt's shared context, a lookup of the second matched the first's report and
    recorded a message that never left as delivered, with the first's SerialNo."""
    gateway = TencentCloudGateway(_config(tencent))
    first, repeat = (replace(_outbound(n, "T1"), phone_number="+14155550101", attempt_id="a1")
                     for n in (1, 3))
    original = tencent.answer

    def answer(action: str, body: dict[str, Any]) -> dict[str, Any]:
        if action == "SendSms" and body.get("SessionContext") == "smsops:a1:3":
            return {"RequestId": "r", "Error": {"Code": "RequestLimitExceeded",
                                                "Message": "throttled"}}  # never sent
        return original(action, body)
    tencent.answer = answer  # type: ignore[method-assign]
    results = gateway.submit([first, repeat])
    assert results[0].accepted and not results[1].accepted
    tencent.deliver("+14155550101")
    got_first, got_repeat = gateway.lookup([first, repeat])
    assert got_first is not None and got_first.accepted
    assert got_repeat is not None and got_repeat.unknown and not got_repeat.accepted
    assert gateway.lookup([repeat])[0].unknown  # asked alone, the same


def test_a_lookup_is_one_call_with_offset_zero(tencent: TencentAPI) -> None:
    """Tencent's Offset for this call is fixed at 0 (its SDK says so): paging through
    Offset 100..900 cost up to ten calls a message for the same page."""
    gateway = TencentCloudGateway(_config(tencent))
    m = replace(_outbound(1, "T1"), attempt_id="zz")
    tencent.reports += [{"SerialNo": f"x{i}", "PhoneNumber": m.phone_number,
                         "ReportStatus": "SUCCESS", "Description": "DELIVRD",
                         "SessionContext": "other"} for i in range(1000)]
    assert gateway.lookup([m])[0].unknown
    asked = [b for a, b in tencent.calls if a == "PullSmsSendStatusByPhoneNumber"]
    assert [(b["Offset"], b["Limit"]) for b in asked] == [(0, 100)]
    assert asked[0]["EndTime"] <= time.time() + 1 and asked[0]["BeginTime"] < asked[0]["EndTime"]


def _refusing(tencent: TencentAPI, code: str, number: str | None = None) -> None:
    """Tencent answers `code` to lookups (of `number`, or of every number)."""
    original = tencent.answer

    def answer(action: str, body: dict[str, Any]) -> dict[str, Any]:
        if action == "PullSmsSendStatusByPhoneNumber" and number in (None, body["PhoneNumber"]):
            return {"RequestId": "r", "Error": {"Code": code, "Message": "refused"}}
        return original(action, body)
    tencent.answer = answer  # type: ignore[method-assign]


def _unknown_rows(shop: Shop, session: Session, n: int) -> list[int]:
    """n unknown messages, each of its own attempt, old enough to be asked about."""
    results = shop.send([f"+1415555{1000 + i:04d}" for i in range(n)], params=["4321"])
    session.commit()
    ids = list(session.scalars(select(Message.id).where(
        Message.serial_no.in_([r.serial_no for r in results])).order_by(Message.id)))
    for i in ids:
        session.execute(update(Message).where(Message.id == i).values(
            status="unknown", attempt_id=pipeline.new_attempt(),
            submitted_at=utcnow() - timedelta(seconds=60), lease_until=None,
            error_code="FailedOperation.OutcomeUnknown"))
    session.commit()
    return ids


def test_a_lookup_tencent_refuses_does_not_block_the_others(
        shop: Shop, session: Session, tc_app: Flask, tencent: TencentAPI) -> None:
    """Tencent refusing the lookup of one number (an Error for it) made the whole sweep
    stop at that message, every sweep: the messages after it were never asked, though
    their reports had come. Now it stays unknown, is asked again later, and the
    others are found."""
    _effective(shop, session, "1110200")
    ids = _unknown_rows(shop, session, 3)
    rows = dict(session.execute(select(Message.id, Message.phone_number)
                                .where(Message.id.in_(ids))).all())
    attempts = dict(session.execute(select(Message.id, Message.attempt_id)
                                    .where(Message.id.in_(ids))).all())
    _refusing(tencent, "InvalidParameterValue.IncorrectPhoneNumber", rows[ids[0]])
    tencent.reports += [{"SerialNo": f"s{mid}", "PhoneNumber": rows[mid],
                         "ReportStatus": "SUCCESS", "Description": "DELIVRD",
                         "SessionContext": f"smsops:{attempts[mid]}"} for mid in ids[1:]]
    assert sweep_once(tc_app).resolved_unknown == 2
    session.expire_all()
    assert [session.scalar(select(Message.status).where(Message.id == i)) for i in ids] == [
        "unknown", "submitted", "submitted"]


def test_expired_leases_end_unknown_when_tencent_refuses_lookups(
        shop: Shop, session: Session, tc_app: Flask, tencent: TencentAPI) -> None:
    """Credentials allowed to send but not to look up (a lasting refusal): the expired
    lease ends `unknown`, as with a gateway that cannot be asked, instead of staying
    `submitting` and being asked again at every sweep."""
    _effective(shop, session, "1110201")
    shop.send(["+14155550101"], params=["4321"])
    session.commit()
    claim_handed(session, pipeline.new_attempt(), pipeline.PipelineSettings())
    session.execute(update(Message).values(lease_until=utcnow() - timedelta(seconds=1)))
    session.commit()
    _refusing(tencent, "UnauthorizedOperation.RequestPermissionDeny")
    assert sweep_once(tc_app).unknown == 1
    session.expire_all()
    assert session.scalar(select(Message.status)) == "unknown"


def test_a_sweep_asks_tencent_about_at_most_a_batch_of_messages(
        shop: Shop, session: Session, tc_app: Flask, tencent: TencentAPI) -> None:
    """120 expired leases: one lookup call per message, at most ASK_BATCH per sweep
    (Tencent allows 20 calls a second), and those just found unknown are not asked
    again in the same sweep (before: all 120, then 120 again)."""
    _effective(shop, session, "1110202")
    shop.send([f"+1415555{2000 + i:04d}" for i in range(120)], params=["4321"])
    session.commit()
    claim_handed(session, pipeline.new_attempt(), pipeline.PipelineSettings())
    session.execute(update(Message).values(lease_until=utcnow() - timedelta(seconds=1)))
    session.commit()
    report = sweep_once(tc_app)
    assert report.unknown == tencent.asked() == pipeline.ASK_BATCH
    assert sweep_once(tc_app).unknown == pipeline.ASK_BATCH  # the next ones, next sweep


def test_statistics_follow_unknown_found_and_delivered(
        shop: Shop, session: Session, tc_app: Flask, tencent: TencentAPI) -> None:
    """The rollups agree with the rows through submitting → unknown → submitted →
    delivered by the sweeper's lookups (pipeline.ask_carrier) and the receipts."""
    from tests.stats.expected import agree

    _effective(shop, session, "1110203")
    shop.send(["+14155550101", "+14155550102"], params=["4321"])
    session.commit()
    attempt = pipeline.new_attempt()
    claimed = claim_handed(session, attempt, pipeline.PipelineSettings())
    session.commit()
    tc_app.extensions["gateway"].submit(pipeline.outbound(session, claimed, attempt))
    session.execute(update(Message).values(lease_until=utcnow() - timedelta(seconds=1)))
    session.commit()
    assert sweep_once(tc_app).unknown == 2  # no reports yet
    session.expire_all()
    agree(session)
    tencent.deliver("+14155550101")
    tencent.deliver("+14155550102")
    _ask_now(session)
    assert sweep_once(tc_app).resolved_unknown == 2
    session.expire_all()
    agree(session)
    pipeline.apply_receipts(session)
    session.commit()
    session.expire_all()
    agree(session)
    assert set(session.scalars(select(Message.status))) == {"delivered"}


# --- found by a second review: template-less repeats, throttling, lookups outside the
# sweep's transaction -------------------------------------------------------------

X = "+14155550101"


def test_gateway_a_template_less_message_takes_the_report_of_its_number(
        tencent: TencentAPI) -> None:
    """A message with no carrier template is never sent, and is left out of the
    Counter in _calls, so the other message of its number goes under the shared
    context `smsops:<attempt>`; a lookup of the template-less one matches it."""
    gateway = TencentCloudGateway(_config(tencent))
    sent = replace(_outbound(1, "T1"), phone_number=X, attempt_id="a1")
    bare = replace(_outbound(2, "T1"), phone_number=X, attempt_id="a1", template_ref=None)
    results = gateway.submit([sent, bare])
    assert results[0].accepted and results[1].carrier_code == "NO_CARRIER_TEMPLATE"
    tencent.deliver(X)
    [got] = gateway.lookup([bare])
    assert got is None or not got.accepted, (
        f"never sent, yet found with {got.gateway_id} (the other message's SerialNo "
        f"{results[0].gateway_id})")


def test_pipeline_a_never_sent_message_is_recorded_delivered_with_anothers_serial(
        shop: Shop, session: Session, tc_app: Flask, tencent: TencentAPI) -> None:
    """Two messages to one number in one claim; the second's template has no carrier
    id. The worker dies after SendSms (before recording). The sweeper records the
    second, which never left, as submitted with the first's SerialNo (then
    delivered by its receipt)."""
    _effective(shop, session, "1110300")
    codes = [r.code for r in shop.send([X], params=["4321"]) + shop.send([X], params=["5678"])]
    session.commit()
    assert codes == ["Ok", "Ok"]
    first, second = session.scalars(select(Message.id).order_by(Message.id)).all()
    session.execute(update(Message).where(Message.id == second)
                    .values(template_id=shop.templates["marketing"]))  # no carrier id
    session.commit()
    attempt = pipeline.new_attempt()
    claimed = claim_handed(session, attempt, pipeline.PipelineSettings())
    session.commit()
    results = tc_app.extensions["gateway"].submit(pipeline.outbound(session, claimed, attempt))
    assert [r.accepted for r in results] == [True, False]  # the worker dies here
    session.execute(update(Message).values(lease_until=utcnow() - timedelta(seconds=1)))
    session.commit()
    tencent.deliver(X)
    sweep_once(tc_app)
    session.expire_all()
    row = session.execute(select(Message.status, Message.gateway_message_id)
                          .where(Message.id == second)).one()
    assert len([c for c in tencent.calls if c[0] == "SendSms"]) == 1
    assert row.status not in ("submitted", "delivered"), (
        f"never sent, recorded {row.status} with {row.gateway_message_id} "
        f"(message {first}'s SerialNo {results[0].gateway_id})")


def _slow_lookups(tencent: TencentAPI, delay: float) -> None:
    original = tencent.answer

    def answer(action: str, body: dict[str, Any]) -> dict[str, Any]:
        if action == "PullSmsSendStatusByPhoneNumber":
            time.sleep(delay)  # past the client's read timeout
        return original(action, body)
    tencent.answer = answer  # type: ignore[method-assign]


def test_an_unanswering_tencent_is_asked_once_per_sweep_not_once_per_attempt(
        shop: Shop, session: Session, tc_slow_app: Flask, tencent: TencentAPI) -> None:
    """resolve_expired `continue`s after GatewayUnavailable: with Tencent timing out
    (when leases expire because SendSms is slow), every attempt group costs a full
    read timeout (20 s by default), up to 50 per sweep, with the rows locked and the
    worker's sweeper thread (redrive, receipts wake, task redrive) stalled."""
    _effective(shop, session, "1110301")
    for i in range(5):  # API sends: one claim (attempt) each at low load
        shop.send([f"+1415555{3000 + i:04d}"], params=["4321"])
        session.commit()
        claim_handed(session, pipeline.new_attempt(), pipeline.PipelineSettings())
        session.commit()
    session.execute(update(Message).values(lease_until=utcnow() - timedelta(seconds=1)))
    session.commit()
    _slow_lookups(tencent, 1.5)  # TENCENTCLOUD_TIMEOUT_S = 1
    started = time.monotonic()
    sweep_once(tc_slow_app)
    took = time.monotonic() - started
    assert tencent.asked() <= 1, f"{tencent.asked()} lookups timed out in one sweep ({took:.1f} s)"


def test_a_throttled_lookup_discards_the_answers_already_found(
        shop: Shop, session: Session, tc_app: Flask, tencent: TencentAPI) -> None:
    """One attempt of 30 messages, all sent and delivered; the worker died. Tencent
    answers 20 lookups a sweep, then RequestLimitExceeded. The 20 reports found are
    thrown away with the GatewayUnavailable, and the next sweep asks about the same
    rows first: nothing is ever resolved while the throttle holds (ASK_BATCH 50 is
    more than Tencent's 20 calls a second, and every worker sweeps)."""
    _effective(shop, session, "1110302")
    shop.send([f"+1415555{4000 + i:04d}" for i in range(30)], params=["4321"])
    session.commit()
    attempt = pipeline.new_attempt()
    claimed = claim_handed(session, attempt, pipeline.PipelineSettings())
    session.commit()
    tc_app.extensions["gateway"].submit(pipeline.outbound(session, claimed, attempt))
    for c in claimed:
        tencent.deliver(c.phone_number)
    session.execute(update(Message).values(lease_until=utcnow() - timedelta(seconds=1)))
    session.commit()
    original = tencent.answer
    window = {"n": 0}

    def answer(action: str, body: dict[str, Any]) -> dict[str, Any]:
        if action == "PullSmsSendStatusByPhoneNumber":
            window["n"] += 1
            if window["n"] > 20:
                return {"RequestId": "r", "Error": {"Code": "RequestLimitExceeded",
                                                    "Message": "throttled"}}
        return original(action, body)
    tencent.answer = answer  # type: ignore[method-assign]
    resolved = 0
    for _ in range(3):
        window["n"] = 0  # a new second
        report = sweep_once(tc_app)
        resolved += report.resolved_sent + report.unknown
    assert resolved > 0, f"3 sweeps, {tencent.asked()} lookups, nothing resolved"


def test_sweeper_lookups_under_row_locks_deadlock_with_a_straggler_worker(
        shop: Shop, session: Session, tc_app: Flask, tencent: TencentAPI,
        backend: Any) -> None:
    """PostgreSQL. The sweeper locks an expired row of attempt A and asks Tencent
    (HTTP inside the transaction). The straggler worker of A records its results:
    record_submissions first releases a `not_sent` row the sweeper had already made
    `unknown` (rollups.moved: rollup rows locked), then waits in rollups.snapshot for
    the sweeper's row. The sweeper's record_submissions then needs the same rollup
    rows: a deadlock, one of the two transactions is aborted."""
    import threading

    import pytest

    from app.gateways.base import SubmitResult
    if backend.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's")
    _effective(shop, session, "1110303")
    shop.send(["+14155556001", "+14155556002"], params=["4321"])
    session.commit()
    attempt = pipeline.new_attempt()
    r1, r2 = claim_handed(session, attempt, pipeline.PipelineSettings())
    session.commit()
    # An earlier sweep found r1 unknown (its lease ran out while the worker sent).
    pipeline.record_submissions(session, attempt, [SubmitResult(
        r1.id, False, None, "FailedOperation.OutcomeUnknown", unknown=True)])
    session.execute(update(Message).where(Message.id == r2.id)
                    .values(lease_until=utcnow() - timedelta(seconds=1)))
    session.commit()
    _slow_lookups(tencent, 2.0)  # within the 20 s timeout: just slow
    errors: dict[str, BaseException] = {}

    def sweeper() -> None:
        try:
            sweep_once(tc_app)
        except BaseException as exc:
            errors["sweeper"] = exc
    t = threading.Thread(target=sweeper)
    t.start()
    time.sleep(0.7)  # the sweeper holds r2 and waits for Tencent
    db = tc_app.extensions["db"]
    try:
        with tc_app.app_context(), db.unit_of_work() as s:
            pipeline.record_submissions(s, attempt, [
                SubmitResult(r1.id, False, None, "FailedOperation.GatewayUnavailable",
                             "RequestLimitExceeded", not_sent=True),
                SubmitResult(r2.id, True, "sn-late")])
    except BaseException as exc:
        errors["worker"] = exc
    t.join(30)
    assert not errors, {k: f"{type(v).__name__}: {str(v)[:120]}" for k, v in errors.items()}


def test_sqlite_writers_wait_for_the_sweepers_lookups(
        shop: Shop, session: Session, tc_app: Flask, tencent: TencentAPI,
        backend: Any) -> None:
    """SQLite (the embedded default). resolve_unknown writes (`later`, a found
    message's record) after its first attempt group, then makes the other groups'
    HTTP calls inside the same transaction: the database's write lock is held across
    up to 49 Tencent round trips, so every API send and worker waits (busy_timeout
    30 s, then 'database is locked')."""
    import sqlite3
    import threading

    import pytest
    if backend.name != "sqlite":
        pytest.skip("SQLite's one writer")
    _effective(shop, session, "1110304")
    ids = []
    for i in range(4):
        shop.send([f"+1415555{5000 + i:04d}"], params=["4321"])
        session.commit()
    ids = list(session.scalars(select(Message.id)))
    for i in ids:
        session.execute(update(Message).where(Message.id == i).values(
            status="unknown", attempt_id=pipeline.new_attempt(),
            submitted_at=utcnow() - timedelta(seconds=60), lease_until=None))
    session.commit()
    _slow_lookups(tencent, 1.0)
    t = threading.Thread(target=sweep_once, args=(tc_app,))
    t.start()
    time.sleep(1.6)  # first group asked and written; the second's call under way
    path = backend.db.url.split("///", 1)[1]
    conn = sqlite3.connect(path, timeout=1.0)
    try:
        started = time.monotonic()
        conn.execute("UPDATE message SET fee = fee WHERE id = ?", (ids[0],))
        conn.commit()
        waited = time.monotonic() - started
    except sqlite3.OperationalError as exc:
        waited = float("inf")
        print("writer:", exc)
    finally:
        conn.close()
        t.join(30)
    assert waited < 0.5, f"a writer waited {waited} s for the sweeper's HTTP calls"


def test_a_fork_never_waits_for_the_sweepers_calls_to_tencent(
        shop: Shop, session: Session, tc_app: Flask, tencent: TencentAPI) -> None:
    """On SQLite a worker's fork waits while its sweeper is inside a transaction
    (app/supervise.py ForkGate). Held over the whole sweep, that was also while it
    asked Tencent about up to 50 messages one at a time (20 s timeout each): every job
    the worker took waited that long for its work horse. Only the transactions count."""
    import threading

    from app.supervise import ForkGate

    _effective(shop, session, "1110305")
    for i in range(4):
        shop.send([f"+1415555{6000 + i:04d}"], params=["4321"])
        session.commit()
    for i in session.scalars(select(Message.id)).all():
        session.execute(update(Message).where(Message.id == i).values(
            status="unknown", attempt_id=pipeline.new_attempt(),
            submitted_at=utcnow() - timedelta(seconds=60), lease_until=None))
    session.commit()
    _slow_lookups(tencent, 0.5)  # four questions, one at a time: about 2 s
    gate = ForkGate()
    sweeper = threading.Thread(target=sweep_once, args=(tc_app, gate))
    sweeper.start()
    try:
        deadline = time.monotonic() + 10
        while tencent.asked() < 2:  # the second question under way
            assert time.monotonic() < deadline, "Tencent never asked"
            time.sleep(0.01)
        started = time.monotonic()
        with gate:  # what a fork's at-fork hook takes
            waited = time.monotonic() - started
    finally:
        sweeper.join(30)
    assert tencent.asked() == 4
    assert waited < 0.3, f"a fork waited {waited:.1f} s for the sweeper's calls to Tencent"
