"""customer groups

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-25 03:10:00

The customer pool of SPEC.md §4: groups with a kept member count, and their numbers.
New tables only.
"""

import sqlalchemy as sa
from alembic import op

import app.db

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'customer_group',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=40), nullable=False),
        sa.Column('sms_type', sa.String(length=16), nullable=False),
        sa.Column('member_count', sa.Integer(), nullable=False),
        sa.Column('created_by', sa.String(length=254), nullable=False),
        sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['account.id'],
                                name=op.f('fk_customer_group_account_id_account'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_group')),
        sa.UniqueConstraint('account_id', 'name', name=op.f('uq_customer_group_account_id')),
        sqlite_autoincrement=True,
    )
    op.create_table(
        'group_member',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('group_id', sa.Integer(), nullable=False),
        sa.Column('phone_number', sa.String(length=20), nullable=False),
        sa.Column('attributes', sa.JSON(), nullable=True),
        sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['group_id'], ['customer_group.id'],
                                name=op.f('fk_group_member_group_id_customer_group'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_group_member')),
        sa.UniqueConstraint('group_id', 'phone_number', name=op.f('uq_group_member_group_id')),
    )
    op.create_index('ix_group_member_group_id_id', 'group_member', ['group_id', 'id'])


def downgrade() -> None:
    op.drop_index('ix_group_member_group_id_id', table_name='group_member')
    op.drop_table('group_member')
    op.drop_table('customer_group')
