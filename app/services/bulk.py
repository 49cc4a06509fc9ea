"""Many rows into a table at once, below the ORM, for file imports (bulk-task
recipients, group members): COPY on PostgreSQL, one prepared INSERT run with
executemany on SQLite. Building ORM objects, or binding each row through SQLAlchemy,
would cost more than reading and checking the file."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement
from sqlalchemy.engine import Connection


def copy_field(value: str) -> str:
    """A value as a field of COPY's text format (tab-separated, backslash escapes)."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace(
        "\r", "\\r")


def copy(conn: Connection, sql: str, lines: Iterable[str]) -> None:
    """COPY … FROM STDIN of these lines (each ends in a newline), in the connection's
    transaction."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor, cursor.copy(sql) as out:
        out.write("".join(lines))


def executemany(conn: Connection, sql: str, rows: Sequence[tuple[Any, ...]]) -> None:
    conn.exec_driver_sql(sql, rows)  # type: ignore[arg-type]


def bound(conn: Connection, column: ColumnElement[Any], value: Any) -> Any:
    """`value` as SQLAlchemy would send it for `column` (its type's conversions), for
    statements that bypass it."""
    dialect = conn.dialect
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process(value) if process else value


class CopyIn:
    """One COPY … FROM STDIN kept open while the caller produces its rows, so the
    server stores them while the caller reads on (two cores at work, not one after
    the other). `close` ends it normally (the transaction goes on, and may run other
    statements, even undo what was copied); `abort` fails it (the transaction is then
    lost: the caller rolls back)."""

    def __init__(self, conn: Connection, sql: str) -> None:
        self.conn, self.sql = conn, sql
        self._open: contextlib.ExitStack | None = None
        self._copy: Any = None

    def write(self, text: str) -> None:
        if self._open is None:
            self._open = contextlib.ExitStack()
            cursor = self._open.enter_context(
                self.conn.connection.driver_connection.cursor())  # type: ignore[union-attr]
            self._copy = self._open.enter_context(cursor.copy(self.sql))
        self._copy.write(text)

    def close(self) -> None:
        if self._open is not None:
            done, self._open = self._open, None
            done.close()

    def abort(self, exc: BaseException) -> None:
        if self._open is not None:
            done, self._open = self._open, None
            done.__exit__(type(exc), exc, exc.__traceback__)
