"""Index changes that leave sending running, shared by the migrations that need them.

On PostgreSQL an index is built and dropped CONCURRENTLY (outside the migration's
transaction), so writes to the table go on meanwhile; SQLite simply locks.
"""

from __future__ import annotations

from typing import Any

from alembic import op


def create_partial_index(name: str, table: str, columns: list[str], where: Any) -> None:
    if op.get_bind().dialect.name != 'postgresql':
        op.create_index(name, table, columns, sqlite_where=where)
        return
    with op.get_context().autocommit_block():
        # A build interrupted earlier leaves an invalid index of this name.
        op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
        op.create_index(name, table, columns, postgresql_where=where,
                        postgresql_concurrently=True)


def drop_index(name: str, table: str) -> None:
    if op.get_bind().dialect.name != 'postgresql':
        op.drop_index(name, table_name=table)
        return
    with op.get_context().autocommit_block():
        op.drop_index(name, table_name=table, postgresql_concurrently=True)
