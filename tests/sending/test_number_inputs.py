"""Every service that takes a typed number uses the one parser and its one message."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.orm import Session

from app.models import FrequencyAllowlistEntry, MuteEntry, Unsubscribe
from app.services import app_config, mute, sending, unsubscribes
from app.services.errors import ValidationError
from tests.number_cases import BAD, GOOD
from tests.sending.conftest import Shop


def _entry_points(shop: Shop, session: Session) -> dict[str, Callable[[str], str]]:
    """Each takes a typed number and returns it as stored or found."""
    sid, ctx = shop.app.sdk_app_id, shop.ctx
    sig = shop.signatures["international"]

    def allowlist(raw: str) -> str:
        app_config.add_allowlist(ctx, sid, raw)
        return session.query(FrequencyAllowlistEntry).order_by(
            FrequencyAllowlistEntry.id.desc()).first().phone_number

    def contact(raw: str) -> str:
        for c in list(shop.app.contacts):
            app_config.delete_contact(ctx, sid, c.id)
        return app_config.add_contact(ctx, sid, name="Ops", mobile=raw, events=[]).mobile

    def mute_add(raw: str) -> str:
        return mute.add(ctx, phone_number=raw, signature_id=sig, sms_type="",
                        consent=True).phone_number

    def mute_query(raw: str) -> str:
        mute.entries(ctx, raw)
        return "ok"

    def unsubscribed(raw: str) -> str:
        unsubscribes.query(ctx, phone_number=raw)
        return "ok"

    def removal(raw: str) -> str:
        try:
            return unsubscribes.request_removal(ctx, phone_number=raw, signature_id=sig,
                                                sms_type="marketing",
                                                reason="asked again").phone_number
        except Exception as exc:  # the number parsed; nothing to remove is a Conflict
            if type(exc).__name__ == "Conflict":
                return "parsed"
            raise

    return {"allowlist": allowlist, "contact": contact, "mute add": mute_add,
            "mute query": mute_query, "unsubscribed": unsubscribed, "removal": removal}


@pytest.mark.parametrize(("raw", "e164"), GOOD)
def test_good_numbers_everywhere(shop: Shop, session: Session, raw: str, e164: str) -> None:
    session.add(Unsubscribe(account_id=shop.app.account_id, phone_number=e164,
                            signature_id=shop.signatures["international"],
                            sms_type="marketing"))
    session.flush()
    region = "mainland" if e164.startswith("+86") else "international"
    [r] = shop.send([raw], template=region)
    assert (r.code, r.phone_number) == ("Ok", e164)
    for name, enter in _entry_points(shop, session).items():
        assert enter(raw) in (e164, "ok"), name
    assert session.query(MuteEntry).filter_by(phone_number=e164).count() == 1


@pytest.mark.parametrize(("raw", "message"), BAD)
def test_bad_numbers_get_one_message_everywhere(shop: Shop, session: Session, raw: str,
                                                message: str) -> None:
    for name, enter in _entry_points(shop, session).items():
        with pytest.raises(ValidationError) as exc:
            enter(raw)
        expected = f"Line 1 ({raw}): {message}" if name == "allowlist" else message
        assert expected in exc.value.errors.values(), name
    for region in ("mainland", "international"):
        [r] = shop.send([raw], template=region)
        assert (r.code, r.message) == ("InvalidParameterValue.IncorrectPhoneNumber", message)


def test_allowlist_lists_every_bad_line_readably(shop: Shop) -> None:
    """The finding: '…+8613800000000.;' — messages were glued with semicolons."""
    with pytest.raises(ValidationError) as exc:
        app_config.add_allowlist(shop.ctx, shop.app.sdk_app_id,
                                 "13800000000\nabc\n4155550100")
    assert exc.value.errors["numbers"] == (
        f"Line 2 (abc): {BAD[1][1]} Line 3 (4155550100): {BAD[0][1]}")
    assert ".;" not in exc.value.message


def test_send_region_rules_keep_their_own_messages(shop: Shop) -> None:
    [r] = shop.send(["13800000000"])
    assert r.message == "Mainland China numbers are sent as mainland messages."
    [r] = shop.send(["+14155550100"], template="mainland")
    assert r.message == "Mainland messages go to mainland China numbers only."
    assert sending.MAX_NUMBERS == 200
