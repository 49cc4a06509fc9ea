"""bulk send tasks

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-25 00:35:00

Reserved so that parallel work lands in one linear chain; filled in by its owner.
"""

from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
