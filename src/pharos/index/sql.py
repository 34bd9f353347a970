"""The index on SQLAlchemy Core: one code path for SQLite and PostgreSQL.

Writes go through `run_write` (SQLite: the single writer thread; PostgreSQL: a pooled
connection with retries); reads use pooled connections, each in its own transaction.
Listings fetch resources and their details in a few batched queries, never one per resource.
"""

from __future__ import annotations

import contextlib
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select, bindparam, func, select

from pharos.dicom.maintags import MAIN_TAGS, PATIENT_TAGS
from pharos.index import writes
from pharos.index.annotations import AnnotationsMixin, attachment_from_row
from pharos.index.base import (
    DICOM_CONTENT_TYPE,
    Attachment,
    DeleteOutcome,
    Export,
    NewInstance,
    ResourceInfo,
    ResourceRef,
    Statistics,
    StoreOutcome,
)
from pharos.index.compiled import Compiled
from pharos.index.event_cursors import EventCursorsMixin, reset_event_cursors
from pharos.index.jobs import JobsMixin
from pharos.index.modalities import ModalitiesMixin
from pharos.index.peers import PeersMixin
from pharos.index.schema import (
    LEVEL_TABLES,
    attachments,
    changes,
    exports,
    folded,
    instances,
    labels,
    resources,
)
from pharos.index.search import SearchMixin, keys_in
from pharos.index.store import StoreRequest, StoreWork
from pharos.model.changes import Change, ChangeType
from pharos.model.errors import unknown_resource
from pharos.model.levels import Level

T = TypeVar("T")
WriteRunner = Callable[[Callable[[Connection], Any]], Any]

_CHUNK = 500  # ids per IN (...) list
# SQLAlchemy 2.1 types rows by their column types; these helpers take any row.
AnyRow = Any


