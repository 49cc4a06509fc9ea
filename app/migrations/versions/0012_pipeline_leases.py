"""pipeline leases and receipt inbox

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-24 23:59:00

A claim records its attempt and lease on the message; receipts wait in a durable
inbox until applied (see app/services/pipeline.py).
"""

from alembic import op
import sqlalchemy as sa
import app.db


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt_id', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('lease_until', app.db.UTCDateTime(timezone=True), nullable=True))
    op.create_table('receipt_inbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger(), nullable=True),
    sa.Column('gateway_id', sa.String(length=64), nullable=True),
    sa.Column('delivered', sa.Boolean(), nullable=False),
    sa.Column('carrier_code', sa.String(length=64), nullable=False),
    sa.Column('at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('due_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_receipt_inbox'))
    )
    with op.batch_alter_table('receipt_inbox', schema=None) as batch_op:
        batch_op.create_index('ix_receipt_inbox_due', ['due_at'], unique=False)
    # --- branch smpp (issue 9, finding 7): every part's carrier id of a multi-part message
    op.create_table('message_part',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger(), nullable=False),
    sa.Column('part', sa.Integer(), nullable=False),
    sa.Column('gateway_id', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=True),
    sa.Column('carrier_code', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_part'))
    )
    with op.batch_alter_table('message_part', schema=None) as batch_op:
        batch_op.create_index('ix_message_part_gateway_id', ['gateway_id'], unique=False)
        batch_op.create_index('ix_message_part_message', ['message_id'], unique=False)
    # --- end of branch smpp


def downgrade() -> None:
    # --- branch smpp
    op.drop_table('message_part')
    # --- end of branch smpp
    with op.batch_alter_table('receipt_inbox', schema=None) as batch_op:
        batch_op.drop_index('ix_receipt_inbox_due')
    op.drop_table('receipt_inbox')
    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.drop_column('lease_until')
        batch_op.drop_column('attempt_id')
