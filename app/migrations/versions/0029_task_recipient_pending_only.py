"""send_task_recipient: a row only while its recipient is pending

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 12:30:00

The batch that turns a recipient into a message now deletes the recipient row
instead of marking it `dispatched` (an update left a dead row and three index
entries per recipient; the message holds everything about it from then on). The
status column goes, and rows already dispatched with it.
"""

import sqlalchemy as sa
from alembic import op

revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.get_bind().execute(sa.text(
        "DELETE FROM send_task_recipient WHERE status <> 'pending'"))
    op.drop_index('ix_send_task_recipient_task_status', table_name='send_task_recipient')
    with op.batch_alter_table('send_task_recipient') as batch:
        batch.drop_column('status')
    op.create_index('ix_send_task_recipient_task_row', 'send_task_recipient',
                    ['task_id', 'row_no'])


def downgrade() -> None:
    op.drop_index('ix_send_task_recipient_task_row', table_name='send_task_recipient')
    with op.batch_alter_table('send_task_recipient') as batch:
        batch.add_column(sa.Column('status', sa.String(length=16), nullable=False,
                                   server_default='pending'))
    op.create_index('ix_send_task_recipient_task_status', 'send_task_recipient',
                    ['task_id', 'status', 'row_no'])
