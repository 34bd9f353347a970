"""Schema creation and numbered migrations.

A new database gets the current schema in one go. An existing one is brought up to date by
running, in order, the migration steps above its recorded version. On PostgreSQL an advisory
lock makes concurrent start-ups of several Pharos processes wait for each other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Column, Connection, Table, bindparam, inspect, select, text, update

from pharos.dicom.matching import fold
from pharos.index.schema import (
    LEVEL_TABLES,
    SCHEMA_VERSION,
    SEARCH_INDEXES,
    dicomweb_servers,
    extra_tags,
    folded,
    jobs,
    labels,
    metadata,
    modalities,
    peers,
    properties,
)
from pharos.model.errors import ErrorCode, PharosError

log = logging.getLogger(__name__)

VERSION_PROPERTY = "SchemaVersion"
_ADVISORY_LOCK_KEY = 0x50484152  # "PHAR"


def _add_labels(conn: Connection) -> None:
    labels.create(conn)


_FILL_CHUNK = 2000


def _add_search_columns(conn: Connection) -> None:
    """Version 3: the folded twins of the main tag columns (filled from the stored values),
    their search indexes, and the table of the extra main tags."""
    for table in LEVEL_TABLES.values():
        existing = {column["name"] for column in inspect(conn).get_columns(table.name)}
        added = [
            column
            for column in table.columns
            if column.name.endswith("_ci") and column.name not in existing
        ]
        for column in added:
            _add_column(conn, table, column)
        _fill_folded(conn, table, [column.name for column in added])
    extra_tags.create(conn, checkfirst=True)
    for index in SEARCH_INDEXES:
        index.create(conn, checkfirst=True)


def _add_column(conn: Connection, table: Table, column: Column[Any]) -> None:
    preparer = conn.dialect.identifier_preparer
    kind = column.type.compile(dialect=conn.dialect)
    conn.execute(
        text(
            f"ALTER TABLE {preparer.format_table(table)} "
            f"ADD COLUMN {preparer.format_column(column)} {kind}"
        )
    )


def _fill_folded(conn: Connection, table: Table, names: list[str]) -> None:
    """Set each new folded column from its raw twin, in chunks of rows (in Python: SQL's
    upper() differs between backends and from Orthanc's rule)."""
    if not names:
        return
    raw = [name.removesuffix("_ci") for name in names]
    statement = (
        update(table)
        .where(table.c.pk == bindparam("pk_"))
        .values({name: bindparam(name + "_") for name in names})
    )
    last, done = -1, 0
    while True:
        rows = conn.execute(
            select(table.c.pk, *[table.c[name] for name in raw])
            .where(table.c.pk > last)
            .order_by(table.c.pk)
            .limit(_FILL_CHUNK)
        ).all()
        if not rows:
            break
        conn.execute(
            statement,
            [
                {
                    "pk_": row[0],
                    **{
                        folded(name) + "_": None if value is None else fold(value)
                        for name, value in zip(raw, row[1:], strict=True)
                    },
                }
                for row in rows
            ],
        )
        last = rows[-1][0]
        done += len(rows)
    if done:
        log.warning("Schema upgrade: folded the main tags of %d %s", done, table.name)


def _add_modalities(conn: Connection) -> None:
    """Version 4: the modalities of DicomModalitiesInDatabase."""
    modalities.create(conn, checkfirst=True)


def _add_jobs(conn: Connection) -> None:
    """Version 5: the jobs saved by the jobs engine (SaveJobs)."""
    jobs.create(conn, checkfirst=True)


def _add_peers(conn: Connection) -> None:
    """Version 6: the Orthanc peers of OrthancPeersInDatabase."""
    peers.create(conn, checkfirst=True)


def _add_dicomweb_servers(conn: Connection) -> None:
    """Version 7: the DICOMweb servers of DicomWeb.ServersInDatabase."""
    dicomweb_servers.create(conn, checkfirst=True)


# MIGRATIONS[n] upgrades a database from version n to n + 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _add_labels,
    2: _add_search_columns,
    3: _add_modalities,
    4: _add_jobs,
    5: _add_peers,
    6: _add_dicomweb_servers,
}


def migrate(conn: Connection) -> int:
    """Create or upgrade the schema inside the caller's transaction; returns the version."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_LOCK_KEY})
    if not inspect(conn).has_table(properties.name):
        metadata.create_all(conn)
        _set_version(conn, SCHEMA_VERSION)
        return SCHEMA_VERSION
    version = int(
        conn.execute(
            select(properties.c.value).where(properties.c.name == VERSION_PROPERTY)
        ).scalar_one()
    )
    if version > SCHEMA_VERSION:
        raise PharosError(
            ErrorCode.INCOMPATIBLE_DATABASE_VERSION,
            f"The index has schema version {version}; this Pharos knows up to {SCHEMA_VERSION}. "
            "Upgrade Pharos.",
        )
    while version < SCHEMA_VERSION:
        MIGRATIONS[version](conn)
        version += 1
        _set_version(conn, version)
    return version


def _set_version(conn: Connection, version: int) -> None:
    conn.execute(properties.delete().where(properties.c.name == VERSION_PROPERTY))
    conn.execute(properties.insert().values(name=VERSION_PROPERTY, value=str(version)))
