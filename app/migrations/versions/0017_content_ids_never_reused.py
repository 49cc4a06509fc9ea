"""content ids never reused

Revision ID: 0017
Revises: 0016
Create Date: 2026-11-25 01:25:00

A review decision names (kind, id, revision). SQLite hands a deleted row's id to the
next row unless the table is AUTOINCREMENT, so a deleted template's Approve button
could approve a new template at the same id and revision 1. PostgreSQL sequences
never reuse ids: nothing to do there.
"""

from alembic import op


revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None

TABLES = ("qualification", "signature", "template", "unsubscribe_removal")


def _rebuild(autoincrement: bool) -> None:
    conn = op.get_bind()
    if conn.dialect.name != "sqlite":
        return
    # SQLite's own recipe for rebuilding a table: foreign keys off (outside a
    # transaction), or dropping the old signature table would cascade to the mute
    # list, unsubscribes and removal requests.
    conn.commit()
    conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
    try:
        for table in TABLES:
            with op.batch_alter_table(table, recreate="always",
                                      table_kwargs={"sqlite_autoincrement": autoincrement}):
                pass
        conn.commit()
        problems = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise RuntimeError(f"foreign keys broken by the rebuild: {problems[:5]}")
    finally:
        conn.exec_driver_sql("PRAGMA foreign_keys=ON")


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
