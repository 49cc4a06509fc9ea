"""message.package_id: the credit package that paid for a message

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-07 20:40:00

A message the carrier refuses was never billed and its credit comes back; without a
record of the package that paid, it went to the earliest-expiring package with room,
which may not be the one charged (or any: a message sent before the account had
packages). A plain column, no foreign key: a package deleted later takes nothing with
it, and the row's insert checks nothing more. Messages sent before this migration have
none, and their refusals give nothing back.
"""

import sqlalchemy as sa
from alembic import op

revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('message') as batch:
        batch.add_column(sa.Column('package_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('message') as batch:
        batch.drop_column('package_id')
