"""session versions and slack link codes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 23:59:00

A per-user session version, part of the session cookie: bumping it ends every
session of that user. Slack link codes live in Redis with a TTL, not here.
"""

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('session_version', sa.Integer(), nullable=False,
                                      server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('user_account', schema=None) as batch_op:
        batch_op.drop_column('session_version')
