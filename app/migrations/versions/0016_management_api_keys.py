"""management API keys and idempotency

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-25 00:35:00

SecretId/SecretKey pairs per user (the key encrypted like an AppKey) and the stored
replies of writes sent with an Idempotency-Key. New tables only: nothing to batch.
"""

import sqlalchemy as sa
from alembic import op

import app.db
import app.encryption

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'api_key',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('secret_id', sa.String(length=40), nullable=False),
        sa.Column('secret_key', app.encryption.EncryptedText(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', app.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'],
                                name=op.f('fk_api_key_user_id_user_account'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_key')),
        sa.UniqueConstraint('secret_id', name=op.f('uq_api_key_secret_id')),
    )
    op.create_index(op.f('ix_api_key_user_id'), 'api_key', ['user_id'])
    op.create_table(
        'api_idempotency',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=128), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['user_account.id'],
                                name=op.f('fk_api_idempotency_user_id_user_account'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_idempotency')),
        sa.UniqueConstraint('user_id', 'key', name=op.f('uq_api_idempotency_user_id')),
    )
    op.create_index('ix_api_idempotency_created', 'api_idempotency', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_api_idempotency_created', table_name='api_idempotency')
    op.drop_table('api_idempotency')
    op.drop_index(op.f('ix_api_key_user_id'), table_name='api_key')
    op.drop_table('api_key')
