"""Write transactions of the SQL index: store an instance, delete a resource, mark stable.

Each function runs inside one transaction on the connection it is given, and is correct when
several processes share one PostgreSQL database: rows are created with
INSERT ... ON CONFLICT DO NOTHING (never check-then-insert), parents are locked before they are
checked for emptiness, and a transaction that finds the tree changed under it raises
`ConcurrentChange` to be run again from the start.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, delete, false, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from pharos.dicom.maintags import MAIN_TAGS
from pharos.index.base import (
    ConcurrentChange,
    DeleteOutcome,
    NewInstance,
    ResourceRef,
    StoreOutcome,
    StoreStatus,
)
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
    """Statements built once per index: SQLAlchemy then reuses their compiled form."""

    def __init__(self, dialect: str):
        r = resources
        self.lookup_many = select(r.c.pk, r.c.level, r.c.public_id, r.c.parent_pk).where(
            r.c.public_id.in_(bindparam("ids", expanding=True))
        )
        self.insert_resource = (
            insert_for(dialect, r)
            .on_conflict_do_nothing(index_elements=[r.c.public_id])
            .returning(r.c.pk)
        )
        self.select_pk = select(r.c.pk).where(r.c.public_id == bindparam("public_id"))
        self.touch_series = (
            update(r)
            .where(r.c.pk == bindparam("target"))
            .values(updated_at=bindparam("now"), stable=False, child_count=r.c.child_count + 1)
            .returning(r.c.child_count)
        )
        self.touch = (
            update(r)
            .where(r.c.pk == bindparam("target"))
            .values(
                updated_at=bindparam("now"),
                stable=False,
                child_count=r.c.child_count + bindparam("added"),
            )
        )
        self.insert_changes = changes.insert()
        self.insert_attachment = attachments.insert()
        self.level_inserts = {level: table.insert() for level, table in LEVEL_TABLES.items()}


def store_instance(
    conn: Connection, stmts: WriteStatements, new: NewInstance, overwrite: bool
) -> StoreOutcome:
    ids = new.ids
    found = {
        row.public_id: row for row in conn.execute(stmts.lookup_many, {"ids": list(ids.as_tuple())})
    }
    replaced: list[str] = []
    existing = found.get(ids.instance)
    if existing is not None:
        if not overwrite:
            return StoreOutcome(StoreStatus.ALREADY_STORED)
        replaced = subtree_files(conn, existing.pk)
        conn.execute(delete(resources).where(resources.c.pk == existing.pk))
        conn.execute(
            update(resources)
            .where(resources.c.pk == existing.parent_pk)
            .values(child_count=resources.c.child_count - 1)
        )

    now = new.now
    date = iso_from_epoch(now)
    pks: dict[Level, int] = {}
    created: list[Level] = []
    parent_pk: int | None = None
    for level, public_id in (
        (Level.PATIENT, ids.patient),
        (Level.STUDY, ids.study),
        (Level.SERIES, ids.series),
    ):
        row = found.get(public_id)
        if row is not None:
            if row.parent_pk != parent_pk:
                raise ConcurrentChange(f"{level.title} {public_id} moved")
            pk = row.pk
        else:
            pk, is_new = _create_parent(conn, stmts, level, public_id, parent_pk, new)
            if is_new:
                created.append(level)
        pks[level] = pk
        parent_pk = pk

    instance_pk = conn.execute(
        stmts.insert_resource,
        {
            "level": int(Level.INSTANCE),
            "public_id": ids.instance,
            "parent_pk": pks[Level.SERIES],
            "updated_at": now,
            "stable": True,
        },
    ).scalar()
    if instance_pk is None:
        # Another process stored the same instance a moment ago.
        return StoreOutcome(StoreStatus.ALREADY_STORED, replaced)

    conn.execute(stmts.level_inserts[Level.INSTANCE], _instance_row(instance_pk, new, date))
    attachment = new.attachment
    conn.execute(
        stmts.insert_attachment,
        {
            "resource_pk": instance_pk,
            "content_type": attachment.content_type,
            "uuid": attachment.uuid,
            "compressed_size": attachment.compressed_size,
            "uncompressed_size": attachment.uncompressed_size,
            "compression": attachment.compression,
            "uncompressed_md5": attachment.uncompressed_md5,
            "compressed_md5": attachment.compressed_md5,
            "revision": 0,
        },
    )

    # Touch the parents last and bottom-up: their row locks are held only until the commit,
    # and always taken in the same order as a concurrent delete takes them.
    series_count = conn.execute(
        stmts.touch_series, {"target": pks[Level.SERIES], "now": now}
    ).scalar()
    if series_count is None:
        raise ConcurrentChange("series deleted concurrently")
    for level, child in ((Level.STUDY, Level.SERIES), (Level.PATIENT, Level.STUDY)):
        added = 1 if child in created else 0
        result = conn.execute(stmts.touch, {"target": pks[level], "now": now, "added": added})
        if result.rowcount != 1:
            raise ConcurrentChange(f"{level.title} deleted concurrently")

    # Orthanc's order: from the instance up to the patient.
    logged = [(ChangeType.NEW_INSTANCE, Level.INSTANCE, ids.instance)]
    for level, public_id in (
        (Level.SERIES, ids.series),
        (Level.STUDY, ids.study),
        (Level.PATIENT, ids.patient),
    ):
        if level in created:
            logged.append((ChangeType.new_for(level), level, public_id))
    expected = new.expected_instances
    if (
        expected is not None
        and series_count >= expected
        and series_status(conn, pks[Level.SERIES], expected) == "Complete"
    ):
        logged.append((ChangeType.COMPLETED_SERIES, Level.SERIES, ids.series))
    log_changes(conn, stmts, logged, date)
    return StoreOutcome(StoreStatus.SUCCESS, replaced)


def _create_parent(
    conn: Connection,
    stmts: WriteStatements,
    level: Level,
    public_id: str,
    parent_pk: int | None,
    new: NewInstance,
) -> tuple[int, bool]:
    pk = conn.execute(
        stmts.insert_resource,
        {
            "level": int(level),
            "public_id": public_id,
            "parent_pk": parent_pk,
            "updated_at": new.now,
            "stable": False,
        },
    ).scalar()
    if pk is None:
        # Created by a concurrent transaction that has committed since (ON CONFLICT waited).
        existing = conn.execute(stmts.select_pk, {"public_id": public_id}).scalar()
        if existing is None:
            raise ConcurrentChange(f"{level.title} {public_id} vanished")
        return existing, False
    row: dict[str, Any] = {"pk": pk}
    row.update(_tag_row(level, new.tags[level]))
    if level is Level.STUDY:
        row.update(_tag_row(Level.PATIENT, new.tags[Level.PATIENT]))
    elif level is Level.SERIES:
        row["expected_instances"] = new.expected_instances
        row["remote_aet"] = new.reception.remote_aet
    conn.execute(stmts.level_inserts[level], row)
    return pk, True


def _tag_row(level: Level, values: dict[str, str]) -> dict[str, str | None]:
    return {tag.column: values.get(tag.keyword) for tag in MAIN_TAGS[level]}


def _instance_row(pk: int, new: NewInstance, date: str) -> dict[str, Any]:
    row: dict[str, Any] = {"pk": pk}
    row.update(_tag_row(Level.INSTANCE, new.tags[Level.INSTANCE]))
    reception = new.reception
    row.update(
        index_in_series=new.index_in_series,
        reception_date=date,
        remote_aet=reception.remote_aet,
        remote_ip=reception.remote_ip,
        called_aet=reception.called_aet,
        http_username=reception.http_username,
        origin=reception.origin,
        transfer_syntax=new.transfer_syntax,
        sop_class_uid=new.sop_class_uid,
        pixel_data_offset=new.pixel_data_offset,
    )
    return row


def log_changes(
    conn: Connection,
    stmts: WriteStatements,
    logged: list[tuple[ChangeType, Level, str]],
    date: str,
) -> None:
    conn.execute(
        stmts.insert_changes,
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
