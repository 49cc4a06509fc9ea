"""statistics: day x application and day x country rollups; message indexes that
fit the SMS log's filters (and the pipeline's)

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-06 09:30:00

Two narrow daily rollups (app/models/stats.py), filled from stat_totals_daily (the
rollups hold purged messages too): `stat_apps_daily` (no country) for the overview
and receipts, `stat_countries_daily` (no application) for the country page.

The message table: the same number of index writes per message state change, minus one:
- `(status)` becomes `(status, id)`: a status across every application, and the
  pipeline's "accepted (or submitted) messages in id order", walk it in order;
- `(app_id, created_at)` becomes `(app_id, status, id)`: one application's
  messages of one status, newest first, without reading the others;
- `(phone_number, created_at)` and `(phone_number text_pattern_ops)` become one
  `(phone_number text_pattern_ops, created_at) INCLUDE (account_id, app_id, id)`: equality
  look-ups as before, and a number prefix over a period is counted and paged from
  the index alone (no heap visit for rows outside the period or the page).
On PostgreSQL the new indexes are built CONCURRENTLY (sending goes on meanwhile).
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None

NEW = [
    ('ix_message_status_id', ['status', 'id'], {}),
    ('ix_message_app_status', ['app_id', 'status', 'id'], {}),
    ('ix_message_phone', ['phone_number', 'created_at'],
     {'postgresql_ops': {'phone_number': 'text_pattern_ops'},
      'postgresql_include': ['account_id', 'app_id', 'id']}),
]
OLD = [
    ('ix_message_status', ['status'], {}),
    ('ix_message_app_created', ['app_id', 'created_at'], {}),
    ('ix_message_phone_created', ['phone_number', 'created_at'], {}),
    ('ix_message_phone_prefix', ['phone_number'],
     {'postgresql_ops': {'phone_number': 'text_pattern_ops'}}),
]


def _swap(add: list, drop: list) -> None:  # type: ignore[type-arg]
    if op.get_bind().dialect.name != 'postgresql':
        with op.batch_alter_table('message') as batch_op:
            for name, _cols, _kw in drop:
                batch_op.drop_index(name)
            for name, cols, _kw in add:
                batch_op.create_index(name, cols, unique=False)
        return
    # Built without blocking writes to the table; the old ones go once the new serve.
    with op.get_context().autocommit_block():
        for name, cols, kw in add:
            op.create_index(name, 'message', cols, postgresql_concurrently=True, **kw)
        for name, _cols, _kw in drop:
            op.drop_index(name, table_name='message', postgresql_concurrently=True)


OUTCOMES = ['accepted', 'rejected', 'submitted', 'refused', 'delivered', 'failed',
            'no_receipt', 'unknown']
TABLES = {'stat_apps_daily': ['day', 'account_id', 'app_id', 'region'],
          'stat_countries_daily': ['day', 'account_id', 'region', 'iso_code']}
TYPES: dict[str, Any] = {'day': sa.Date(), 'account_id': sa.Integer(), 'app_id': sa.Integer(),
         'region': sa.String(length=16), 'iso_code': sa.String(length=2)}


def _rollups() -> None:
    for name, key in TABLES.items():
        op.create_table(
            name,
            sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                      nullable=False),
            *[sa.Column(c, TYPES[c], nullable=False) for c in key],
            *[sa.Column(o, sa.BigInteger(), nullable=False) for o in (*OUTCOMES, 'billed')],
            sa.PrimaryKeyConstraint('id', name=op.f(f'pk_{name}')),
            sa.UniqueConstraint(*key, name=f'uq_{name}_key'),
        )
        op.create_index(f'ix_{name}_account_region_day', name, ['account_id', 'region', 'day'])
        cols = ', '.join(key)
        sums = ', '.join(f'sum({c})' for c in (*OUTCOMES, 'billed'))
        op.execute(f"INSERT INTO {name} ({cols}, {', '.join(OUTCOMES)}, billed) "  # noqa: S608
                   f"SELECT {cols}, {sums} FROM stat_totals_daily GROUP BY {cols}")


def upgrade() -> None:
    _rollups()
    _swap(NEW, OLD)


def downgrade() -> None:
    _swap(OLD, NEW)
    for name in TABLES:
        op.drop_index(f'ix_{name}_account_region_day', table_name=name)
        op.drop_table(name)
