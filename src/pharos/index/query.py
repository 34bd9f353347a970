"""/tools/find as one SQL statement: constraints, labels and order on indexed columns.

The statement starts from the table of the query level and joins the tables of the levels
above only when a constraint or a sort key needs them (a study holds a copy of its patient's
tags, so no study query joins the patients). Case-insensitive constraints compare the folded
twin columns (`x_ci`), case-sensitive ones the values as received. Wildcards become GLOB on
SQLite (case-sensitive, unlike its LIKE) and LIKE on PostgreSQL, where the folded columns
compare byte-wise (COLLATE "C"), so that both backends use their indexes for prefixes and
give the same answers. Extra main tags, ModalitiesInStudy and labels are `pk IN (subquery)`
filters, which both planners can run from an index on the subquery's side.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Select, String, Table, select

from pharos.dicom.matching import Constraint, Kind, glob_pattern, like_pattern
from pharos.index.base_search import FindQuery, SortKey, SortSource, TagFilter
from pharos.index.schema import (
    LEVEL_TABLES,
    extra_tags,
    folded,
    labels,
    resource_metadata,
    resources,
    series,
    studies,
)
from pharos.model.levels import Level


@functools.cache
def _alias(table: Table, name: str) -> Any:
    """A named alias of a table, built once: building one copies every column (a good part of
    a search's time), and a statement is the same whichever copy it uses."""
    return table.alias(name)


class FindStatement:
    """Builds the SELECT of resources (pk, level, public_id, parent_pk) for one query."""

    def __init__(self, query: FindQuery, dialect: str):
        self.query = query
        self.dialect = dialect
        self.level = query.level
        self.table = _alias(LEVEL_TABLES[query.level], "t")
        self.resource = _alias(resources, "r")
        self._from: FromClause = self.table.join(
            self.resource, self.resource.c.pk == self.table.c.pk
        )
        self._parents: dict[Level, Any] = {}
        self._reads_resources = False  # a parent level or LastUpdate: needs the join above

    def select(
        self, since: int = 0, limit: int | None = None, keys_only: bool = False
    ) -> Select[Any]:
        """(pk, level, public_id, parent_pk) of the matching resources, sorted; with
        `keys_only`, their pk alone, from the level table alone unless a constraint or the
        order reads the resources table (then a second statement fetches the rows by pk:
        PostgreSQL would rather hash-join a scan of all the resources to a thousand matches
        than look each one up)."""
        conditions = [self._filter(f) for f in self.query.filters]
        if self.query.modalities:
            conditions.append(self._modalities(self.query.modalities))
        conditions.extend(self._labels())
        order = [self._sort(key) for key in self.query.order]
        r = self.resource
        columns: tuple[Any, ...] = (r.c.pk, r.c.level, r.c.public_id, r.c.parent_pk)
        source = self._from
        if keys_only:
            columns = (self.table.c.pk,)
            source = self._from if self._reads_resources else self.table
        statement = (
            select(*columns)
            .select_from(source)
            .where(*conditions)
            .order_by(*order, self.table.c.pk)
        )
        if since > 0:
            statement = statement.offset(since)
        if limit is not None:
            statement = statement.limit(limit)
        return statement

    @property
    def from_clause(self) -> FromClause:
        return self._from

    # -- where the tags of a level are ------------------------------------------------------

    def source(self, level: Level) -> tuple[Any, ColumnElement[Any]]:
        """(table holding the main tags of `level` for this query, its resource pk)."""
        query_level = self.level
        if level is query_level or (query_level is Level.STUDY and level is Level.PATIENT):
            return self.table, self.table.c.pk
        if level is Level.PATIENT:
            level = Level.STUDY  # the study's copy of its patient's tags
        alias = self._parents.get(level)
        if alias is None:
            alias = self._join_parent(level)
        return alias, alias.c.pk

    def _join_parent(self, level: Level) -> Any:
        r = self.resource
        if level is Level.SERIES or (level is Level.STUDY and self.level is Level.SERIES):
            alias = _alias(LEVEL_TABLES[level], f"p{int(level)}")
            self._from = self._from.join(alias, alias.c.pk == r.c.parent_pk)
        else:  # the study of an instance: through the resource row of its series
            parent = _alias(resources, "rp")
            alias = _alias(studies, "p2")
            self._from = self._from.join(parent, parent.c.pk == r.c.parent_pk).join(
                alias, alias.c.pk == parent.c.parent_pk
            )
        self._parents[level] = alias
        self._reads_resources = True
        return alias

    # -- constraints -------------------------------------------------------------------------

    def _filter(self, tag_filter: TagFilter) -> ColumnElement[bool]:
        source, pk = self.source(tag_filter.level)
        constraint = tag_filter.constraint
        if tag_filter.column is not None:
            name = tag_filter.column
            column = source.c[name if constraint.case_sensitive else folded(name)]
            return self._match(column, constraint, folded_column=not constraint.case_sensitive)
        e = extra_tags.alias("e")
        value = e.c.value if constraint.case_sensitive else e.c.value_ci
        return pk.in_(
            select(e.c.resource_pk).where(
                e.c.tag == constraint.tag,
                self._match(value, constraint, folded_column=not constraint.case_sensitive),
            )
        )

    def _match(
        self, column: ColumnElement[Any], constraint: Constraint, folded_column: bool
    ) -> ColumnElement[bool]:
        kind = constraint.kind
        if kind is Kind.EQUAL:
            return column == constraint.value
        if kind is Kind.LIST:
            return column.in_(constraint.values)
        if kind in (Kind.AT_LEAST, Kind.AT_MOST):
            # The folded columns already compare byte-wise; the others may not on PostgreSQL.
            if self.dialect == "postgresql" and not folded_column:
                column = column.collate("C")
            if kind is Kind.AT_LEAST:
                return column >= constraint.value
            return column <= constraint.value
        if constraint.is_presence:
            return column.is_not(None)
        if self.dialect == "sqlite":
            return column.op("GLOB")(glob_pattern(constraint.value))
        return column.like(like_pattern(constraint.value), escape="\\")

    def _modalities(self, constraints: tuple[Constraint, ...]) -> ColumnElement[bool]:
        child = resources.alias("ms_r")
        item = series.alias("ms")
        conditions = []
        for constraint in constraints:
            name = "modality" if constraint.case_sensitive else folded("modality")
            conditions.append(
                self._match(item.c[name], constraint, folded_column=not constraint.case_sensitive)
            )
        return self.table.c.pk.in_(
            select(child.c.parent_pk)
            .select_from(child.join(item, item.c.pk == child.c.pk))
            .where(*conditions)
        )

    def _labels(self) -> list[ColumnElement[bool]]:
        wanted = sorted(set(self.query.labels))
        if not wanted:
            return []
        pk = self.table.c.pk
        mode = self.query.labels_mode.value
        if mode == "All":
            return [
                pk.in_(select(labels.c.resource_pk).where(labels.c.label == label))
                for label in wanted
            ]
        having = select(labels.c.resource_pk).where(labels.c.label.in_(wanted))
        return [pk.in_(having) if mode == "Any" else pk.not_in(having)]

    # -- order -------------------------------------------------------------------------------

    def _sort(self, key: SortKey) -> Any:
        expression: Any
        if key.source is SortSource.LAST_UPDATE:
            self._reads_resources = True
            expression = self.resource.c.updated_at
        elif key.source is SortSource.METADATA:
            m = resource_metadata.alias("sm")
            expression = self._text(
                select(m.c.value)
                .where(m.c.resource_pk == self.table.c.pk, m.c.type == key.key)
                .scalar_subquery()
            )
        elif key.source is SortSource.EXTRA_TAG:
            pk = self.source(key.level)[1]
            e = extra_tags.alias("se")
            expression = self._text(
                select(e.c.value).where(e.c.resource_pk == pk, e.c.tag == key.key).scalar_subquery()
            )
        else:
            expression = self.source(key.level)[0].c[str(key.key)]
            if isinstance(expression.type, String):  # numbers sort as numbers
                expression = self._text(expression)
        # NULL (no value) sorts first ascending, as SQLite does; said so for PostgreSQL.
        if key.descending:
            return expression.desc().nulls_last()
        return expression.asc().nulls_first()

    def _text(self, expression: Any) -> Any:
        """Text sorted byte-wise on both backends."""
        return expression.collate("C") if self.dialect == "postgresql" else expression
