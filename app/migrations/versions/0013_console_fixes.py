"""console fixes: credit package expiry is the end of its day in the account's zone

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-24 23:59:00

Data only. Packages recorded before this revision expire at 23:59:59 UTC of the date
entered, which an account in Asia/Shanghai saw as the next day, 07:59:59. They now
expire at the end of that date in the account's zone, as new packages do.
"""

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo, available_timezones

import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

account = sa.table("account", sa.column("id", sa.Integer), sa.column("timezone", sa.String))
package = sa.table("credit_package", sa.column("id", sa.Integer),
                   sa.column("account_id", sa.Integer),
                   sa.column("expires_at", sa.DateTime(timezone=True)))
OLD_END = time(23, 59, 59)  # what earlier versions stored, in UTC


def _rows() -> list[tuple[int, datetime, str]]:
    query = sa.select(package.c.id, package.c.expires_at, account.c.timezone).join(
        account, account.c.id == package.c.account_id)
    out = []
    for pid, expires, zone in op.get_bind().execute(query):
        if isinstance(expires, str):  # SQLite without type information
            expires = datetime.fromisoformat(expires)
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=UTC)
        out.append((pid, expires.astimezone(UTC), zone))
    return out


def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name if name in available_timezones() else "UTC")


def _set(pid: int, expires: datetime) -> None:
    op.get_bind().execute(package.update().where(package.c.id == pid)
                          .values(expires_at=expires.astimezone(UTC)))


def upgrade() -> None:
    for pid, expires, zone in _rows():
        if expires.time() == OLD_END:
            _set(pid, datetime.combine(expires.date(), time.max, tzinfo=_zone(zone)))


def downgrade() -> None:
    for pid, expires, zone in _rows():
        local = expires.astimezone(_zone(zone))
        if local.time() == time.max:
            _set(pid, datetime.combine(local.date(), OLD_END, tzinfo=UTC))
