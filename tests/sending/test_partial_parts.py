"""A multi-part message of which only some parts reached the carrier (the SMPP link
dropped between them) ends `unknown`; a receipt for a part that did go out must not
report the whole message delivered: the recipient never got it whole."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.gateways.base import Receipt, SubmitResult
from app.gateways.smpp import _Progress
from app.models import Message
from app.services import pipeline
from tests.helpers import claim_handed
from tests.sending.conftest import Shop


def _partial(shop: Shop, session: Session) -> int:
    m = Message(account_id=shop.app.account_id, app_id=shop.app.id,
                serial_no=uuid.uuid4().hex, request_id="r", region="international",
                phone_number="+14155550101", iso_code="US", content="x" * 200,
                encoding="GSM-7", fee=2, status="accepted")
    session.add(m)
    session.commit()
    attempt = pipeline.new_attempt()
    [c] = claim_handed(session, attempt, pipeline.PipelineSettings())
    session.commit()
    # What the SMPP gateway answers: part 1 taken (its id), part 2 never written.
    progress = _Progress(0, [b"one", b"two"], ids={0: "gw-part1"})
    result = progress.result(c.id)
    assert result.unknown and result.part_ids == ("gw-part1", "")
    pipeline.record_submissions(session, attempt, [result])
    session.commit()
    return c.id


def _receipt(session: Session, delivered: bool) -> None:
    pipeline.add_receipts(session, [(Receipt(delivered, "DELIVRD" if delivered else "UNDELIV",
                                             gateway_id="gw-part1"), None, 0)])
    session.commit()
    pipeline.apply_receipts(session)
    session.commit()


def test_the_sent_parts_receipt_does_not_make_it_delivered(shop: Shop,
                                                           session: Session) -> None:
    mid = _partial(shop, session)
    _receipt(session, delivered=True)
    assert session.scalar(select(Message.status).where(Message.id == mid)) == "unknown"


def test_a_sent_part_that_failed_fails_it(shop: Shop, session: Session) -> None:
    mid = _partial(shop, session)
    _receipt(session, delivered=False)
    assert session.scalar(select(Message.status).where(Message.id == mid)) == "failed"


def test_a_whole_multi_part_message_still_settles_by_its_parts() -> None:
    whole = _Progress(0, [b"one", b"two"], ids={0: "a", 1: "b"}).result(7)
    assert whole.accepted and whole.part_ids == ("a", "b")
    assert SubmitResult(7, True).part_ids == ()
