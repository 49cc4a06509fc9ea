"""alarms

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-25 02:52:36

Alarms raised once per period with who acknowledged them, the notifications that
carried each (and where a Slack post landed), each application's captcha-abuse
thresholds, and the monitor's last finished hour. New tables only.
"""

import sqlalchemy as sa
from alembic import op

import app.db


revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('monitor_checkpoint',
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('last_hour', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_monitor_checkpoint'))
    )
    op.create_table('alarm',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('app_id', sa.Integer(), nullable=True),
    sa.Column('event', sa.String(length=32), nullable=False),
    sa.Column('period', sa.String(length=120), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('figures', sa.JSON(), nullable=False),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('acknowledged_by_id', sa.Integer(), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=254), nullable=True),
    sa.Column('acknowledged_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_alarm_account_id_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['acknowledged_by_id'], ['user_account.id'], name=op.f('fk_alarm_acknowledged_by_id_user_account'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['app_id'], ['application.id'], name=op.f('fk_alarm_app_id_application'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alarm'))
    )
    with op.batch_alter_table('alarm', schema=None) as batch_op:
        batch_op.create_index('ix_alarm_account_created', ['account_id', 'created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_alarm_app_id'), ['app_id'], unique=False)

    op.create_table('captcha_rule',
    sa.Column('app_id', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('volume', sa.Integer(), nullable=False),
    sa.Column('success_pct', sa.Integer(), nullable=False),
    sa.Column('growth_pct', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['app_id'], ['application.id'], name=op.f('fk_captcha_rule_app_id_application'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('app_id', name=op.f('pk_captcha_rule'))
    )
    op.create_table('alarm_delivery',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alarm_id', sa.Integer(), nullable=False),
    sa.Column('notification_id', sa.Integer(), nullable=False),
    sa.Column('ref', sa.String(length=80), nullable=True),
    sa.ForeignKeyConstraint(['alarm_id'], ['alarm.id'], name=op.f('fk_alarm_delivery_alarm_id_alarm'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['notification_id'], ['notification.id'], name=op.f('fk_alarm_delivery_notification_id_notification'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alarm_delivery')),
    sa.UniqueConstraint('notification_id', name=op.f('uq_alarm_delivery_notification_id'))
    )
    with op.batch_alter_table('alarm_delivery', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alarm_delivery_alarm_id'), ['alarm_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('alarm_delivery', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alarm_delivery_alarm_id'))

    op.drop_table('alarm_delivery')
    op.drop_table('captcha_rule')
    with op.batch_alter_table('alarm', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alarm_app_id'))
        batch_op.drop_index('ix_alarm_account_created')

    op.drop_table('alarm')
    op.drop_table('monitor_checkpoint')