class SqlIndex(
    SearchMixin, AnnotationsMixin, ModalitiesMixin, JobsMixin, PeersMixin, EventCursorsMixin
):
    def __init__(
        self,
        *,
        read_engine: Engine,
        run_write: WriteRunner,
        description: str,
        on_close: Callable[[], None],
        writer_busy: Callable[[], bool] | None = None,
    ):
        self._read_engine = read_engine
        self._reader = threading.local()  # .conn: the connection of a `reading()` block
        self._run_write = run_write
        # With a single writer (SQLite), whether it has other work.
        self._writer_busy = writer_busy
        self._description = description
        self._on_close = on_close
        self._dialect = read_engine.dialect.name
        self._stmts = writes.WriteStatements(read_engine.dialect)
        r = resources
        self._lookup = Compiled(
            select(r.c.pk, r.c.level, r.c.public_id, r.c.parent_pk).where(
                r.c.public_id == bindparam("public_id")
            ),
            read_engine.dialect,
        )

    # -- plumbing ---------------------------------------------------------------------------

    def describe(self) -> str:
        return self._description

    @property
    def dialect(self) -> str:
        return self._dialect

    def close(self) -> None:
        self._on_close()

    def _write(self, work: Callable[[Connection], T]) -> T:
        result: T = self._run_write(work)
        return result

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        if getattr(self._reader, "conn", None) is not None:
            yield  # nested: the outer block's transaction
            return
        with self._read_engine.begin() as conn:
            self._reader.conn = conn
            try:
                yield
            finally:
                self._reader.conn = None

    def _read(self, work: Callable[[Connection], T]) -> T:
        conn: Connection | None = getattr(self._reader, "conn", None)
        if conn is not None:
            return work(conn)
        with self._read_engine.begin() as conn:
            return work(conn)

    # -- store and delete -------------------------------------------------------------------

    def store_instance(
        self,
        instance: NewInstance,
        overwrite: bool,
        before_commit: Callable[[], None] | None = None,
    ) -> StoreOutcome:
        if before_commit is not None and self._writer_busy is not None and self._writer_busy():
            # The single writer is busy: wait for the file here rather than in the writer's
            # transaction, where it would hold up everybody else's commits (measured: with
            # four parallel C-STORE associations, half of the writer's time went to waiting
            # for files). When it is idle, the statements run while the file is written.
            before_commit()
            before_commit = None
        work = StoreWork(self._stmts, StoreRequest(instance, overwrite, before_commit))
        return self._write(work)

    def delete_resource(self, ref: ResourceRef) -> DeleteOutcome:
        return self._write(lambda conn: writes.delete_resource(conn, self._stmts, ref))

    def mark_stable(self, older_than: float, now: float) -> int:
        return self._write(lambda conn: writes.mark_stable(conn, self._stmts, older_than, now))

    # -- lookups ----------------------------------------------------------------------------

    def lookup(self, public_id: str) -> ResourceRef | None:
        # One statement needs no transaction: a pooled DBAPI connection, no BEGIN/COMMIT
        # (this runs before every upload, to spare resent instances a file write).
        raw = self._read_engine.raw_connection()
        postgres = self._dialect == "postgresql"
        try:
            if postgres:  # else psycopg would BEGIN, and the pool ROLLBACK on return
                raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            cursor = raw.cursor()
            cursor.execute(self._lookup.sql, self._lookup.bind({"public_id": public_id}))
            row = cursor.fetchone()
        finally:
            if postgres:
                raw.driver_connection.autocommit = False  # type: ignore[union-attr]
            raw.close()
        return None if row is None else ResourceRef(row[0], Level(row[1]), row[2], row[3])

    def list_public_ids(self, level: Level, since: int, limit: int | None) -> list[str]:
        query = _paged(
            select(resources.c.public_id).where(resources.c.level == int(level)), since, limit
        )
        return self._read(lambda conn: list(conn.execute(query).scalars()))

    def list_resources(self, level: Level, since: int, limit: int | None) -> list[ResourceInfo]:
        def work(conn: Connection) -> list[ResourceInfo]:
            query = _paged(_info_query(level).where(resources.c.level == int(level)), since, limit)
            return _infos(conn, level, list(conn.execute(query)))

        return self._read(work)

    def resource_info(self, ref: ResourceRef) -> ResourceInfo:
        infos = self.resources_info([ref])
        if not infos:
            raise unknown_resource(ref.public_id)
        return infos[0]

    def resources_info(self, refs: list[ResourceRef]) -> list[ResourceInfo]:
        """Details of resources of one or several levels, in the order given."""

        def work(conn: Connection) -> list[ResourceInfo]:
            by_pk: dict[int, ResourceInfo] = {}
            for level in Level:
                pks = [ref.pk for ref in refs if ref.level is level]
                # The level table's key, not resources.pk (whence PostgreSQL would hash-join a
                # scan of the whole level table): each planner starts from that table's index.
                key = LEVEL_TABLES[level].c.pk
                for chunk in _chunks(pks):
                    query = _info_query(level).where(keys_in(conn, key, chunk))
                    for info in _infos(conn, level, list(conn.execute(query))):
                        by_pk[info.ref.pk] = info
            return [by_pk[ref.pk] for ref in refs if ref.pk in by_pk]

        return self._read(work)

    def children(self, ref: ResourceRef) -> list[ResourceRef]:
        r = resources
        query = (
            select(r.c.pk, r.c.level, r.c.public_id, r.c.parent_pk)
            .where(r.c.parent_pk == ref.pk)
            .order_by(r.c.pk)
        )
        return self._read(lambda conn: [_ref(row) for row in conn.execute(query)])

    def descendants(self, ref: ResourceRef, level: Level) -> list[ResourceRef]:
        """The resources at `level` below `ref` (or `ref` itself at its own level)."""
        if level is ref.level:
            return [ref]
        if level == ref.level + 1:
            return self.children(ref)  # by the parent key, not through the subtree
        r = resources
        tree = writes.subtree(ref.pk)
        query = (
            select(r.c.pk, r.c.level, r.c.public_id, r.c.parent_pk)
            .join(tree, tree.c.pk == r.c.pk)
            .where(r.c.level == int(level))
            .order_by(r.c.pk)
        )
        return self._read(lambda conn: [_ref(row) for row in conn.execute(query)])

    def ancestor(self, ref: ResourceRef, level: Level) -> ResourceRef:
        """The ancestor of `ref` at `level` (or `ref` itself)."""
        r = resources

        def work(conn: Connection) -> ResourceRef:
            current = ref
            while current.level > level:
                row = conn.execute(
                    select(r.c.pk, r.c.level, r.c.public_id, r.c.parent_pk).where(
                        r.c.pk == current.parent_pk
                    )
                ).one()
                current = _ref(row)
            return current

        return self._read(work)

    def main_tags(self, ref: ResourceRef) -> dict[str, str]:
        table = LEVEL_TABLES[ref.level]
        row = self._read(
            lambda conn: conn.execute(select(table).where(table.c.pk == ref.pk)).first()
        )
        return {} if row is None else _tags_of(row, ref.level)

    def attachment(self, ref: ResourceRef, content_type: int) -> Attachment | None:
        a = attachments
        query = select(a).where(a.c.resource_pk == ref.pk, a.c.content_type == content_type)
        row = self._read(lambda conn: conn.execute(query).first())
        return None if row is None else attachment_from_row(row)

    # -- logs -------------------------------------------------------------------------------

    def changes(self, since: int, limit: int) -> tuple[list[Change], bool]:
        query = (
            select(changes).where(changes.c.seq > since).order_by(changes.c.seq).limit(limit + 1)
        )
        rows = self._read(lambda conn: list(conn.execute(query)))
        return [_change(row) for row in rows[:limit]], len(rows) <= limit

    def last_change(self) -> Change | None:
        query = select(changes).order_by(changes.c.seq.desc()).limit(1)
        row = self._read(lambda conn: conn.execute(query).first())
        return None if row is None else _change(row)

    def clear_changes(self) -> None:
        def work(conn: Connection) -> None:
            conn.execute(changes.delete())
            reset_event_cursors(conn)

        self._write(work)

    def exports(self, since: int, limit: int) -> tuple[list[Export], bool]:
        query = (
            select(exports).where(exports.c.seq > since).order_by(exports.c.seq).limit(limit + 1)
        )
        rows = self._read(lambda conn: list(conn.execute(query)))
        return [_export(row) for row in rows[:limit]], len(rows) <= limit

    def last_export(self) -> Export | None:
        query = select(exports).order_by(exports.c.seq.desc()).limit(1)
        row = self._read(lambda conn: conn.execute(query).first())
        return None if row is None else _export(row)

    def clear_exports(self) -> None:
        self._write(lambda conn: conn.execute(exports.delete()))

    # -- statistics and maintenance ---------------------------------------------------------

    def statistics(self) -> Statistics:
        def work(conn: Connection) -> Statistics:
            counts: dict[int, int] = dict(
                conn.execute(
                    select(resources.c.level, func.count()).group_by(resources.c.level)
                ).all()
            )
            return _statistics(conn, counts, attachments.select().subquery())

        return self._read(work)

    def resource_statistics(self, ref: ResourceRef) -> Statistics:
        def work(conn: Connection) -> Statistics:
            tree = writes.subtree(ref.pk)
            counts: dict[int, int] = dict(
                conn.execute(
                    select(resources.c.level, func.count())
                    .join(tree, tree.c.pk == resources.c.pk)
                    .group_by(resources.c.level)
                ).all()
            )
            files = (
                select(attachments).join(tree, tree.c.pk == attachments.c.resource_pk).subquery()
            )
            return _statistics(conn, counts, files)

        return self._read(work)

    def unknown_files(self, uuids: Iterable[str]) -> set[str]:
        def work(conn: Connection) -> set[str]:
            unknown: set[str] = set()
            for chunk in _chunks(list(uuids)):
                known = set(
                    conn.execute(
                        select(attachments.c.uuid).where(attachments.c.uuid.in_(chunk))
                    ).scalars()
                )
                unknown.update(set(chunk) - known)
            return unknown

        return self._read(work)


