"""statistics rollups

Revision ID: 0019
Revises: 0018
Create Date: 2026-11-25 03:00:00

The hourly and daily rollup tables the statistics pages read (app/models/stats.py),
filled from the messages already recorded so history is not lost on upgrade; an
index for the SMS log's number prefix search.
"""

import sqlalchemy as sa
from alembic import op

import app.db

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

DIMENSIONS = ['account_id', 'app_id', 'region', 'iso_code', 'signature_id', 'template_id',
              'sms_type', 'verification', 'outcome', 'error_code', 'carrier_code']


def _counts_table(name: str, time_col: sa.Column, key: list[str]) -> None:
    op.create_table(
        name,
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('app_id', sa.Integer(), nullable=False),
        sa.Column('region', sa.String(length=16), nullable=False),
        sa.Column('iso_code', sa.String(length=2), nullable=False),
        sa.Column('signature_id', sa.Integer(), nullable=False),
        sa.Column('template_id', sa.Integer(), nullable=False),
        sa.Column('sms_type', sa.String(length=16), nullable=False),
        sa.Column('verification', sa.Boolean(), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('error_code', sa.String(length=64), nullable=False),
        sa.Column('carrier_code', sa.String(length=64), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.Column('billed', sa.BigInteger(), nullable=False),
        time_col,
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{name}')),
        sa.UniqueConstraint(*key, name=f'uq_{name}_key'),
    )


def upgrade() -> None:
    _counts_table('stat_rollup', sa.Column('hour', app.db.UTCDateTime(timezone=True),
                                           nullable=False), ['hour', *DIMENSIONS])
    op.create_index('ix_stat_rollup_account_region_hour', 'stat_rollup',
                    ['account_id', 'region', 'hour'])
    _counts_table('stat_rollup_daily', sa.Column('day', sa.Date(), nullable=False),
                  ['day', *DIMENSIONS])
    op.create_index('ix_stat_rollup_daily_account_region_day', 'stat_rollup_daily',
                    ['account_id', 'region', 'day'])
    # The SMS log's prefix search on the number (LIKE 'prefix%' on PostgreSQL).
    op.create_index('ix_message_phone_prefix', 'message', ['phone_number'],
                    postgresql_ops={'phone_number': 'text_pattern_ops'})
    # Messages recorded before this revision: counted once, by the same rules.
    from app.services import rollups

    # (only the two tables this revision has: 0022 adds more, from these)
    rollups.rebuild(op.get_bind(), tables=('stat_rollup', 'stat_rollup_daily'), figures=False)


def downgrade() -> None:
    op.drop_index('ix_message_phone_prefix', table_name='message')
    op.drop_index('ix_stat_rollup_daily_account_region_day', table_name='stat_rollup_daily')
    op.drop_table('stat_rollup_daily')
    op.drop_index('ix_stat_rollup_account_region_hour', table_name='stat_rollup')
    op.drop_table('stat_rollup')
