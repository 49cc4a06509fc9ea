"""alarm contact confirmation

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-24 23:59:00

Alarm contacts remember who last saved them (review results reach a contact only
while that user may read the content) and whether their mobile is confirmed.
Existing contacts start unconfirmed and with no one vouching for them.
"""

from alembic import op
import sqlalchemy as sa

import app.db


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('alarm_contact', schema=None) as batch_op:
        batch_op.add_column(sa.Column('saved_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('mobile_confirmed_at', app.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('confirm_code_hash', sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column('confirm_expires_at', app.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('confirm_attempts', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('confirm_sent_at', app.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('confirm_window_at', app.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('confirm_sends', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.create_foreign_key('fk_alarm_contact_saved_by', 'user_account',
                                    ['saved_by_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('alarm_contact', schema=None) as batch_op:
        batch_op.drop_constraint('fk_alarm_contact_saved_by', type_='foreignkey')
        batch_op.drop_column('confirm_sends')
        batch_op.drop_column('confirm_window_at')
        batch_op.drop_column('confirm_sent_at')
        batch_op.drop_column('confirm_attempts')
        batch_op.drop_column('confirm_expires_at')
        batch_op.drop_column('confirm_code_hash')
        batch_op.drop_column('mobile_confirmed_at')
        batch_op.drop_column('saved_by_id')
