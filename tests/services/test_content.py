"""Content rules and their state transitions (SPEC.md §2)."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy.orm import Session

from app.models.content import APPROVED, EFFECTIVE, PENDING, REJECTED
from app.services import accounts, content, reviews
from app.services.errors import Conflict, ValidationError
from app.services.uploads import Upload
from tests.helpers import QUALIFICATION, ctx_for, make_user, root_ctx


def png(size: int = 8) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (size, size), "red").save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def reviewer(session: Session):  # type: ignore[no-untyped-def]
    return ctx_for(session, make_user(session, "reviewer@example.com",
                                      presets=["SMSReviewer"]))


def _approved_qualification(session: Session, reviewer) -> int:  # type: ignore[no-untyped-def]
    q = content.create_qualification(root_ctx(session), dict(QUALIFICATION))
    reviews.approve(reviewer, "qualification", q.id, revision=q.revision)
    return q.id


def test_qualification_fields_are_checked(session: Session) -> None:
    with pytest.raises(ValidationError) as exc:
        content.create_qualification(root_ctx(session), {"use": "both", "admin_phone": "12"})
    assert {"use", "enterprise_name", "licence_number", "admin_phone"} <= set(exc.value.errors)


def test_approved_qualification_changes_only_some_fields(session: Session, reviewer) -> None:
    c = root_ctx(session)
    qid = _approved_qualification(session, reviewer)
    with pytest.raises(ValidationError) as exc:
        content.update_qualification(c, qid, {"enterprise_name": "Other Co.", "use": "third_party"})
    assert set(exc.value.errors) == {"enterprise_name", "use"}
    q = content.update_qualification(c, qid, {"legal_rep_name": "Wang Wu"})
    assert q.status == PENDING and q.legal_rep_name == "Wang Wu"  # re-submitted
    reviews.reject(reviewer, "qualification", qid, "Blurry licence", revision=q.revision)
    q = content.update_qualification(c, qid, {"enterprise_name": "Acme Group"})
    assert q.enterprise_name == "Acme Group" and q.status == PENDING and q.reject_reason is None


def test_deleting_a_qualification_makes_its_signatures_unusable(session: Session,
                                                                  reviewer) -> None:
    c = root_ctx(session)
    qid = _approved_qualification(session, reviewer)
    sig = content.create_signature(c, "mainland", {"purpose": "self", "qualification_id": qid,
                                                   "sign_type": "company", "content": "Acme"})
    reviews.approve(reviewer, "signature", sig.id, revision=sig.revision)
    assert sig.usable and content.default_signature(c, "mainland") is sig
    assert [s.id for s in content.deletion_impact(c, [qid])] == [sig.id]
    affected = content.delete_qualifications(c, [qid])
    assert [s.id for s in affected] == [sig.id]
    session.expire_all()
    sig = content.get_signature(c, sig.id)
    assert sig.status == EFFECTIVE and sig.orphaned and not sig.usable
    assert content.default_signature(c, "mainland") is None


@pytest.mark.parametrize(("value", "message"), [
    ("A", "2 to 12"), ("ThirteenChars", "2 to 12"), ("【Acme】", "Brackets"), ("Ac[me", "Brackets"),
    ("   ", "Required"),
])
def test_signature_content_rules(session: Session, value: str, message: str) -> None:
    with pytest.raises(ValidationError) as exc:
        content.create_signature(root_ctx(session), "international",
                                 {"purpose": "self", "sign_type": "app", "content": value})
    assert message in exc.value.errors["content"]


def test_signature_needs_approved_qualification_on_mainland(session: Session,
                                                            reviewer) -> None:
    c = root_ctx(session)
    q = content.create_qualification(c, dict(QUALIFICATION))
    data = {"purpose": "self", "qualification_id": str(q.id), "sign_type": "company",
            "content": "Acme"}
    with pytest.raises(ValidationError, match="approved first"):
        content.create_signature(c, "mainland", data)
    reviews.approve(reviewer, "qualification", q.id, revision=q.revision)
    assert content.create_signature(c, "mainland", data).qualification_id == q.id
    # International signatures have no qualification.
    s = content.create_signature(c, "international", {**data, "content": " Acme Intl "})
    assert s.qualification_id is None and s.content == "Acme Intl"


def test_images_are_checked_by_content(session: Session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from app.services.context import Ctx

    base = root_ctx(session)
    c = Ctx(base.db, base.actor, type(base.settings)(upload_dir=tmp_path))
    data = {"purpose": "other", "sign_type": "trademark", "content": "Brandy"}
    with pytest.raises(ValidationError) as exc:
        content.create_signature(c, "international", data)
    assert set(exc.value.errors) == {"proof_image", "authorization_image"}
    fake = Upload("logo.png", b"<?php echo 1; ?>")
    with pytest.raises(ValidationError, match="not a readable JPG or PNG"):
        content.create_signature(c, "international", data, proof=fake,
                                 authorization=Upload("a.png", png()))
    gif = io.BytesIO()
    Image.new("RGB", (4, 4)).save(gif, "GIF")
    with pytest.raises(ValidationError, match="not GIF"):
        content.create_signature(c, "international", data, proof=Upload("x.png", gif.getvalue()),
                                 authorization=Upload("a.png", png()))
    with pytest.raises(ValidationError, match="larger than 5 MB"):
        content.create_signature(c, "international", data,
                                 proof=Upload("big.png", b"\x89PNG" + b"0" * (5 * 1024 * 1024)),
                                 authorization=Upload("a.png", png()))
    assert list(tmp_path.iterdir()) == []  # refused forms store nothing
    s = content.create_signature(c, "international", data, proof=Upload("t.jpg", png()),
                                 authorization=Upload("a.png", png()))
    assert s.proof_image.endswith(".png")  # named by what it is, not what it was called
    assert list(tmp_path.iterdir()) == []  # not before the commit
    session.commit()
    assert (tmp_path / s.proof_image).read_bytes() == png()


def test_individual_accounts_are_limited(session: Session) -> None:
    c = root_ctx(session)
    accounts.update_settings(c, account_type="individual", timezone="Asia/Shanghai",
                             intl_daily_quota=100, reply_callback_url="",
                             reply_callback_enabled=False)
    with pytest.raises(ValidationError, match="Individual accounts may use"):
        content.create_signature(c, "international", {"purpose": "self", "sign_type": "company",
                                                      "content": "Acme"})
    with pytest.raises(ValidationError, match="cannot send marketing"):
        content.create_template(c, "international", {"name": "Sale", "sms_type": "marketing",
                                                      "content": "Sale! Reply STOP to opt out"})


def test_template_rules_are_all_reported(session: Session) -> None:
    with pytest.raises(ValidationError) as exc:
        content.create_template(root_ctx(session), "mainland", {
            "name": "", "sms_type": "marketing", "content": "Sale {1} {3}"})
    assert "name" in exc.value.errors
    msg = exc.value.errors["content"]
    assert "consecutively" in msg and "opt out" in msg


def test_edit_only_while_pending_or_rejected(session: Session, reviewer) -> None:
    c = root_ctx(session)
    t = content.create_template(c, "international", {"name": "Code", "sms_type": "verification",
                                                      "content": "Your code is {1}"})
    t = content.update_template(c, t.id, {"name": "Code", "sms_type": "verification",
                                          "content": "Code: {1}"})
    assert t.status == PENDING
    reviews.reject(reviewer, "template", t.id, "Say what the code is for", revision=t.revision)
    t = content.update_template(c, t.id, {"name": "Code", "sms_type": "verification",
                                          "content": "Your login code is {1}"})
    assert t.status == PENDING and t.reject_reason is None
    reviews.approve(reviewer, "template", t.id, revision=t.revision)
    with pytest.raises(Conflict, match="effective"):
        content.update_template(c, t.id, {"name": "x", "sms_type": "verification",
                                          "content": "Code {1}"})
    content.delete_template(c, t.id)
    assert content.list_templates(c, "international") == []


def test_preview_counts_with_the_default_signature(session: Session, reviewer) -> None:
    c = root_ctx(session)
    s = content.create_signature(c, "international", {"purpose": "self", "sign_type": "app",
                                                      "content": "Acme"})
    reviews.approve(reviewer, "signature", s.id, revision=s.revision)
    p = content.preview(c, "international", "verification", "Your code is {1}")
    assert p["variables"] == [1] and p["problems"] == []
    assert p["sample"] == "[Acme] Your code is 123456"
    assert (p["encoding"], p["billed_items"]) == ("GSM-7", 1)
    p = content.preview(c, "mainland", "notification", "订单{1}已发货")
    assert p["signature"] is None and p["encoding"] == "UCS-2"


def test_status_values_are_what_reviews_set(session: Session, reviewer) -> None:
    q = content.create_qualification(root_ctx(session), dict(QUALIFICATION))
    assert reviews.approve(reviewer, "qualification", q.id, revision=q.revision).status == APPROVED
    t = content.create_template(root_ctx(session), "mainland", {
        "name": "n", "sms_type": "notification", "content": "Order {1} shipped"})
    assert reviews.reject(reviewer, "template", t.id, "no", revision=t.revision).status == REJECTED
