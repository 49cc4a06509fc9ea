"""bulk send tasks

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-25 03:10:00

Tasks, their recipients and row errors; messages remember their task; accounts get
unit prices for cost estimates.
"""

from alembic import op
import sqlalchemy as sa
import app.db


revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('send_task',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('app_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('region', sa.String(length=16), nullable=False),
    sa.Column('signature_id', sa.Integer(), nullable=True),
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=24), nullable=False),
    sa.Column('failure_reason', sa.String(length=500), nullable=True),
    sa.Column('file_name', sa.String(length=255), nullable=False),
    sa.Column('send_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('rate_limit', sa.Integer(), nullable=True),
    sa.Column('total_rows', sa.Integer(), nullable=False),
    sa.Column('valid_rows', sa.Integer(), nullable=False),
    sa.Column('error_rows', sa.Integer(), nullable=False),
    sa.Column('billed_items', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.Column('created_at', app.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('confirmed_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', app.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_send_task_account_id_account'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['app_id'], ['application.id'], name=op.f('fk_send_task_app_id_application'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by'], ['user_account.id'], name=op.f('fk_send_task_created_by_user_account'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_send_task'))
    )
    with op.batch_alter_table('send_task', schema=None) as batch_op:
        batch_op.create_index('ix_send_task_account_created', ['account_id', 'created_at'], unique=False)
        batch_op.create_index('ix_send_task_status', ['status'], unique=False)

    op.create_table('send_task_error',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('row_no', sa.Integer(), nullable=False),
    sa.Column('column', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['send_task.id'], name=op.f('fk_send_task_error_task_id_send_task'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_send_task_error'))
    )
    with op.batch_alter_table('send_task_error', schema=None) as batch_op:
        batch_op.create_index('ix_send_task_error_task_row', ['task_id', 'row_no'], unique=False)

    op.create_table('send_task_recipient',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('row_no', sa.Integer(), nullable=False),
    sa.Column('phone_number', sa.String(length=20), nullable=False),
    sa.Column('iso_code', sa.String(length=2), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('fee', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['task_id'], ['send_task.id'], name=op.f('fk_send_task_recipient_task_id_send_task'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_send_task_recipient'))
    )
    with op.batch_alter_table('send_task_recipient', schema=None) as batch_op:
        batch_op.create_index('ix_send_task_recipient_task_status', ['task_id', 'status', 'row_no'], unique=False)

    with op.batch_alter_table('message', schema=None) as batch_op:
        batch_op.add_column(sa.Column('task_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_message_task_status', ['task_id', 'status'], unique=False)

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unit_prices', sa.JSON(), nullable=True))


def _drop_column(table: str, column: str) -> None:
    """SQLite's own DROP COLUMN (3.35+), never batch mode's table rebuild: dropping the
    old `account` or `message` table with foreign keys on would cascade and delete the
    credit packages, mute entries or callbacks that refer to it."""
    if op.get_bind().dialect.name == 'sqlite':
        op.execute(f'ALTER TABLE {table} DROP COLUMN {column}')
    else:
        op.drop_column(table, column)


def downgrade() -> None:
    _drop_column('account', 'unit_prices')
    op.drop_index('ix_message_task_status', table_name='message')
    _drop_column('message', 'task_id')
    op.drop_table('send_task_recipient')
    op.drop_table('send_task_error')
    op.drop_table('send_task')
