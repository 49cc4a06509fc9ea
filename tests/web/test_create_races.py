"""Two people submit the same new name (or number) at the same moment.

Both requests pass the service's "is it free?" check before either writes, so the
database's unique constraint decides. The loser must get the form back with a clear
error, never a 500, and nothing of its write may be kept.

Each request's first write to the table is held (in the engine, on the request's own
thread) until the other request has reached it too, so the race happens every time
rather than now and then; two real requests on two threads, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app.models import (
    AllowedCountry,
    AuditEntry,
    CustomerGroup,
    FrequencyAllowlistEntry,
    GroupMember,
    MuteEntry,
    Policy,
    User,
)
from app.services import audience, policies
from app.web.users import POLICY_EXAMPLE
from tests.helpers import held_together, make_app, root_ctx, together
from tests.sending.conftest import Shop
from tests.web.conftest import Client, text_of


@pytest.fixture
def roots(app: Flask, root: Client) -> list[Client]:
    """Two browsers signed in as root."""
    other = Client(app.test_client())
    assert other.login("root@example.com").status_code == 302
    return [root, other]


def _race(app: Flask, statement: str, *posts: tuple[Client, str, dict[str, Any]]
          ) -> tuple[TestResponse, TestResponse]:
    """Two posts at once, both held at `statement`: the one that won, the one that lost."""
    with held_together(app.extensions["db"].engine, statement) as met:
        answers = together(*(lambda c=c, u=u, d=d: c.post(u, d) for c, u, d in posts))
    statuses = sorted(a.status_code for a in answers)
    assert 500 not in statuses, [a.get_data(as_text=True)[:2000] for a in answers]
    won = [a for a in answers if a.status_code in (200, 302)]
    lost = [a for a in answers if a.status_code == 422]
    assert len(won) == 1 and len(lost) == 1, statuses
    assert len(met) == 2, met
    return won[0], lost[0]


def _same(roots: list[Client], url: str, data: dict[str, Any]
          ) -> list[tuple[Client, str, dict[str, Any]]]:
    return [(c, url, data) for c in roots]


def _count(session: Session, model: Any, *where: Any) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def _audits(session: Session, action: str) -> int:
    return _count(session, AuditEntry, AuditEntry.action == action)


def test_policy_with_the_same_name(app: Flask, roots: list[Client], session: Session) -> None:
    _won, lost = _race(app, "INSERT INTO policy", *_same(roots, "/policies/new", {
        "name": "Release", "description": "", "document": POLICY_EXAMPLE}))
    assert "A policy with this name exists." in text_of(lost, "main")
    assert _count(session, Policy, Policy.name == "Release") == 1
    assert _audits(session, "CreatePolicy") == 1


def test_renaming_two_policies_to_one_name(app: Flask, roots: list[Client],
                                           session: Session) -> None:
    c = root_ctx(session)
    ids = [policies.create_policy(c, name=n, description="", document=POLICY_EXAMPLE).id
           for n in ("a", "b")]
    session.commit()
    form = {"name": "Same", "description": "", "document": POLICY_EXAMPLE}
    _won, lost = _race(app, "UPDATE policy", *((r, f"/policies/{i}", form)
                                               for r, i in zip(roots, ids, strict=True)))
    assert "A policy with this name exists." in text_of(lost, "main")
    assert _count(session, Policy, Policy.name == "Same") == 1
    assert _audits(session, "ModifyPolicy") == 1


def test_user_with_the_same_email(app: Flask, roots: list[Client], session: Session) -> None:
    _won, lost = _race(app, "INSERT INTO user_account", *_same(roots, "/users", {
        "email": "new@example.com", "name": "New"}))
    assert "A user with this email already exists." in text_of(lost, "main")
    assert _count(session, User, User.email == "new@example.com") == 1
    assert _audits(session, "CreateUser") == 1


def test_group_with_the_same_name(app: Flask, roots: list[Client], session: Session) -> None:
    _won, lost = _race(app, "INSERT INTO customer_group", *_same(roots, "/groups", {
        "name": "VIP", "sms_type": "marketing"}))
    assert "A group with this name exists already." in text_of(lost, "main")
    assert _count(session, CustomerGroup) == 1
    assert _audits(session, "CreateCustomerGroup") == 1


def test_numbers_into_a_new_group_of_the_same_name(app: Flask, roots: list[Client],
                                                   session: Session) -> None:
    _won, lost = _race(app, "INSERT INTO customer_group", *_same(roots, "/groups/numbers", {
        "numbers": "13800138000", "group_id": "", "new_name": "Spring",
        "sms_type": "marketing"}))
    assert "A group with this name exists already." in text_of(lost, "main")
    assert _count(session, CustomerGroup) == 1
    assert _count(session, GroupMember) == 1  # the loser's numbers went with its group
    assert _audits(session, "CreateCustomerGroup") == 1


def test_renaming_two_groups_to_one_name(app: Flask, roots: list[Client],
                                         session: Session) -> None:
    c = root_ctx(session)
    ids = [audience.create_group(c, name=n, sms_type="marketing").id for n in ("A", "B")]
    session.commit()
    _won, lost = _race(app, "UPDATE customer_group", *(
        (r, f"/groups/{i}/rename", {"name": "Same"}) for r, i in zip(roots, ids, strict=True)))
    assert "A group with this name exists already." in text_of(lost, "main")
    assert _count(session, CustomerGroup, CustomerGroup.name == "Same") == 1
    assert _audits(session, "ModifyCustomerGroup") == 1


def test_the_same_country(app: Flask, roots: list[Client], session: Session) -> None:
    sdk_app_id = make_app(session)
    session.commit()
    _won, lost = _race(app, "INSERT INTO allowed_country", *_same(
        roots, f"/apps/{sdk_app_id}/countries",
        {"iso_code": "US", "alarm_threshold": "", "daily_limit": ""}))
    assert "at the same time" in text_of(lost, "main")
    assert _count(session, AllowedCountry, AllowedCountry.iso_code == "US") == 1
    assert _audits(session, "ModifyCountryConfig") == 1


def test_the_same_country_file(app: Flask, roots: list[Client], session: Session) -> None:
    sdk_app_id = make_app(session)
    session.commit()
    _won, lost = _race(app, "INSERT INTO allowed_country", *(
        (r, f"/apps/{sdk_app_id}/countries/import", {"file": (io.BytesIO(b"US\nGB\n"), "c.csv")})
        for r in roots))
    assert "at the same time" in text_of(lost, "main")
    assert _count(session, AllowedCountry) == 2
    assert _audits(session, "ModifyCountryConfig") == 1


def test_the_same_allowlist_number(app: Flask, roots: list[Client], session: Session) -> None:
    sdk_app_id = make_app(session)
    session.commit()
    _won, lost = _race(app, "INSERT INTO frequency_allowlist", *_same(
        roots, f"/apps/{sdk_app_id}/allowlist", {"numbers": "+14155550100"}))
    assert "at the same time" in text_of(lost, "main")
    assert _count(session, FrequencyAllowlistEntry) == 1
    assert _audits(session, "AddFrequencyWhiteList") == 1


@pytest.mark.parametrize("sms_type", ["marketing", ""])  # "": every type (a NULL in the key)
def test_the_same_mute_entry(app: Flask, roots: list[Client], shop: Shop,
                             session: Session, sms_type: str) -> None:
    session.commit()
    _won, lost = _race(app, "INSERT INTO mute_entry", *_same(roots, "/mute", {
        "phone_number": "+14155550123", "signature_id": str(shop.signatures["international"]),
        "sms_type": sms_type, "consent": "on"}))
    assert "at the same time" in text_of(lost, "main")
    assert _count(session, MuteEntry) == 1
    assert _audits(session, "AddBlackList") == 1


def test_a_third_api_key_at_once(app: Flask, roots: list[Client], session: Session) -> None:
    """No unique key guards "at most two pairs": the count and the insert must not
    interleave (on SQLite too, where FOR UPDATE locks nothing)."""
    from app.models import ApiKey
    from app.services import api_keys

    root = session.scalar(select(User).where(User.is_root))
    assert root is not None
    api_keys.create_key(root_ctx(session), root.id)
    session.commit()
    with held_together(app.extensions["db"].engine, "INSERT INTO api_key", hold_s=1):
        answers = together(*(lambda c=c: c.post(f"/api-keys/users/{root.id}")
                             for c in roots))
    assert sorted(a.status_code for a in answers) == [200, 302], [
        a.get_data(as_text=True)[:1000] for a in answers]
    assert _count(session, ApiKey) == 2
