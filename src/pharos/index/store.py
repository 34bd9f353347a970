"""The store transaction: index a batch of new instances in a few set-wise statements.

Concurrent uploads reach the SQLite writer together; indexing them together costs about as
many statements as indexing one (one lookup, `executemany` inserts, one update per parent, one
insert into the change log) and one commit. PostgreSQL runs the same code with a batch of one
per transaction.

Each main tag is written twice: as received, and folded to upper case for case-insensitive
searches. `NewInstance.tags[level]` may also hold the configured extra main tags of the level
(keys that are not main tag keywords): they go to `extra_tags`, all of the batch in one
statement, and only when there are some.

Correct when several processes share PostgreSQL: rows are created with INSERT ... ON CONFLICT
DO NOTHING (never check-then-insert), parents are touched bottom-up in a fixed order (as a
delete locks them), and a transaction that finds the tree changed under it raises
`ConcurrentChange` (or hits a constraint) and is run again from the start.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, update

from pharos.dicom.extra_tags import tag_of_key
from pharos.dicom.maintags import MAIN_TAGS
from pharos.dicom.matching import fold
from pharos.index.base import ConcurrentChange, NewInstance, StoreOutcome, StoreStatus
from pharos.index.schema import extra_tags, folded, resources
from pharos.index.writes import (
    WriteStatements,
    log_changes,
    series_status,
    subtree_files,
)
from pharos.model.changes import ChangeType
from pharos.model.levels import Level
from pharos.model.timeutil import iso_from_epoch


@dataclass(frozen=True, slots=True)
class _Row:
    pk: int
    level: int
    public_id: str
    parent_pk: int | None


@dataclass(frozen=True, slots=True)
class StoreRequest:
    new: NewInstance
    overwrite: bool
    # Runs inside the transaction, before it commits: the caller waits there for the
    # instance's file to be durable, so that no committed row lacks its file.
    before_commit: Callable[[], None] | None = None


_PARENT_LEVELS = (Level.PATIENT, Level.STUDY, Level.SERIES)


def store_instances(
    conn: Connection, stmts: WriteStatements, requests: list[StoreRequest]
) -> list[StoreOutcome]:
    outcomes: list[StoreOutcome] = [StoreOutcome(StoreStatus.ALREADY_STORED)] * len(requests)
    wanted = {public_id for r in requests for public_id in r.new.ids.as_tuple()}
    found = {row[2]: _Row(*row) for row in stmts.lookup_many.run(conn, list(wanted))}

    # Which requests store something: not already stored (unless overwriting), not a repeat
    # of an earlier request of the batch.
    to_store: list[int] = []
    extras: list[dict[str, Any]] = []  # rows of extra_tags
    replaced: dict[int, list[str]] = {}
    seen: set[str] = set()
    for i, request in enumerate(requests):
        instance_id = request.new.ids.instance
        if instance_id in seen:
            continue
        seen.add(instance_id)
        existing = found.pop(instance_id, None)
        if existing is not None:
            if not request.overwrite:
                continue
            replaced[i] = subtree_files(conn, existing.pk)
            conn.execute(delete(resources).where(resources.c.pk == existing.pk))
            conn.execute(
                update(resources)
                .where(resources.c.pk == existing.parent_pk)
                .values(child_count=resources.c.child_count - 1)
            )
        to_store.append(i)
    if not to_store:
        return outcomes

    # Parents, top-down: found, or created now (each created resource is logged once).
    pks = {public_id: row.pk for public_id, row in found.items()}
    created: set[str] = set()
    for level in _PARENT_LEVELS:
        for i in to_store:
            new = requests[i].new
            public_id = _id_at(new, level)
            parent_pk = None if level is Level.PATIENT else pks[_id_at(new, Level(level - 1))]
            row = found.get(public_id)
            if row is not None:
                if row.parent_pk != parent_pk:
                    raise ConcurrentChange(f"{level.title} {public_id} moved")
                continue
            if public_id in pks:
                continue
            pk, is_new = _create_parent(conn, stmts, level, public_id, parent_pk, new, extras)
            pks[public_id] = pk
            if is_new:
                created.add(public_id)

    # The instances themselves.
    stmts.insert_resource_many.executemany(
        conn,
        [
            {
                "level": int(Level.INSTANCE),
                "public_id": requests[i].new.ids.instance,
                "parent_pk": pks[requests[i].new.ids.series],
                "updated_at": requests[i].new.now,
                "stable": True,
            }
            for i in to_store
        ],
    )
    instance_ids = [requests[i].new.ids.instance for i in to_store]
    instance_pks = {row[2]: row[0] for row in stmts.lookup_many.run(conn, instance_ids)}
    rows = []
    files = []
    for i in to_store:
        new = requests[i].new
        instance_pk = instance_pks.get(new.ids.instance)
        if instance_pk is None:
            raise ConcurrentChange(f"instance {new.ids.instance} vanished")
        rows.append(_instance_row(instance_pk, new))
        files.append(_attachment_row(instance_pk, new))
        add_extra_rows(extras, instance_pk, Level.INSTANCE, new.tags[Level.INSTANCE])
    stmts.level_inserts[Level.INSTANCE].executemany(conn, rows)
    stmts.insert_attachment.executemany(conn, files)
    if extras:
        conn.execute(extra_tags.insert(), extras)

    # The rows are written; wait for the files (written meanwhile) to be durable before
    # touching the parents, so that their row locks are not held during an fsync.
    for i in to_store:
        hook = requests[i].before_commit
        if hook is not None:
            hook()

    # Touch the parents last and bottom-up (series, studies, patients, each in pk order):
    # their row locks are held only until the commit, and taken in the order a delete takes
    # them, so concurrent writers rarely deadlock (and are retried when they do).
    now = max(requests[i].new.now for i in to_store)
    new_instances = Counter(requests[i].new.ids.series for i in to_store)
    series_counts: dict[str, int] = {}
    for series_id in sorted(new_instances, key=pks.__getitem__):
        row = stmts.touch_series.execute(
            conn, {"target": pks[series_id], "now": now, "added": new_instances[series_id]}
        ).fetchone()
        if row is None:
            raise ConcurrentChange("series deleted concurrently")
        series_counts[series_id] = row[0]
    for level in (Level.STUDY, Level.PATIENT):
        child = Level(level + 1)
        added = Counter(
            _id_at(requests[i].new, level)
            for i in to_store
            if _id_at(requests[i].new, child) in created
        )
        targets = {_id_at(requests[i].new, level) for i in to_store}
        for public_id in sorted(targets, key=pks.__getitem__):
            cursor = stmts.touch.execute(
                conn, {"target": pks[public_id], "now": now, "added": added.get(public_id, 0)}
            )
            if cursor.rowcount != 1:
                raise ConcurrentChange(f"{level.title} deleted concurrently")

    # The change log, in Orthanc's order for each instance: from the instance up to the
    # patient; a series completed by this batch is logged after its last instance.
    logged: list[tuple[ChangeType, Level, str]] = []
    completed = _completed_series(conn, requests, to_store, pks, series_counts)
    last_of_series = {requests[i].new.ids.series: i for i in to_store}
    for i in to_store:
        ids = requests[i].new.ids
        logged.append((ChangeType.NEW_INSTANCE, Level.INSTANCE, ids.instance))
        for level in (Level.SERIES, Level.STUDY, Level.PATIENT):
            public_id = _id_at(requests[i].new, level)
            if public_id in created:
                created.discard(public_id)
                logged.append((ChangeType.new_for(level), level, public_id))
        if ids.series in completed and last_of_series[ids.series] == i:
            logged.append((ChangeType.COMPLETED_SERIES, Level.SERIES, ids.series))
    log_changes(conn, stmts, logged, iso_from_epoch(now))

    for i in to_store:
        outcomes[i] = StoreOutcome(StoreStatus.SUCCESS, replaced.get(i, []))
    return outcomes


def _completed_series(
    conn: Connection,
    requests: list[StoreRequest],
    to_store: list[int],
    pks: dict[str, int],
    series_counts: dict[str, int],
) -> set[str]:
    """Series that reach their expected size with this batch and are then complete
    (Orthanc checks with the expected size computed from the instance just stored)."""
    completed: set[str] = set()
    for i in to_store:
        new = requests[i].new
        expected = new.expected_instances
        series_id = new.ids.series
        if (
            expected is not None
            and series_id not in completed
            and series_counts[series_id] >= expected
            and series_status(conn, pks[series_id], expected) == "Complete"
        ):
            completed.add(series_id)
    return completed


def _id_at(new: NewInstance, level: Level) -> str:
    return new.ids.as_tuple()[level - 1]


def _create_parent(
    conn: Connection,
    stmts: WriteStatements,
    level: Level,
    public_id: str,
    parent_pk: int | None,
    new: NewInstance,
    extras: list[dict[str, Any]],
) -> tuple[int, bool]:
    inserted = stmts.insert_resource.execute(
        conn,
        {
            "level": int(level),
            "public_id": public_id,
            "parent_pk": parent_pk,
            "updated_at": new.now,
            "stable": False,
        },
    ).fetchone()
    if inserted is None:
        # Created by a concurrent transaction that has committed since (ON CONFLICT waited).
        existing = stmts.select_pk.execute(conn, {"public_id": public_id}).fetchone()
        if existing is None:
            raise ConcurrentChange(f"{level.title} {public_id} vanished")
        return existing[0], False
    pk = inserted[0]
    row: dict[str, Any] = {"pk": pk}
    row.update(tag_row(level, new.tags[level]))
    add_extra_rows(extras, pk, level, new.tags[level])
    if level is Level.STUDY:
        row.update(tag_row(Level.PATIENT, new.tags[Level.PATIENT]))
        add_extra_rows(extras, pk, Level.PATIENT, new.tags[Level.PATIENT])
    elif level is Level.SERIES:
        row["expected_instances"] = new.expected_instances
        row["remote_aet"] = new.reception.remote_aet
    stmts.level_inserts[level].execute(conn, row)
    return pk, True


_TAG_COLUMNS = {
    level: tuple((tag.keyword, tag.column, folded(tag.column)) for tag in tags)
    for level, tags in MAIN_TAGS.items()
}
_MAIN_KEYWORDS = {
    level: frozenset(tag.keyword for tag in tags) for level, tags in MAIN_TAGS.items()
}


def tag_row(level: Level, values: Mapping[str, str]) -> dict[str, str | None]:
    """The main tag columns of a level (and their folded twins), None where absent."""
    row: dict[str, str | None] = {}
    for keyword, column, folded_column in _TAG_COLUMNS[level]:
        value = values.get(keyword)
        row[column] = value
        row[folded_column] = None if value is None else fold(value)
    return row


def add_extra_rows(
    extras: list[dict[str, Any]], pk: int, level: Level, values: Mapping[str, str]
) -> None:
    """Rows of extra_tags for the values that are not main tags of the level."""
    main = _MAIN_KEYWORDS[level]
    for key, value in values.items():
        if key not in main:
            extras.append(
                {
                    "resource_pk": pk,
                    "tag": tag_of_key(key),
                    "level": int(level),
                    "value": value,
                    "value_ci": fold(value),
                }
            )


def _instance_row(pk: int, new: NewInstance) -> dict[str, Any]:
    row: dict[str, Any] = {"pk": pk}
    row.update(tag_row(Level.INSTANCE, new.tags[Level.INSTANCE]))
    reception = new.reception
    row.update(
        index_in_series=new.index_in_series,
        reception_date=iso_from_epoch(new.now),
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


def _attachment_row(pk: int, new: NewInstance) -> dict[str, Any]:
    attachment = new.attachment
    return {
        "resource_pk": pk,
        "content_type": attachment.content_type,
        "uuid": attachment.uuid,
        "compressed_size": attachment.compressed_size,
        "uncompressed_size": attachment.uncompressed_size,
        "compression": attachment.compression,
        "uncompressed_md5": attachment.uncompressed_md5,
        "compressed_md5": attachment.compressed_md5,
        "revision": 0,
    }


@dataclass(frozen=True, slots=True)
class StoreWork:
    """One store, as a unit of write work; the SQLite writer runs consecutive ones as a batch."""

    stmts: WriteStatements
    request: StoreRequest

    def __call__(self, conn: Connection) -> StoreOutcome:
        return store_instances(conn, self.stmts, [self.request])[0]

    @staticmethod
    def run_batch(conn: Connection, works: list[StoreWork]) -> list[StoreOutcome]:
        return store_instances(conn, works[0].stmts, [work.request for work in works])
