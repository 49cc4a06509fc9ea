"""message: a partial index of the unknown rows, by submission time

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 20:50:00

The sweeper asks a gateway that can still find `unknown` messages (Tencent Cloud)
about those submitted within the receipt validity (`pipeline.ask_carrier`). Unknown
rows older than that stay unknown for good and pile up; through
ix_message_status_id the query walked all of them on every sweep of every worker
(110-230 ms with 200,000). An index of only the unknown rows, by submitted_at, goes
straight to the recent ones. On PostgreSQL built CONCURRENTLY (sending goes on).
"""

import sqlalchemy as sa

from app.migrations import online

revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None

NAME = 'ix_message_unknown'
WHERE = sa.text("status = 'unknown'")


def upgrade() -> None:
    online.create_partial_index(NAME, 'message', ['submitted_at'], WHERE)


def downgrade() -> None:
    online.drop_index(NAME, 'message')
