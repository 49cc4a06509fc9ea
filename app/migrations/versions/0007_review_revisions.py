"""review revisions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 23:59:00

A revision counter on everything reviewed, so a decision names the revision the
reviewer saw; and on Slack review messages, which revision they show and whether
their buttons are still live.
"""

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

REVIEWED = ('qualification', 'signature', 'template', 'unsubscribe_removal')


def upgrade() -> None:
    for table in REVIEWED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('revision', sa.Integer(), server_default='1',
                                          nullable=False))
    # Existing messages count as without live buttons: their buttons carry no
    # revision and are refused anyway, and a decided message keeps its outcome.
    with op.batch_alter_table('review_message', schema=None) as batch_op:
        # "unsubscribe_removal" did not fit in 16 characters on PostgreSQL
        batch_op.alter_column('kind', existing_type=sa.String(length=16),
                              type_=sa.String(length=32), existing_nullable=False)
        batch_op.add_column(sa.Column('revision', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('has_buttons', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('review_message', schema=None) as batch_op:
        batch_op.drop_column('has_buttons')
        batch_op.drop_column('revision')
    if op.get_bind().dialect.name != 'sqlite':  # SQLite does not enforce the width
        # Rows of removal requests do not fit the old width: their messages are forgotten.
        op.execute("DELETE FROM review_message WHERE length(kind) > 16")
    with op.batch_alter_table('review_message', schema=None) as batch_op:
        batch_op.alter_column('kind', existing_type=sa.String(length=32),
                              type_=sa.String(length=16), existing_nullable=False)
    for table in reversed(REVIEWED):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column('revision')
