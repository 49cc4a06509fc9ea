"""the send API's stored replies (Idempotency-Key)

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-08 00:20:00

A send request with an Idempotency-Key stores its answer with its messages, so a retry
after a timeout gets that answer back instead of sending again. A new table only.
"""

import sqlalchemy as sa
from alembic import op

import app.db

revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'api_send_reply',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('app_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=128), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('request_id', sa.String(length=32), nullable=False),
        sa.Column('results', sa.Text(), nullable=False),
        sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['app_id'], ['application.id'],
                                name=op.f('fk_api_send_reply_app_id_application'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_send_reply')),
        sa.UniqueConstraint('app_id', 'key', name=op.f('uq_api_send_reply_app_id')),
    )
    op.create_index('ix_api_send_reply_created', 'api_send_reply', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_api_send_reply_created', table_name='api_send_reply')
    op.drop_table('api_send_reply')
