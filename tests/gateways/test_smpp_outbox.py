"""The two pipeline rules the SMPP gateway needs (app/services/pipeline.py):
`not_sent` results go back to `accepted` under the attempt check, and a multi-part
message is settled by all its parts' receipts."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.gateways.base import Receipt, SubmitResult
from app.models import Message
from app.models.sending import MessagePart
from app.services import pipeline
from app.services.pipeline import PipelineSettings
from tests.helpers import claim_handed
from tests.sending.conftest import Shop

SETTINGS = PipelineSettings(lease_s=30)


def _claimed(shop: Shop, session: Session, n: int) -> tuple[str, list[int]]:
    shop.send([f"+1415555{i:04d}" for i in range(n)])
    session.commit()
    attempt = pipeline.new_attempt()
    ids = [c.id for c in claim_handed(session, attempt, SETTINGS)]
    session.commit()
    return attempt, ids


def _state(session: Session, mid: int) -> tuple[str, str | None]:
    session.expire_all()
    m = session.get(Message, mid)
    assert m is not None
    return m.status, m.attempt_id


def test_not_sent_goes_back_to_accepted_only_under_the_same_attempt(
        shop: Shop, session: Session) -> None:
    attempt, (a, b, c, d) = _claimed(shop, session, 4)
    # `c` was marked unknown by the sweeper meanwhile (lease out): a result corrects it.
    session.execute(update(Message).where(Message.id == c).values(status="unknown"))
    results = [SubmitResult(a, True, "g1"), SubmitResult(b, False, not_sent=True),
               SubmitResult(c, False, not_sent=True), SubmitResult(d, False, unknown=True)]
    assert pipeline.record_submissions(session, attempt, results) == 2
    session.commit()
    assert _state(session, a) == ("submitted", attempt)
    assert _state(session, b) == ("accepted", None)
    assert _state(session, c) == ("accepted", None)
    assert _state(session, d) == ("unknown", attempt)
    # A straggler from an older attempt cannot move a row claimed again.
    again = pipeline.new_attempt()
    assert {x.id for x in claim_handed(session, again, SETTINGS)} == {b, c}
    pipeline.record_submissions(session, attempt, [SubmitResult(b, False, not_sent=True)])
    assert _state(session, b) == ("submitting", again)


def test_parts_settle_the_message_together(shop: Shop, session: Session) -> None:
    attempt, (a, b, c) = _claimed(shop, session, 3)
    pipeline.record_submissions(session, attempt, [
        SubmitResult(m, True, f"{m}-1", part_ids=(f"{m}-1", f"{m}-2", f"{m}-3"))
        for m in (a, b, c)])
    session.commit()
    assert session.scalar(select(MessagePart.id).where(MessagePart.gateway_id == f"{b}-3"))

    def receipts(*items: tuple[str, bool]) -> None:
        pipeline.add_receipts(session, [(Receipt(ok, "DELIVRD" if ok else "UNDELIV",
                                                 gateway_id=gid), None, 0.0)
                                        for gid, ok in items])
        pipeline.apply_receipts(session)
        session.commit()

    # a: two of three parts delivered: still out. b: the last part fails first.
    receipts((f"{a}-1", True), (f"{a}-2", True), (f"{b}-3", False))
    assert _state(session, a)[0] == "submitted"
    assert _state(session, b)[0] == "failed"
    # a: the last part arrives → delivered; b's other parts cannot undo the failure;
    # c: all three in one batch, in any order.
    receipts((f"{b}-1", True), (f"{a}-3", True), (f"{c}-3", True), (f"{c}-1", True),
             (f"{b}-2", True), (f"{c}-2", True))
    assert [_state(session, m)[0] for m in (a, b, c)] == ["delivered", "failed", "delivered"]
    failed = session.get(Message, b)
    assert failed is not None and failed.carrier_code == "UNDELIV"
