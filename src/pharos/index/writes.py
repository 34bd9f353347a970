"""Write transactions of the SQL index (delete a resource, mark stable) and the statements
and helpers they share with the store transaction (`store.py`).

Each function runs inside one transaction on the connection it is given, and is correct when
several processes share one PostgreSQL database: parents are locked before they are checked
for emptiness, so that a concurrent store into them is either seen or made to wait.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, delete, false, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from pharos.index.base import (
    DeleteOutcome,
    ResourceRef,
)
from pharos.index.compiled import Compiled, CompiledInserts, LookupByPublicIds
from pharos.index.schema import (
    LEVEL_TABLES,
    Key,
    attachments,
    changes,
    instances,
    resources,
)
from pharos.model.changes import ChangeType
from pharos.model.levels import Level
from pharos.model.timeutil import iso_from_epoch, now_iso


def insert_for(dialect: str, table: Any) -> Any:
    """INSERT with the dialect's ON CONFLICT support (the only dialect-specific SQL); typed
    Any as the two dialects' Insert classes share these methods but no base declaring them."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class WriteStatements:
    """The statements of the write paths, compiled once for the index's dialect.

    The store path runs them on the DBAPI cursor (`compiled.py`); rarer paths use SQLAlchemy.
    """

    def __init__(self, dialect: Dialect):
        name = dialect.name
        r = resources
        self.lookup_many = LookupByPublicIds(dialect)
        self.insert_resource = Compiled(
            insert_for(name, r)
            .on_conflict_do_nothing(index_elements=[r.c.public_id])
            .returning(r.c.pk),
            dialect,
            _RESOURCE_KEYS,
        )
        self.insert_resource_many = Compiled(
            insert_for(name, r).on_conflict_do_nothing(index_elements=[r.c.public_id]),
            dialect,
            _RESOURCE_KEYS,
        )
        self.select_pk = Compiled(
            select(r.c.pk).where(r.c.public_id == bindparam("public_id")), dialect
        )
        touch = (
            update(r)
            .where(r.c.pk == bindparam("target"))
            .values(
                updated_at=bindparam("now"),
                stable=False,
                child_count=r.c.child_count + bindparam("added"),
            )
        )
        self.touch_series = Compiled(touch.returning(r.c.child_count), dialect)
        self.touch = Compiled(touch, dialect)
        self.insert_changes = CompiledInserts(changes.insert(), dialect)
        self.insert_attachment = CompiledInserts(attachments.insert(), dialect)
        self.level_inserts = {
            level: CompiledInserts(table.insert(), dialect) for level, table in LEVEL_TABLES.items()
        }


_RESOURCE_KEYS = ("level", "public_id", "parent_pk", "updated_at", "stable")


def log_changes(
    conn: Connection,
    stmts: WriteStatements,
    logged: list[tuple[ChangeType, Level, str]],
    date: str,
) -> None:
    stmts.insert_changes.executemany(
        conn,
        [
            {"change_type": int(kind), "level": int(level), "public_id": public_id, "date": date}
            for kind, level, public_id in logged
        ],
    )


def series_status(conn: Connection, series_pk: int, expected: int) -> str:
    """Orthanc's series status from the IndexInSeries of its instances."""
    indexes = conn.execute(
        select(instances.c.index_in_series)
        .join(resources, resources.c.pk == instances.c.pk)
        .where(resources.c.parent_pk == series_pk)
    ).scalars()
    return status_from_indexes(list(indexes), expected)


def status_from_indexes(indexes: list[int | None], expected: int) -> str:
    seen: set[int] = set()
    for index in indexes:
        if index is None:
            return "Unknown"
        if not 0 < index <= expected or index in seen:
            return "Inconsistent"
        seen.add(index)
    return "Complete" if len(seen) == expected else "Missing"


def subtree(pk: int) -> Any:
    """A recursive CTE of the resource and all its descendants."""
    tree = select(literal(pk, Key).label("pk")).cte("subtree", recursive=True)
    return tree.union_all(select(resources.c.pk).where(resources.c.parent_pk == tree.c.pk))


def subtree_files(conn: Connection, pk: int) -> list[str]:
    tree = subtree(pk)
    return list(
        conn.execute(
            select(attachments.c.uuid).join(tree, tree.c.pk == attachments.c.resource_pk)
        ).scalars()
    )


def delete_resource(conn: Connection, stmts: WriteStatements, ref: ResourceRef) -> DeleteOutcome:
    r = resources
    target = conn.execute(
        select(r.c.pk, r.c.parent_pk).where(r.c.pk == ref.pk).with_for_update()
    ).one_or_none()
    if target is None:
        return DeleteOutcome(False, None, [])
    files = subtree_files(conn, ref.pk)
    conn.execute(delete(r).where(r.c.pk == ref.pk))
    logged = [(ChangeType.DELETED, ref.level, ref.public_id)]

    remaining: tuple[Level, str] | None = None
    parent_pk = target.parent_pk
    while parent_pk is not None:
        # Lock the parent before looking at its children, so that a concurrent store into
        # it either committed already (and is seen) or waits for this transaction.
        parent = conn.execute(
            select(r.c.pk, r.c.level, r.c.public_id, r.c.parent_pk)
            .where(r.c.pk == parent_pk)
            .with_for_update()
        ).one_or_none()
        if parent is None:
            break
        has_children = conn.execute(
            select(r.c.pk).where(r.c.parent_pk == parent.pk).limit(1)
        ).first()
        if has_children is not None:
            conn.execute(
                update(r).where(r.c.pk == parent.pk).values(child_count=r.c.child_count - 1)
            )
            remaining = (Level(parent.level), parent.public_id)
            break
        files.extend(subtree_files(conn, parent.pk))  # attachments of the parent itself
        conn.execute(delete(r).where(r.c.pk == parent.pk))
        logged.append((ChangeType.DELETED, Level(parent.level), parent.public_id))
        parent_pk = parent.parent_pk
    log_changes(conn, stmts, logged, now_iso())
    return DeleteOutcome(True, remaining, files)


def mark_stable(conn: Connection, stmts: WriteStatements, older_than: float, now: float) -> int:
    """Mark as stable what received nothing since `older_than`; log Stable* changes."""
    r = resources
    rows = conn.execute(
        update(r)
        .where(r.c.stable == false(), r.c.updated_at < older_than, r.c.level != int(Level.INSTANCE))
        .values(stable=True)
        .returning(r.c.level, r.c.public_id)
    ).all()
    if not rows:
        return 0
    # Series first, then studies, then patients, as their children become stable first.
    ordered = sorted(rows, key=lambda row: -row.level)
    date = iso_from_epoch(now)
    logged = [
        (ChangeType.stable_for(Level(row.level)), Level(row.level), row.public_id)
        for row in ordered
    ]
    log_changes(conn, stmts, logged, date)
    return len(logged)
