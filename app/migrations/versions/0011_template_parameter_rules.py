"""template parameter rules

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 23:59:00

Templates say whether their parameters may carry URLs; the 30-second frequency
rule's refusals get their own code (they were recorded under a "daily" name).
"""

from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


OLD_30S = "LimitExceeded.PhoneNumberSameContentDailyLimit"
NEW_30S = "LimitExceeded.PhoneNumberThirtySecondLimit"


def _recode(old: str, new: str) -> None:
    message = sa.table("message", sa.column("error_code", sa.String))
    op.execute(message.update().where(message.c.error_code == old).values(error_code=new))


def upgrade() -> None:
    with op.batch_alter_table("template", schema=None) as batch_op:
        batch_op.add_column(sa.Column("allow_url_params", sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    _recode(OLD_30S, NEW_30S)


def downgrade() -> None:
    _recode(NEW_30S, OLD_30S)
    with op.batch_alter_table("template", schema=None) as batch_op:
        batch_op.drop_column("allow_url_params")
