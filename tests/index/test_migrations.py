"""Schema creation and upgrades, on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select

from pharos.index.migrations import VERSION_PROPERTY, migrate
from pharos.index.postgres import postgres_url
from pharos.index.schema import SCHEMA_VERSION, labels, properties
from pharos.model.errors import PharosError


@pytest.fixture
def engine(backend: str, tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'index.db'}"
    else:
        section = request.getfixturevalue("postgres_databases").create()
        url = postgres_url(section)  # type: ignore[assignment]
    created = create_engine(url)
    yield created
    created.dispose()


def version_of(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        return int(
            conn.execute(
                select(properties.c.value).where(properties.c.name == VERSION_PROPERTY)
            ).scalar_one()
        )


def test_new_database_gets_the_current_schema(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        assert migrate(conn) == SCHEMA_VERSION
    assert version_of(engine) == SCHEMA_VERSION
    with engine.begin() as conn:  # a second start changes nothing
        assert migrate(conn) == SCHEMA_VERSION


def test_version_1_database_gains_the_labels_table(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        migrate(conn)
        labels.drop(conn)
        conn.execute(properties.update().values(value="1"))
    with engine.begin() as conn:
        assert migrate(conn) == SCHEMA_VERSION
    assert inspect(engine).has_table("labels")
    assert version_of(engine) == SCHEMA_VERSION


def test_a_newer_database_is_refused(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        migrate(conn)
        conn.execute(properties.update().values(value=str(SCHEMA_VERSION + 1)))
    with pytest.raises(PharosError), engine.begin() as conn:
        migrate(conn)
