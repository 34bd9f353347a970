"""Schema creation and numbered migrations.

A new database gets the current schema in one go. An existing one is brought up to date by
running, in order, the migration steps above its recorded version. On PostgreSQL an advisory
lock makes concurrent start-ups of several Pharos processes wait for each other.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, inspect, select, text

from pharos.index.schema import SCHEMA_VERSION, labels, metadata, properties
from pharos.model.errors import ErrorCode, PharosError

VERSION_PROPERTY = "SchemaVersion"
_ADVISORY_LOCK_KEY = 0x50484152  # "PHAR"


def _add_labels(conn: Connection) -> None:
    labels.create(conn)


# MIGRATIONS[n] upgrades a database from version n to n + 1.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {
    1: _add_labels,
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
