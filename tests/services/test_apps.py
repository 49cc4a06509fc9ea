"""Applications: IDs, keys, the 500 cap, status and deletion, the audit trail."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Application, AuditEntry
from app.services import apps, audit
from app.services.errors import Conflict, ValidationError
from tests.helpers import make_app, root_ctx


def test_create_gives_sequential_ten_digit_ids_and_strong_keys(session: Session) -> None:
    c = root_ctx(session)
    first, key1 = apps.create_app(c, name="One", tags="b, a, a")
    second, key2 = apps.create_app(c, name="Two")
    assert (first.sdk_app_id, second.sdk_app_id) == ("1400000001", "1400000002")
    assert len(bytes.fromhex(key1)) >= 32 and key1 != key2
    assert first.tags == ["a", "b"]
    assert key1 not in first.masked_key and first.masked_key.startswith(key1[:4])


def test_validation_reports_every_field(session: Session) -> None:
    with pytest.raises(ValidationError) as exc:
        apps.create_app(root_ctx(session), name="  ", overview="x" * 501,
                        tags=",".join(f"t{i}" for i in range(11)))
    assert set(exc.value.errors) == {"name", "overview", "tags"}
    assert session.scalar(select(Application.id)) is None


def test_at_most_500_applications(session: Session) -> None:
    c = root_ctx(session)
    session.add_all(Application(account_id=c.actor.account_id, sdk_app_id=str(1400000001 + i),
                                name=f"a{i}", app_key="k" * 64) for i in range(499))
    session.flush()
    apps.create_app(c, name="the 500th")
    with pytest.raises(Conflict, match="at most 500"):
        apps.create_app(c, name="the 501st")


def test_rotate_key_replaces_it_and_never_logs_it(session: Session) -> None:
    sid = make_app(session)
    c = root_ctx(session)
    old = apps.get_app(c, sid).app_key
    new = apps.rotate_key(c, sid)
    assert new != old and apps.get_app(c, sid).app_key == new
    entries, _ = audit.browse(c)
    assert entries[0].action == "ModifyAppKey"
    assert all(new not in str(e.after) and old not in str(e.before) for e in entries)


def test_delete_needs_disabled_app_and_typed_confirmation(session: Session) -> None:
    sid = make_app(session)
    c = root_ctx(session)
    with pytest.raises(Conflict, match="Disable"):
        apps.delete_app(c, sid, sid)
    apps.set_enabled(c, sid, False)
    with pytest.raises(ValidationError, match="Type"):
        apps.delete_app(c, sid, "yes")
    apps.delete_app(c, sid, sid)
    assert session.scalar(select(Application).where(Application.sdk_app_id == sid)) is None


def test_every_change_is_audited_with_before_and_after(session: Session) -> None:
    sid = make_app(session)
    c = root_ctx(session)
    apps.update_info(c, sid, name="Renamed", overview="o", tags="")
    apps.update_info(c, sid, name="Renamed", overview="o", tags="")  # no change, no entry
    apps.set_enabled(c, sid, False)
    rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [r.action for r in rows] == ["CreateApp", "ModifyAppInfo", "ModifyAppStatus"]
    assert rows[1].before == {"name": "Shop", "overview": ""}
    assert rows[1].after == {"name": "Renamed", "overview": "o"}
    assert rows[1].actor_label == "root@example.com" and rows[1].target_id == sid
    assert rows[2].after == {"enabled": False}


def test_audit_filters_and_pages(session: Session) -> None:
    c = root_ctx(session)
    for i in range(audit.PAGE_SIZE + 5):
        apps.create_app(c, name=f"a{i}")
    entries, total = audit.browse(c, action="CreateApp", page=2)
    assert total == audit.PAGE_SIZE + 5 and len(entries) == 5
    assert audit.browse(c, target="1400000003")[1] == 1
