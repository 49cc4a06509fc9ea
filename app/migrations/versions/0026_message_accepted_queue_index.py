"""message: a partial index of the accepted rows, the drainer's queue

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-06 12:55:00

The claim takes the oldest accepted rows (`status = 'accepted' ORDER BY id
LIMIT n`). With a backlog behind millions of older messages (a carrier outage)
the planner read that through the primary key from the start of the table
(0.44-0.77 s per batch of 1,000 on a 1.5M-row table with 200,000 waiting); an
index of only the accepted rows, in id order, answers it in a few milliseconds.
A row leaves it when it is claimed. On PostgreSQL built CONCURRENTLY (sending
goes on meanwhile).
"""

import sqlalchemy as sa

from app.migrations import online

revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None

NAME = 'ix_message_accepted'
WHERE = sa.text("status = 'accepted'")


def upgrade() -> None:
    online.create_partial_index(NAME, 'message', ['id'], WHERE)


def downgrade() -> None:
    online.drop_index(NAME, 'message')
