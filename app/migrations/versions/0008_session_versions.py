"""session versions and slack link codes

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 23:59:00

Reserved so that parallel work lands in one linear chain; filled in by its owner.
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
