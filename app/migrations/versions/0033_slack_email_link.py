"""user_account.slack_email_link: an unlink keeps the email match from linking again

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-08 00:50:00

A Slack member whose confirmed email matches a user was linked on their first command,
and again on the next one after an unlink, so an unlink did not last. An unlink now
turns this off; only a code links the user then. Existing users keep the email match.
"""

import sqlalchemy as sa
from alembic import op

revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('user_account') as batch:
        batch.add_column(sa.Column('slack_email_link', sa.Boolean(), server_default=sa.true(),
                                   nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('user_account') as batch:
        batch.drop_column('slack_email_link')
