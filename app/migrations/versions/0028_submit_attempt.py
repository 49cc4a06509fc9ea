"""submit_attempt: whether a claimed batch was handed to the gateway

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-07 01:00:00

A worker killed between its claim and its call to the gateway left messages that
nobody could tell from ones the carrier took: on SMPP, and on Tencent Cloud when
its reports never mention them, they ended `unknown`. The worker now commits a row
here just before the call; an expired lease without one is fenced by the sweeper
(a row with handed false, the same key) and its messages are sent again.
"""

import sqlalchemy as sa
from alembic import op

import app.db

revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'submit_attempt',
        sa.Column('attempt_id', sa.String(length=32), nullable=False),
        sa.Column('handed', sa.Boolean(), nullable=False),
        sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('attempt_id', name=op.f('pk_submit_attempt')),
    )
    op.create_index('ix_submit_attempt_created', 'submit_attempt', ['created_at'])
    # Batches in flight during the upgrade may have reached the gateway: as before,
    # they are resolved by asking it, never resent.
    op.get_bind().execute(sa.text(
        "INSERT INTO submit_attempt (attempt_id, handed, created_at) "
        "SELECT DISTINCT attempt_id, :handed, :now FROM message "
        "WHERE status = 'submitting' AND attempt_id IS NOT NULL").bindparams(
            sa.bindparam('handed', type_=sa.Boolean()),
            sa.bindparam('now', type_=app.db.UTCDateTime())),
        {'handed': True, 'now': app.db.utcnow()})


def downgrade() -> None:
    op.drop_index('ix_submit_attempt_created', table_name='submit_attempt')
    op.drop_table('submit_attempt')