# -- query helpers ------------------------------------------------------------------------------


def _paged(query: Select[Any], since: int, limit: int | None) -> Select[Any]:
    # Orthanc's `since` is an offset in the list of resources, in creation order.
    query = query.order_by(resources.c.pk).offset(max(0, since))
    return query if limit is None else query.limit(max(0, limit))


# The pk and the folded twins of the main tags: never shown, so not read.
_NOT_SHOWN = frozenset({"pk"} | {folded(tag.column) for tags in MAIN_TAGS.values() for tag in tags})


def _info_query(level: Level) -> Select[Any]:
    table = LEVEL_TABLES[level]
    parent = resources.alias("parent")
    return (
        select(
            resources.c.pk,
            resources.c.level,
            resources.c.public_id,
            resources.c.parent_pk,
            resources.c.updated_at,
            resources.c.stable,
            parent.c.public_id.label("parent_public_id"),
            *[column for column in table.c if column.name not in _NOT_SHOWN],
        )
        .select_from(resources)
        .join(table, table.c.pk == resources.c.pk)
        .outerjoin(parent, parent.c.pk == resources.c.parent_pk)
    )


def _infos(conn: Connection, level: Level, rows: Sequence[AnyRow]) -> list[ResourceInfo]:
    infos = [
        ResourceInfo(
            ref=_ref(row),
            parent_public_id=row.parent_public_id,
            updated_at=row.updated_at,
            stable=bool(row.stable),
            tags=_tags_of(row, level),
            patient_tags=_patient_tags_of(row) if level is Level.STUDY else None,
        )
        for row in rows
    ]
    pks = [info.ref.pk for info in infos]
    _fill_labels(conn, infos, pks)
    if level is not Level.INSTANCE:
        children: dict[int, list[str]] = defaultdict(list)
        for chunk in _chunks(pks):
            for row in conn.execute(
                select(resources.c.parent_pk, resources.c.public_id)
                .where(keys_in(conn, resources.c.parent_pk, chunk))
                .order_by(resources.c.pk)
            ):
                children[row.parent_pk].append(row.public_id)
        for info in infos:
            info.children = children.get(info.ref.pk, [])
    if level is Level.SERIES:
        _fill_series_status(conn, infos, rows)
    if level is Level.INSTANCE:
        files: dict[int, AnyRow] = {}
        for chunk in _chunks(pks):
            for file_row in conn.execute(
                select(
                    attachments.c.resource_pk, attachments.c.uuid, attachments.c.uncompressed_size
                ).where(
                    keys_in(conn, attachments.c.resource_pk, chunk),
                    attachments.c.content_type == DICOM_CONTENT_TYPE,
                )
            ):
                files[file_row.resource_pk] = file_row
        for info, row in zip(infos, rows, strict=True):
            info.index_in_series = row.index_in_series
            file = files.get(info.ref.pk)
            if file is not None:
                info.file_uuid = file.uuid
                info.file_size = file.uncompressed_size
    return infos


