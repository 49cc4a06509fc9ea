"""message: the carrier-id and bulk-task indexes hold only rows that have one

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-06 12:10:00

No update of a message is HOT (its status is indexed), so every state change
writes an entry into every index of the table. Two indexes only ever serve
look-ups of a value that is set: receipts by carrier id (`gateway_message_id =
ANY(...)`) and a bulk task's messages (`task_id = ...` / `IN (...)`). As partial
indexes (`... IS NOT NULL`) they skip what they never find:
- `ix_message_gateway_id`: no entry while the message is accepted or submitting
  (two of its four writes);
- `ix_message_task_status`: no entry at all for API messages (four writes each).
The same names, rebuilt; on PostgreSQL built CONCURRENTLY under a temporary name,
then swapped (sending goes on meanwhile).
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None

# name -> (the column that must be set, the indexed columns)
INDEXES = {
    'ix_message_gateway_id': ('gateway_message_id', ['gateway_message_id']),
    'ix_message_task_status': ('task_id', ['task_id', 'status']),
}


def _rebuild(partial: bool) -> None:
    pg = op.get_bind().dialect.name == 'postgresql'
    for name, (column, columns) in INDEXES.items():
        where = sa.text(f'{column} IS NOT NULL')
        kw: dict[str, Any] = {'postgresql_where': where, 'sqlite_where': where} if partial else {}
        if not pg:
            op.drop_index(name, table_name='message')
            op.create_index(name, 'message', columns, **kw)
            continue
        # Built without blocking writes; a build interrupted earlier left an invalid
        # index under the temporary name, dropped first.
        tmp = f'{name}_0025'
        with op.get_context().autocommit_block():
            op.drop_index(tmp, table_name='message', postgresql_concurrently=True,
                          if_exists=True)
            op.create_index(tmp, 'message', columns, postgresql_concurrently=True, **kw)
            op.drop_index(name, table_name='message', postgresql_concurrently=True)
            op.execute(f'ALTER INDEX {tmp} RENAME TO {name}')


def upgrade() -> None:
    _rebuild(partial=True)


def downgrade() -> None:
    _rebuild(partial=False)
