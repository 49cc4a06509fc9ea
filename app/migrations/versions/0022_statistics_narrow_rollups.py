"""statistics: narrow rollups for fast pages

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-06 04:00:00

Three narrower rollup tables with one count column per outcome (app/models/stats.py)
so a 30-day page reads day x application x country rows, filled from the rollups
already there (never the message table: it may have been purged); indexes on the
full rollups for the filters the narrow ones cannot answer (signature, template,
country).
"""

import sqlalchemy as sa
from alembic import op

import app.db

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None

OUTCOMES = ['accepted', 'rejected', 'submitted', 'refused', 'delivered', 'failed',
            'no_receipt', 'unknown']
SUCCESS = "'submitted', 'delivered', 'failed', 'no_receipt'"
FAILURES = "'rejected', 'refused', 'failed', 'no_receipt', 'unknown'"
FILTERED = ['signature_id', 'template_id', 'iso_code']


def _key_columns() -> list[sa.Column]:
    return [sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                      nullable=False),
            sa.Column('account_id', sa.Integer(), nullable=False),
            sa.Column('app_id', sa.Integer(), nullable=False),
            sa.Column('region', sa.String(length=16), nullable=False)]


def _totals(name: str, time_col: sa.Column, key: list[str], extra: list[sa.Column]) -> None:
    op.create_table(
        name, *_key_columns(),
        *[sa.Column(o, sa.BigInteger(), nullable=False) for o in OUTCOMES],
        sa.Column('billed', sa.BigInteger(), nullable=False),
        time_col, *extra,
        sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{name}')),
        sa.UniqueConstraint(*key, name=f'uq_{name}_key'),
    )
    op.create_index(f'ix_{name}_account_region_{key[0]}', name,
                    ['account_id', 'region', key[0]])


def _fill_totals(name: str, source: str, key: str) -> None:
    sums = ', '.join(f"sum(CASE WHEN outcome = '{o}' THEN count ELSE 0 END)" for o in OUTCOMES)
    op.execute(
        f"INSERT INTO {name} ({key}, {', '.join(OUTCOMES)}, billed) "  # noqa: S608
        f"SELECT {key}, {sums}, sum(CASE WHEN outcome IN ({SUCCESS}) THEN billed ELSE 0 END) "
        f"FROM {source} GROUP BY {key}")


def upgrade() -> None:
    hourly_key = ['hour', 'account_id', 'app_id', 'region', 'verification']
    _totals('stat_totals_hourly',
            sa.Column('hour', app.db.UTCDateTime(timezone=True), nullable=False),
            hourly_key, [sa.Column('verification', sa.Boolean(), nullable=False)])
    daily_key = ['day', 'account_id', 'app_id', 'region', 'iso_code']
    _totals('stat_totals_daily', sa.Column('day', sa.Date(), nullable=False), daily_key,
            [sa.Column('iso_code', sa.String(length=2), nullable=False)])
    codes_key = ['day', 'account_id', 'app_id', 'region', 'outcome', 'error_code',
                 'carrier_code']
    op.create_table(
        'stat_codes_daily', *_key_columns(),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('error_code', sa.String(length=64), nullable=False),
        sa.Column('carrier_code', sa.String(length=64), nullable=False),
        sa.Column('count', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_stat_codes_daily')),
        sa.UniqueConstraint(*codes_key, name='uq_stat_codes_daily_key'),
    )
    op.create_index('ix_stat_codes_daily_account_region_day', 'stat_codes_daily',
                    ['account_id', 'region', 'day'])
    for table, when in (('stat_rollup', 'hour'), ('stat_rollup_daily', 'day')):
        for col in FILTERED:
            op.create_index(f'ix_{table}_{col}', table, ['account_id', 'region', col, when])
    # From the rollups, which hold every message ever counted (purged ones too).
    _fill_totals('stat_totals_hourly', 'stat_rollup', ', '.join(hourly_key))
    _fill_totals('stat_totals_daily', 'stat_rollup_daily', ', '.join(daily_key))
    key = ', '.join(codes_key)
    op.execute(f"INSERT INTO stat_codes_daily ({key}, count) "  # noqa: S608
               f"SELECT {key}, sum(count) FROM stat_rollup_daily "
               f"WHERE outcome IN ({FAILURES}) GROUP BY {key}")


def downgrade() -> None:
    for table in ('stat_rollup', 'stat_rollup_daily'):
        for col in FILTERED:
            op.drop_index(f'ix_{table}_{col}', table_name=table)
    op.drop_index('ix_stat_codes_daily_account_region_day', table_name='stat_codes_daily')
    op.drop_table('stat_codes_daily')
    op.drop_index('ix_stat_totals_daily_account_region_day', table_name='stat_totals_daily')
    op.drop_table('stat_totals_daily')
    op.drop_index('ix_stat_totals_hourly_account_region_hour', table_name='stat_totals_hourly')
    op.drop_table('stat_totals_hourly')
