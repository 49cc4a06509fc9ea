"""review revisions

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 23:59:00

Reserved so that parallel work lands in one linear chain; filled in by its owner.
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
