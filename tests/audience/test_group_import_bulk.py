"""A group import writes its members in bulk (COPY through a staging table on
PostgreSQL, executemany on SQLite) exactly as the ORM wrote them: attributes as JSON
(null when none), the file's order, the first of two equal numbers kept, and a time."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.models import GroupMember
from app.services import audience
from tests.sending.conftest import Shop

FILE = ('phone,name,note\n13800138000,Ann,"tab\there"\n+14155550100,Bob\n'
        '13800138000,Ann again,x\n13900139000\n13700137000,back\\slash,"say ""hi"""\n')


def test_members_are_written_as_the_orm_wrote_them(shop: Shop, session: Session) -> None:
    start = datetime.now(UTC)
    result = audience.import_file(shop.ctx, io.BytesIO(FILE.encode()), "c.csv",
                                  new_name="Bulk", sms_type="marketing")
    assert (result.added, result.merged, result.group.member_count) == (4, 1, 4)
    expected = [("+8613800138000", ["Ann", "tab\there"]), ("+14155550100", ["Bob"]),
                ("+8613900139000", None), ("+8613700137000", ["back\\slash", 'say "hi"'])]
    assert list(audience.all_numbers(shop.ctx, result.group.id)[1]) == expected
    raw = session.execute(text("SELECT CAST(attributes AS TEXT) FROM group_member "
                               "ORDER BY id")).scalars().all()
    assert raw == [json.dumps(attrs) for _phone, attrs in expected]  # None is JSON null
    times = session.scalars(select(GroupMember.created_at)).all()
    assert all(start - timedelta(seconds=1) <= t <= datetime.now(UTC) for t in times)
    # A second import into the group in the same transaction (the staging table again).
    again = audience.import_file(shop.ctx, io.BytesIO(b"13900139000\n13600136000,Cy\n"),
                                 "d.csv", group_id=result.group.id)
    assert (again.added, again.merged, again.group.member_count) == (1, 1, 5)
    assert list(audience.all_numbers(shop.ctx, result.group.id)[1])[-1] == (
        "+8613600136000", ["Cy"])
