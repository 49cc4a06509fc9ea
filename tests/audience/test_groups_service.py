"""Customer groups and the customer pool in the service layer (SPEC.md §4)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import Account, AuditEntry, CustomerGroup, GroupMember
from app.services import audience, mute, unsubscribes
from app.services.context import Ctx
from app.services.errors import NotFound, PermissionDenied, ValidationError
from app.services.users import bootstrap_user
from tests.helpers import ctx_for, doc, make_user, root_ctx
from tests.sending.conftest import Shop


def _count(session: Session, gid: int) -> int:
    return session.scalar(select(func.count()).select_from(GroupMember)
                          .where(GroupMember.group_id == gid)) or 0


def test_typed_entry_merges_duplicates_and_keeps_the_count(session: Session) -> None:
    c = root_ctx(session)
    first = audience.add_typed(c, text="13800138000\n+86 138 0013 8000\n\n+14155550100\n",
                               new_name="VIP", sms_type="marketing")
    assert (first.added, first.merged) == (2, 1)
    again = audience.add_typed(c, text="13800138000\n13900139000", group_id=first.group.id)
    assert (again.added, again.merged) == (1, 1)
    group = session.get(CustomerGroup, first.group.id)
    assert group is not None and group.member_count == 3 == _count(session, group.id)
    assert group.sms_type == "marketing" and group.created_by


def test_a_bad_line_writes_nothing_and_names_every_bad_line(session: Session) -> None:
    c = root_ctx(session)
    with pytest.raises(audience.BadLines) as caught:
        audience.add_typed(c, text="13800138000\n4155550100\nhello\n+86 10 1234\n",
                           new_name="Spring", sms_type="marketing")
    assert [(b.line, b.reason[:20]) for b in caught.value.lines] == [
        (2, "Add the country code"), (3, "Not a phone number: "), (4, "Not a valid phone nu")]
    session.rollback()
    assert session.scalar(select(func.count()).select_from(CustomerGroup)) == 0


def test_limits_and_names(session: Session) -> None:
    c = root_ctx(session)
    with pytest.raises(ValidationError, match="At most 100"):
        audience.add_typed(c, text="\n".join(f"+1415555{i:04d}" for i in range(101)),
                           new_name="Big", sms_type="marketing")
    with pytest.raises(ValidationError) as both:
        audience.create_group(c, name=" ", sms_type="spam")
    assert set(both.value.errors) == {"name", "sms_type"}
    audience.create_group(c, name="Autumn  sale", sms_type="notification")
    with pytest.raises(ValidationError, match="exists already"):
        audience.create_group(c, name="autumn sale", sms_type="marketing")
    with pytest.raises(ValidationError, match="40"):
        audience.create_group(c, name="x" * 41, sms_type="marketing")
    g = audience.create_group(c, name="Other", sms_type="marketing")
    with pytest.raises(ValidationError, match="Marketing"):
        audience.add_typed(c, text="13800138000", group_id=g.id, sms_type="notification")


def test_remove_rename_delete_and_search(session: Session) -> None:
    c = root_ctx(session)
    result = audience.add_typed(c, text="13800138000\n13900139000\n+14155550100",
                                new_name="Mixed", sms_type="notification")
    gid = result.group.id
    _, rows, total = audience.members(c, gid, "139")
    assert total == 1 and [m.phone_number for m in rows] == ["+8613900139000"]
    _, us, _ = audience.members(c, gid, "+1 415")
    assert [m.phone_number for m in us] == ["+14155550100"]
    with pytest.raises(ValidationError):
        audience.members(c, gid, "abc")
    assert audience.remove_numbers(c, gid, [rows[0].id, 999_999]) == 1
    assert session.get(CustomerGroup, gid).member_count == 2 == _count(session, gid)
    audience.rename_group(c, gid, "Renamed")
    found, total = audience.groups(c, "NAME")
    assert total == 1 and found[0].name == "Renamed"
    assert audience.groups(c, "100%_")[1] == 0  # LIKE wildcards are literal
    with pytest.raises(ValidationError, match="Type the group's name"):
        audience.delete_group(c, gid, confirm_name="Mixed")
    audience.delete_group(c, gid, confirm_name="Renamed")
    assert _count(session, gid) == 0
    with pytest.raises(NotFound):
        audience.get_group(c, gid)
    actions = set(session.scalars(select(AuditEntry.action)))
    assert {"CreateCustomerGroup", "AddCustomerNumbers", "DeleteCustomerNumbers",
            "ModifyCustomerGroup", "DeleteCustomerGroup"} <= actions


def test_members_show_mute_and_unsubscribe_for_the_groups_type(session: Session,
                                                                shop: Shop) -> None:
    c = shop.ctx
    sig = shop.signatures["international"]

    mute.add(c, phone_number="+14155550100", signature_id=sig, sms_type="marketing",
             consent=True)
    unsubscribes.record(session, c.actor.account_id, "+14155550101", sig, "marketing", "reply")
    res = audience.add_typed(c, text="+14155550100\n+14155550101\n+14155550102",
                             new_name="Flags", sms_type="marketing")
    _, rows, _ = audience.members(c, res.group.id)
    flags = {m.phone_number: (m.muted, m.unsubscribed) for m in rows}
    assert flags == {"+14155550100": (True, False), "+14155550101": (False, True),
                     "+14155550102": (False, False)}
    other = audience.add_typed(c, text="+14155550100\n+14155550101", new_name="Notices",
                               sms_type="notification")
    _, rows, _ = audience.members(c, other.group.id)
    assert all(not m.muted and not m.unsubscribed for m in rows)


def test_a_file_sized_import_is_chunked_and_counted_once(session: Session) -> None:
    c = root_ctx(session)
    group = audience.target_for_import(c, group_id=None, new_name="Big", sms_type="marketing")
    rows = [(f"+1415{n:07d}", [f"v{n}"]) for n in range(12_000)]
    result = audience.add_rows(c, group, rows + rows[:500])
    assert (result.added, result.merged) == (12_000, 500)
    assert group.member_count == 12_000 == _count(session, group.id)
    _, stream = audience.all_numbers(c, group.id)
    first = next(iter(stream))
    assert first == ("+14150000000", ["v0"])


def test_other_accounts_groups_are_invisible(session: Session) -> None:
    c = root_ctx(session)
    mine = audience.create_group(c, name="Mine", sms_type="marketing")
    other = Account(name="other")
    session.add(other)
    session.flush()
    stranger, _ = bootstrap_user(session, other, "other@example.com", "x" * 16, root=True)
    s = ctx_for(session, stranger)
    assert audience.groups(s)[1] == 0
    with pytest.raises(NotFound):
        audience.members(s, mine.id)
    with pytest.raises(NotFound):
        audience.add_typed(s, text="13800138000", group_id=mine.id)


Action = Callable[[Ctx, int], object]
ACTIONS: dict[str, Action] = {
    "DescribeCustomerGroup": lambda c, g: audience.members(c, g),
    "CreateCustomerGroup": lambda c, g: audience.create_group(c, name="N", sms_type="marketing"),
    "ModifyCustomerGroup": lambda c, g: audience.rename_group(c, g, "Renamed"),
    "DeleteCustomerGroup": lambda c, g: audience.delete_group(c, g, confirm_name="Target"),
    "AddCustomerNumbers": lambda c, g: audience.add_typed(c, text="13800138000", group_id=g),
    "DeleteCustomerNumbers": lambda c, g: audience.remove_numbers(c, g, [1]),
}


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_permission_matrix(session: Session, action: str) -> None:
    gid = audience.add_typed(root_ctx(session), text="13800138000", new_name="Target",
                             sms_type="marketing").group.id
    allowed = make_user(session, "yes@example.com", policies=[
        doc(("allow", [f"sms:{action}"], ["sms:app/*"]))])
    ACTIONS[action](ctx_for(session, allowed), gid)
    if action == "DeleteCustomerGroup":
        gid = audience.create_group(root_ctx(session), name="Target", sms_type="marketing").id
    denied = make_user(session, "no@example.com", policies=[
        doc(("allow", ["sms:*"], ["sms:app/*"]), ("deny", [f"sms:{action}"], ["*"]))])
    with pytest.raises(PermissionDenied):
        ACTIONS[action](ctx_for(session, denied), gid)
    scoped = make_user(session, "one@example.com", policies=[
        doc(("allow", ["sms:*"], ["sms:app/1400000001"]))])
    with pytest.raises(PermissionDenied):
        ACTIONS[action](ctx_for(session, scoped), gid)
    read_only = make_user(session, "ro@example.com", presets=["SMSReadOnlyAccess"])
    if action.startswith("Describe"):
        ACTIONS[action](ctx_for(session, read_only), gid)
    else:
        with pytest.raises(PermissionDenied):
            ACTIONS[action](ctx_for(session, read_only), gid)
