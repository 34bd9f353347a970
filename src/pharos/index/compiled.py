"""Core statements compiled once per dialect and run straight on the DBAPI cursor.

For the statements of the store path only, which run thousands of times a second: there,
SQLAlchemy's per-call machinery (cache lookup, execution context, result wrapping) costs more
than the database itself. The SQL text is the one SQLAlchemy generates for the dialect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from pharos.index.schema import resources


class Compiled:
    __slots__ = ("defaults", "order", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect, keys: Sequence[str] = ()):
        compiled = statement.compile(dialect=dialect, column_keys=list(keys) or None)
        self.sql: str = compiled.string
        # Positional paramstyles (SQLite's "?") need the order; named ones (psycopg) do not.
        positions = getattr(compiled, "positiontup", None)
        self.order: tuple[str, ...] | None = tuple(positions) if positions is not None else None
        # Values fixed in the statement itself (e.g. stable=False) are parameters too.
        self.defaults = {k: v for k, v in compiled.params.items() if v is not None}

    def bind(self, values: Mapping[str, Any]) -> Any:
        merged = {**self.defaults, **values} if self.defaults else values
        if self.order is None:
            return merged
        return tuple(merged[key] for key in self.order)

    def execute(self, conn: Connection, values: Mapping[str, Any]) -> Any:
        cursor = dbapi_cursor(conn)
        cursor.execute(self.sql, self.bind(values))
        return cursor

    def executemany(self, conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
        cursor = dbapi_cursor(conn)
        cursor.executemany(self.sql, [self.bind(row) for row in rows])


class CompiledInserts:
    """INSERTs of one table, compiled for each set of columns given (a handful in practice)."""

    def __init__(self, statement: ClauseElement, dialect: Dialect):
        self._statement = statement
        self._dialect = dialect
        self._by_keys: dict[tuple[str, ...], Compiled] = {}

    def for_row(self, row: Mapping[str, Any]) -> Compiled:
        keys = tuple(row)
        compiled = self._by_keys.get(keys)
        if compiled is None:
            compiled = Compiled(self._statement, self._dialect, keys)
            self._by_keys[keys] = compiled
        return compiled

    def execute(self, conn: Connection, row: Mapping[str, Any]) -> Any:
        return self.for_row(row).execute(conn, row)

    def executemany(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            self.for_row(rows[0]).executemany(conn, rows)


class LookupByPublicIds:
    """SELECT pk, level, public_id, parent_pk of resources by public ID, for n IDs."""

    def __init__(self, dialect: Dialect):
        self._dialect = dialect
        self._by_count: dict[int, Compiled] = {}

    def run(self, conn: Connection, public_ids: list[str]) -> list[tuple[int, int, str, Any]]:
        if not public_ids:
            return []
        compiled = self._by_count.get(len(public_ids))
        if compiled is None:
            r = resources
            params: list[Any] = [bindparam(f"id{i}") for i in range(len(public_ids))]
            statement = select(r.c.pk, r.c.level, r.c.public_id, r.c.parent_pk).where(
                r.c.public_id.in_(params)
            )
            compiled = Compiled(statement, self._dialect)
            self._by_count[len(public_ids)] = compiled
        values = {f"id{i}": public_id for i, public_id in enumerate(public_ids)}
        return list(compiled.execute(conn, values).fetchall())


def dbapi_cursor(conn: Connection) -> Any:
    # The connection's own DBAPI connection: statements run in the same transaction.
    return conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
