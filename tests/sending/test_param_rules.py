"""Template parameters cannot smuggle unreviewed text (SPEC.md §3, issue #8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import create_app
from app.models import Message
from app.services import app_config, content, reviews, sending
from app.services.context import Settings
from app.services.limits import Limiter
from app.sms import errors
from tests.helpers import ctx_for, make_user, root_ctx
from tests.sending.conftest import Shop

US = "+14155550123"
FORMAT = "InvalidParameterValue.TemplateParameterFormatError"
LENGTH = "InvalidParameterValue.TemplateParameterLengthLimit"


def _notification(shop: Shop, session: Session, text: str, *, allow_urls: bool = False) -> int:
    root = root_ctx(session)
    reviewer = ctx_for(session, make_user(session, "rev2@example.com", presets=["SMSReviewer"]))
    t = content.create_template(root, "international", {
        "name": "n", "sms_type": "notification", "content": text,
        "allow_url_params": "on" if allow_urls else ""})
    reviews.approve(reviewer, "template", t.id,
                    revision=reviews.load(reviewer, "template", t.id).revision)
    session.flush()
    return t.id


def test_smuggled_text_is_refused_per_number_and_not_billed(shop: Shop, session: Session) -> None:
    """The finding: an approved verification template, a 500-character parameter
    with a newline and a URL, was accepted and billed."""
    sid = shop.app.sdk_app_id
    app_config.set_frequency(shop.ctx, sid, {"30s": (True, 1), "hour": (True, 1),
                                             "day": (True, 1)})
    app_config.set_thresholds(shop.ctx, sid, "international", alarm_threshold=None,
                              daily_limit=1)
    evil = "1234\nYour account is locked, log in at https://evil.example.com/x " + "a" * 434
    assert len(evil) == 500
    results = shop.send([US, "+442079460958"], params=[evil])
    assert [r.code for r in results] == [FORMAT, FORMAT]
    assert all(r.fee == 0 for r in results)
    assert "verification code" in results[0].message
    tid = _notification(shop, session, "Dear {1}, your order shipped.")
    results = sending.send(shop.ctx, shop.limiter, sid,
                           sending.SendRequest([US, "+442079460958"], tid, [evil]))[1]
    assert [r.code for r in results] == [LENGTH, LENGTH]
    assert all(r.fee == 0 for r in results)
    assert results[0].message == "Parameter {1} has 500 characters; at most 35 are allowed."
    assert shop.codes([US], params=["1234\nhttps://evil.com"]) == [FORMAT]
    assert shop.codes([US], params=["evil.com/x"]) == [FORMAT]
    rows = session.scalars(select(Message).where(Message.phone_number == US)).all()
    assert {m.status for m in rows} == {"rejected"} and sum(m.fee for m in rows) == 0
    # Nothing was counted against the frequency or daily limits: a good send still passes.
    assert shop.codes([US], params=["123456"]) == ["Ok"]
    assert Limiter(shop.limiter.conn).used(
        sending.app_day_key(shop.app.id, "international", _day(shop))) == 1


def _day(shop: Shop) -> str:
    from app.db import utcnow
    from app.models import Account

    account = shop.ctx.db.get(Account, shop.app.account_id)
    return sending._local_day(account, utcnow())[0]


def test_verification_code_is_four_to_eight_letters_or_digits(shop: Shop) -> None:
    for n, good in enumerate(("1234", "12345678", "AbC9", "x1y2z3")):
        assert shop.codes([f"+1415555{200 + n:04d}"], params=[good]) == ["Ok"], good
    for bad in ("123", "123456789", "12 34", "12-34", "\uff11\uff12\uff13\uff14", "12345\n",
                "ab.cd"):
        assert shop.codes([US], params=[bad]) == [FORMAT], bad


def test_other_parameters(shop: Shop, session: Session) -> None:
    tid = _notification(shop, session, "Hi {1}, order {2} ships {3}.")
    req = lambda *p: sending.send(shop.ctx, shop.limiter, shop.app.sdk_app_id,  # noqa: E731
                                  sending.SendRequest([US], tid, list(p)))[1][0].code
    assert req("Zhang San", "A-1001", "today") == "Ok"
    assert req("x" * 35, "A-1002", "today") == "Ok"
    assert req("x" * 36, "A-1003", "today") == LENGTH
    assert req("Zhang\nSan", "A-1004", "today") == FORMAT
    assert req("Zhang\u2028San", "A-1005", "today") == FORMAT
    assert req("Zhang", "A-1006\t", "today") == FORMAT
    assert req("Zhang", "A-1007", "at www.evil.cn") == FORMAT
    assert req("Zhang", "A-1008", "e.g. 3.5 kg, Mr.Smith") == "Ok"


def test_parameters_cannot_complete_a_url_with_the_template(shop: Shop,
                                                             session: Session) -> None:
    tid = _notification(shop, session, "Visit {1}.com for order {2}")
    send = lambda *p: sending.send(shop.ctx, shop.limiter, shop.app.sdk_app_id,  # noqa: E731
                                   sending.SendRequest([US], tid, list(p)))[1][0].code
    assert send("evil", "1") == FORMAT
    assert send("our shop", "2") == FORMAT  # "our shop.com" is a link too
    assert send("5 %", "3") == "Ok"


def test_template_may_allow_urls(shop: Shop, session: Session) -> None:
    tid = _notification(shop, session, "Track {1}: {2}", allow_urls=True)
    req = sending.SendRequest([US], tid, ["A-1", "shop.example.com/t/A1"])
    assert sending.send(shop.ctx, shop.limiter, shop.app.sdk_app_id, req)[1][0].code == "Ok"
    req = sending.SendRequest([US], tid, ["A-1", "a\nb"])  # still one line
    assert sending.send(shop.ctx, shop.limiter, shop.app.sdk_app_id, req)[1][0].code == FORMAT


def test_length_limit_is_a_setting(shop: Shop, session: Session) -> None:
    tid = _notification(shop, session, "Hello {1}")
    ctx = root_ctx(session, template_param_max_length=5)
    codes = [sending.send(ctx, shop.limiter, shop.app.sdk_app_id,
                          sending.SendRequest([US], tid, [p]))[1][0].code
             for p in ("abcde", "abcdef")]
    assert codes == ["Ok", LENGTH]


def test_codes_are_in_the_catalogue(session: Session) -> None:
    assert errors.describe(FORMAT).retryable is False
    assert errors.describe(LENGTH).retryable is False
    assert session.scalar(select(func.count()).select_from(Message)) == 0


def test_length_setting_from_the_environment(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"INSTANCE_DIR": str(tmp_path), "SECRET_KEY": "x", "REDIS_URL": "redis://127.0.0.1:1/0"}
    monkeypatch.setenv("SMSOPS_TEMPLATE_PARAM_MAX_LENGTH", "20")
    app = create_app(base)
    assert Settings.from_config(app.config).template_param_max_length == 20
    for bad in ("abc", "0", "true"):  # refused at start-up, not on every send
        monkeypatch.setenv("SMSOPS_TEMPLATE_PARAM_MAX_LENGTH", bad)
        with pytest.raises(ValueError, match="SMSOPS_TEMPLATE_PARAM_MAX_LENGTH"):
            create_app(base)


def test_url_opt_in_is_reviewed_like_any_edit(shop: Shop, session: Session) -> None:
    from app.models import AuditEntry
    from app.services.errors import Conflict

    tid = _notification(shop, session, "Track {1}")
    with pytest.raises(Conflict):  # an effective template cannot be changed in place
        content.update_template(shop.ctx, tid, {"name": "n", "sms_type": "notification",
                                                "content": "Track {1}",
                                                "allow_url_params": "on"})
    t = content.create_template(shop.ctx, "international", {
        "name": "t", "sms_type": "notification", "content": "Track {1}"})
    reviewer = ctx_for(session, make_user(session, "rev3@example.com", presets=["SMSReviewer"]))
    reviews.reject(reviewer, "template", t.id, "say what the link is",
                   revision=reviews.load(reviewer, "template", t.id).revision)
    content.update_template(shop.ctx, t.id, {"name": "t", "sms_type": "notification",
                                             "content": "Track {1}", "allow_url_params": "on"})
    assert (t.status, t.allow_url_params) == ("pending", True)
    [item] = [i for i in reviews.queue(reviewer) if i.obj.id == t.id]
    assert ("allow_url_params", False, True) in item.changes
    audit = session.scalars(select(AuditEntry).where(AuditEntry.action == "ModifySmsTemplate")
                            ).all()
    assert audit and audit[-1].after["allow_url_params"] is True