def _fill_labels(conn: Connection, infos: list[ResourceInfo], pks: list[int]) -> None:
    by_pk: dict[int, list[str]] = defaultdict(list)
    for chunk in _chunks(pks):
        for row in conn.execute(
            select(labels.c.resource_pk, labels.c.label)
            .where(keys_in(conn, labels.c.resource_pk, chunk))
            .order_by(labels.c.label)
        ):
            by_pk[row.resource_pk].append(row.label)
    for info in infos:
        info.labels = by_pk.get(info.ref.pk, [])


def _fill_series_status(
    conn: Connection, infos: list[ResourceInfo], rows: Sequence[AnyRow]
) -> None:
    expected_by_pk: dict[int, int] = {}
    for info, row in zip(infos, rows, strict=True):
        info.expected_instances = row.expected_instances
        info.series_status = "Unknown"
        if row.expected_instances is not None:
            expected_by_pk[info.ref.pk] = row.expected_instances
    if not expected_by_pk:
        return
    indexes: dict[int, list[int | None]] = defaultdict(list)
    for chunk in _chunks(list(expected_by_pk)):
        for row in conn.execute(
            select(resources.c.parent_pk, instances.c.index_in_series)
            .join(instances, instances.c.pk == resources.c.pk)
            .where(keys_in(conn, resources.c.parent_pk, chunk))
        ):
            indexes[row.parent_pk].append(row.index_in_series)
    for info in infos:
        expected = expected_by_pk.get(info.ref.pk)
        if expected is not None:
            info.series_status = writes.status_from_indexes(indexes.get(info.ref.pk, []), expected)


def _statistics(conn: Connection, counts: dict[int, int], files: Any) -> Statistics:
    total = conn.execute(
        select(
            func.coalesce(func.sum(files.c.compressed_size), 0),
            func.coalesce(func.sum(files.c.uncompressed_size), 0),
        )
    ).one()
    dicom = conn.execute(
        select(
            func.coalesce(func.sum(files.c.compressed_size), 0),
            func.coalesce(func.sum(files.c.uncompressed_size), 0),
        ).where(files.c.content_type == DICOM_CONTENT_TYPE)
    ).one()
    return Statistics(
        patients=counts.get(int(Level.PATIENT), 0),
        studies=counts.get(int(Level.STUDY), 0),
        series=counts.get(int(Level.SERIES), 0),
        instances=counts.get(int(Level.INSTANCE), 0),
        disk_size=int(total[0]),
        uncompressed_size=int(total[1]),
        dicom_disk_size=int(dicom[0]),
        dicom_uncompressed_size=int(dicom[1]),
    )


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _ref(row: AnyRow) -> ResourceRef:
    return ResourceRef(row.pk, Level(row.level), row.public_id, row.parent_pk)


def _tags_of(row: AnyRow, level: Level) -> dict[str, str]:
    mapping = row._mapping
    return {
        tag.keyword: mapping[tag.column]
        for tag in MAIN_TAGS[level]
        if mapping[tag.column] is not None
    }


def _patient_tags_of(row: AnyRow) -> dict[str, str]:
    mapping = row._mapping
    return {
        tag.keyword: mapping[tag.column] for tag in PATIENT_TAGS if mapping[tag.column] is not None
    }


def _change(row: AnyRow) -> Change:
    return Change(row.seq, ChangeType(row.change_type), Level(row.level), row.public_id, row.date)


def _export(row: AnyRow) -> Export:
    return Export(
        seq=row.seq,
        level=Level(row.level),
        public_id=row.public_id,
        remote_modality=row.remote_modality,
        patient_id=row.patient_id,
        study_instance_uid=row.study_instance_uid,
        series_instance_uid=row.series_instance_uid,
        sop_instance_uid=row.sop_instance_uid,
        date=row.date,
    )
