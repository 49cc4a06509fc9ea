"""mute list: one "every type" entry per number and signature

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06 10:50:00

The unique key (account, number, signature, SMS type) holds NULL for "every type",
and NULLs never collide in a unique key: two requests muting the same number for
every type at once both wrote a row. A partial unique index covers those rows.
Duplicates already written are merged first (the oldest entry stays).
"""

import sqlalchemy as sa
from alembic import op

revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None

WHERE = sa.text("sms_type IS NULL")


def upgrade() -> None:
    op.execute("""
        DELETE FROM mute_entry WHERE sms_type IS NULL AND id NOT IN (
            SELECT min(id) FROM mute_entry WHERE sms_type IS NULL
            GROUP BY account_id, phone_number, signature_id)
    """)
    op.create_index('uq_mute_entry_every_type', 'mute_entry',
                    ['account_id', 'phone_number', 'signature_id'], unique=True,
                    sqlite_where=WHERE, postgresql_where=WHERE)


def downgrade() -> None:
    op.drop_index('uq_mute_entry_every_type', table_name='mute_entry')
