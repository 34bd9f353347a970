"""Search in the SQL index: `SqlIndex` inherits these methods.

Every method takes batches of resources and answers with a few statements whatever their
number (chunks of IN lists), never one statement per resource.
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    any_,
    bindparam,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from pharos.dicom.computed import (
    COUNTS,
    INSTANCE_AVAILABILITY,
    MODALITIES_IN_STUDY,
    NUMBER_OF_STUDY_RELATED_INSTANCES,
    NUMBER_OF_STUDY_RELATED_SERIES,
    SOP_CLASSES_IN_STUDY,
)
from pharos.dicom.maintags import MAIN_TAGS, SOP_CLASS_UID
from pharos.dicom.matching import fold
from pharos.index.base import ResourceRef
from pharos.index.base_search import FindQuery, LevelTags, MainTagsUpdate
from pharos.index.query import FindStatement
from pharos.index.schema import (
    LEVEL_TABLES,
    extra_tags,
    folded,
    instances,
    patients,
    resources,
    series,
    studies,
)
from pharos.index.store import add_extra_rows, tag_row
from pharos.model.levels import Level

T = TypeVar("T")
_CHUNK = 500

# /tools/lookup: the identifier of each level, as Orthanc's LookupIdentifierExact.
_IDENTIFIERS = (
    (Level.PATIENT, patients, "patient_id"),
    (Level.STUDY, studies, "study_instance_uid"),
    (Level.SERIES, series, "series_instance_uid"),
    (Level.INSTANCE, instances, "sop_instance_uid"),
)


class SearchMixin:
    if TYPE_CHECKING:
        _dialect: str

        def _read(self, work: Callable[[Connection], T]) -> T: ...

        def _write(self, work: Callable[[Connection], T]) -> T: ...

    def find(self, query: FindQuery, since: int = 0, limit: int | None = None) -> list[ResourceRef]:
        postgres = self._dialect == "postgresql"
        statement = FindStatement(query, self._dialect).select(since, limit, keys_only=postgres)

        def work(conn: Connection) -> list[ResourceRef]:
            if not postgres:
                return [_ref(row) for row in conn.execute(statement)]
            # psycopg prepares a statement run 5 times; PostgreSQL then switches to a generic
            # plan, blind to the values: it may walk the primary key to find the few studies
            # of a date range (10x slower). The search is not prepared: planned for its values.
            driver = conn.connection.driver_connection
            threshold = driver.prepare_threshold  # type: ignore[union-attr]
            driver.prepare_threshold = None  # type: ignore[union-attr]
            try:
                pks = list(conn.execute(statement).scalars())
            finally:
                driver.prepare_threshold = threshold  # type: ignore[union-attr]
            found = _refs(conn, pks)
            return [found[pk] for pk in pks if pk in found]  # unless deleted meanwhile

        return self._read(work)

    def lookup_identifier(self, value: str, level: Level | None = None) -> list[ResourceRef]:
        key = fold(value.strip())
        if "\x00" in key:
            return []  # no identifier holds a NUL (and PostgreSQL text cannot)

        def work(conn: Connection) -> list[ResourceRef]:
            found: list[ResourceRef] = []
            r = resources
            for identified, table, column in _IDENTIFIERS:
                if level is not None and identified is not level:
                    continue
                found.extend(
                    _ref(row)
                    for row in conn.execute(
                        select(r.c.pk, r.c.level, r.c.public_id, r.c.parent_pk)
                        .join(table, table.c.pk == r.c.pk)
                        .where(table.c[folded(column)] == key)
                        .order_by(r.c.pk)
                    )
                )
            return found

        return self._read(work)

    def tag_values(self, level: Level, pks: list[int], extras: bool = True) -> dict[int, LevelTags]:
        query, owners, mapping = _tag_values_plan(level, self._dialect)
        extras_query = _extra_tags_query(self._dialect)

        def work(conn: Connection) -> dict[int, LevelTags]:
            result: dict[int, LevelTags] = {}
            owner_of: dict[int, list[int]] = defaultdict(list)  # resource pk -> result pks
            for chunk in _chunks(pks):
                for row in conn.execute(query, {"keys": chunk}):
                    values: LevelTags = defaultdict(dict)
                    for position, tag_level, tag in mapping:
                        if row[position] is not None:
                            values[tag_level][tag] = row[position]
                    result[row[0]] = values
                    for position in owners:
                        owner_of[row[position]].append(row[0])
            for chunk in _chunks(list(owner_of) if extras else []):
                for resource_pk, tag_level, tag, value in conn.execute(
                    extras_query, {"keys": chunk}
                ):
                    for target in owner_of[resource_pk]:
                        result[target][Level(tag_level)][tag] = value
            return {pk: dict(values) for pk, values in result.items()}

        return self._read(work)

    def computed_tags(
        self, level: Level, pks: list[int], wanted: frozenset[int]
    ) -> dict[int, dict[int, str]]:
        def work(conn: Connection) -> dict[int, dict[int, str]]:
            result: dict[int, dict[int, str]] = {pk: {} for pk in pks}
            summarized = _STUDY_SUMMARY & wanted if level is Level.STUDY else frozenset()
            if summarized:
                _study_summary(conn, result, pks, summarized)
            for tag, (parent_level, counted) in COUNTS.items():
                if tag in wanted and parent_level is level and tag not in summarized:
                    for pk, count in _counts(conn, pks, int(counted) - int(level)).items():
                        result[pk][tag] = str(count)
            if level is Level.STUDY and SOP_CLASSES_IN_STUDY in wanted:
                _sets(conn, result, pks, SOP_CLASSES_IN_STUDY, instances.c.sop_class_uid, 2)
            if level is Level.INSTANCE and SOP_CLASS_UID in wanted:
                # One query for all, not one per instance (DICOMweb answers carry it).
                column = instances.c.sop_class_uid
                for chunk in _chunks(pks):
                    for pk, uid in conn.execute(
                        select(instances.c.pk, column).where(instances.c.pk.in_(chunk))
                    ):
                        if uid is not None:
                            result[pk][SOP_CLASS_UID] = uid
            if level is Level.INSTANCE and INSTANCE_AVAILABILITY in wanted:
                for values in result.values():
                    values[INSTANCE_AVAILABILITY] = "ONLINE"
            return result

        return self._read(work)

    def one_instance(self, refs: list[ResourceRef]) -> dict[int, ResourceRef]:
        def work(conn: Connection) -> dict[int, ResourceRef]:
            found: dict[int, ResourceRef] = {}
            first: dict[int, int] = {}  # resource pk -> instance pk
            for level in Level:
                pks = [ref.pk for ref in refs if ref.level is level]
                if level is Level.INSTANCE:
                    found.update((ref.pk, ref) for ref in refs if ref.level is level)
                    continue
                depth = int(Level.INSTANCE) - int(level)
                for chunk in _chunks(pks):
                    chain, top, bottom = _descend(depth)
                    first.update(
                        conn.execute(
                            select(top.c.pk, func.min(bottom.c.pk))
                            .select_from(chain)
                            .where(top.c.pk.in_(chunk))
                            .group_by(top.c.pk)
                        ).all()
                    )
            by_pk = _refs(conn, list(first.values()))
            found.update(
                (pk, by_pk[instance]) for pk, instance in first.items() if instance in by_pk
            )
            return found

        return self._read(work)

    def set_main_tags(self, updates: list[MainTagsUpdate]) -> None:
        def work(conn: Connection) -> None:
            extras: list[dict[str, Any]] = []
            for level, table in LEVEL_TABLES.items():
                rows = []
                for item in updates:
                    if item.level is not level:
                        continue
                    row: dict[str, Any] = {"pk_": item.pk, **tag_row(level, item.tags)}
                    add_extra_rows(extras, item.pk, level, item.tags)
                    if level is Level.STUDY:
                        patient = item.patient_tags or {}
                        row.update(tag_row(Level.PATIENT, patient))
                        add_extra_rows(extras, item.pk, Level.PATIENT, patient)
                    rows.append(row)
                if rows:
                    # Bound as "<column>_": SQLAlchemy reserves the column names themselves.
                    keys = [key for key in rows[0] if key != "pk_"]
                    conn.execute(
                        update(table)
                        .where(table.c.pk == bindparam("pk_"))
                        .values({key: bindparam(key + "_") for key in keys}),
                        [
                            {"pk_": row["pk_"], **{f"{key}_": row[key] for key in keys}}
                            for row in rows
                        ],
                    )
            for chunk in _chunks([item.pk for item in updates]):
                conn.execute(delete(extra_tags).where(extra_tags.c.resource_pk.in_(chunk)))
            if extras:
                conn.execute(extra_tags.insert(), extras)

        self._write(work)


# -- helpers ---------------------------------------------------------------------------------


@functools.cache
def _descend(depth: int) -> tuple[Any, Any, Any]:
    """resources r0 joined with its descendants `depth` levels down: (join, r0, r_depth).
    Built once per depth: aliases are costly to build and their statements cache better."""
    aliases = [resources.alias(f"d{i}") for i in range(depth + 1)]
    chain: Any = aliases[0]
    for upper, lower in itertools.pairwise(aliases):
        chain = chain.join(lower, lower.c.parent_pk == upper.c.pk)
    return chain, aliases[0], aliases[-1]


def _keys(dialect: str, column: Any) -> ColumnElement[bool]:
    """`column` among the bound list "keys": one statement whatever their number (an
    expanding IN on SQLite, `= ANY(array)` on PostgreSQL), built and compiled once."""
    if dialect == "postgresql":
        return column == any_(bindparam("keys", type_=ARRAY(BigInteger())))
    return column.in_(bindparam("keys", expanding=True))


@functools.cache
def _tag_values_plan(
    level: Level, dialect: str
) -> tuple[Any, tuple[int, ...], tuple[tuple[int, Level, int], ...]]:
    """tag_values' statement (rows of a level with the main tags of it and its ancestors),
    the positions of the resource pks owning extra tags, and (position, level, tag) of each
    main tag in a row."""
    statement = FindStatement(FindQuery(level), dialect)
    # The table holding the tags of each level (and the resource whose extra tags they
    # are): the level's own, then its ancestors' through the parent links.
    sources = {upper: statement.source(upper) for upper in Level if upper <= level}
    own = statement.table.c.pk
    columns: list[Any] = [own]
    owners: list[int] = []
    mapping: list[tuple[int, Level, int]] = []
    for upper, (table, pk) in sources.items():
        if upper is Level.PATIENT and level is not Level.PATIENT:
            continue  # the study's copy, read with the study
        owners.append(len(columns))
        columns.append(pk)
        tag_levels = [upper, Level.PATIENT] if upper is Level.STUDY else [upper]
        for tag_level in tag_levels:
            for main in MAIN_TAGS[tag_level]:
                mapping.append((len(columns), tag_level, main.tag))
                columns.append(table.c[main.column])
    query = select(*columns).select_from(statement.from_clause).where(_keys(dialect, own))
    return query, tuple(owners), tuple(mapping)


@functools.cache
def _extra_tags_query(dialect: str) -> Any:
    e = extra_tags
    return select(e.c.resource_pk, e.c.level, e.c.tag, e.c.value).where(
        _keys(dialect, e.c.resource_pk)
    )


@functools.cache
def _counts_query(depth: int, dialect: str) -> Any:
    chain, top, bottom = _descend(depth)
    return (
        select(top.c.pk, func.count(bottom.c.pk))
        .select_from(chain)
        .where(_keys(dialect, top.c.pk))
        .group_by(top.c.pk)
    )


def _counts(conn: Connection, pks: list[int], depth: int) -> dict[int, int]:
    counts = dict.fromkeys(pks, 0)
    query = _counts_query(depth, conn.dialect.name)
    for chunk in _chunks(pks):
        counts.update(conn.execute(query, {"keys": chunk}).all())
    return counts


# A study's series and instance counts and its modalities, from one statement (a QIDO-RS
# study search asks for the three).
_STUDY_SUMMARY = frozenset(
    (NUMBER_OF_STUDY_RELATED_SERIES, NUMBER_OF_STUDY_RELATED_INSTANCES, MODALITIES_IN_STUDY)
)


@functools.cache
def _study_summary_query(dialect: str) -> Any:
    """Each series of the studies: (study pk, series pk, modality, number of instances)."""
    study, one, child = (resources.alias(name) for name in ("st", "se", "ins"))
    chain = (
        study.join(one, one.c.parent_pk == study.c.pk)
        .outerjoin(series, series.c.pk == one.c.pk)
        .outerjoin(child, child.c.parent_pk == one.c.pk)
    )
    return (
        select(study.c.pk, one.c.pk, series.c.modality, func.count(child.c.pk))
        .select_from(chain)
        .where(_keys(dialect, study.c.pk))
        .group_by(study.c.pk, one.c.pk, series.c.modality)
    )


def _study_summary(
    conn: Connection, result: dict[int, dict[int, str]], pks: list[int], wanted: frozenset[int]
) -> None:
    counts = {pk: [0, 0] for pk in pks}  # series, instances
    modalities: dict[int, set[str]] = {pk: set() for pk in pks}
    query = _study_summary_query(conn.dialect.name)
    for chunk in _chunks(pks):
        for study_pk, _, modality, instances_count in conn.execute(query, {"keys": chunk}):
            counts[study_pk][0] += 1
            counts[study_pk][1] += instances_count
            if modality is not None:
                modalities[study_pk].add(modality)
    for pk, (series_count, instances_count) in counts.items():
        if NUMBER_OF_STUDY_RELATED_SERIES in wanted:
            result[pk][NUMBER_OF_STUDY_RELATED_SERIES] = str(series_count)
        if NUMBER_OF_STUDY_RELATED_INSTANCES in wanted:
            result[pk][NUMBER_OF_STUDY_RELATED_INSTANCES] = str(instances_count)
        if MODALITIES_IN_STUDY in wanted:
            result[pk][MODALITIES_IN_STUDY] = "\\".join(sorted(modalities[pk]))


@functools.cache
def _sets_query(column: Any, depth: int, dialect: str) -> Any:
    chain, top, bottom = _descend(depth)
    chain = chain.join(column.table, column.table.c.pk == bottom.c.pk)
    return select(top.c.pk, column).select_from(chain).where(_keys(dialect, top.c.pk)).distinct()


def _sets(
    conn: Connection,
    result: dict[int, dict[int, str]],
    pks: list[int],
    tag: int,
    column: Any,
    depth: int,
) -> None:
    """The distinct values of `column` among the descendants `depth` levels down, sorted and
    joined with backslashes (Orthanc's std::set), "" when there are none."""
    values: dict[int, set[str]] = {pk: set() for pk in pks}
    query = _sets_query(column, depth, conn.dialect.name)
    for chunk in _chunks(pks):
        for pk, value in conn.execute(query, {"keys": chunk}):
            if value is not None:
                values[pk].add(value)
    for pk, found in values.items():
        result[pk][tag] = "\\".join(sorted(found))


def _refs(conn: Connection, pks: list[int]) -> dict[int, ResourceRef]:
    r = resources
    found: dict[int, ResourceRef] = {}
    for chunk in _chunks(pks):
        for row in conn.execute(
            select(r.c.pk, r.c.level, r.c.public_id, r.c.parent_pk).where(
                keys_in(conn, r.c.pk, chunk)
            )
        ):
            found[row.pk] = _ref(row)
    return found


def _ref(row: Any) -> ResourceRef:
    return ResourceRef(row[0], Level(row[1]), row[2], row[3])


def keys_in(conn: Connection, column: Any, keys: list[int]) -> ColumnElement[bool]:
    """`column IN (keys)`; on PostgreSQL `column = ANY(:keys)`, the keys in one array: the same
    statement whatever their number, not one bind per key to render and parse each time."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, keys, type_=ARRAY(BigInteger())))
    return column.in_(keys)


def _chunks(items: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
