"""The tables of web services: the Orthanc peers (OrthancPeersInDatabase, schema version 6)
and the DICOMweb servers (DicomWeb.ServersInDatabase, version 7), on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from pharos.index.migrations import migrate
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.schema import SCHEMA_VERSION, dicomweb_servers, peers, properties
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from tests.index.test_migrations import engine, version_of  # noqa: F401 - fixture


@pytest.fixture
def index(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SqlIndex]:
    opened: SqlIndex
    if backend == "sqlite":
        opened = open_sqlite_index(tmp_path)
    else:
        section = request.getfixturevalue("postgres_databases").create()
        opened = open_postgres_index(postgres_url(section), 2)
    yield opened
    opened.close()


@pytest.mark.parametrize("table", ["stored_peers", "stored_dicomweb_servers"])
def test_put_get_replace_delete(index: SqlIndex, table: str) -> None:
    stored = getattr(index, table)
    assert stored.stored_services() == {}
    stored.put_service("b", '{"Url": "http://b/"}')
    stored.put_service("a", '{"Url": "http://a/"}')
    stored.put_service("b", '{"Url": "http://b2/"}')  # an upsert, not a duplicate key
    assert stored.stored_services() == {"a": '{"Url": "http://a/"}', "b": '{"Url": "http://b2/"}'}
    assert list(stored.stored_services()) == ["a", "b"]
    assert stored.stored_service("b") == '{"Url": "http://b2/"}'
    assert stored.stored_service("nope") is None
    assert stored.delete_service("b") is True
    assert stored.delete_service("b") is False
    assert list(stored.stored_services()) == ["a"]


def test_the_two_tables_are_apart(index: SqlIndex) -> None:
    index.stored_peers.put_service("same", '{"Url": "http://peer/"}')
    index.stored_dicomweb_servers.put_service("same", '{"Url": "http://dicomweb/"}')
    assert index.stored_peers.stored_service("same") == '{"Url": "http://peer/"}'
    assert index.stored_dicomweb_servers.delete_service("same") is True
    assert list(index.stored_peers.stored_services()) == ["same"]


def test_version_5_database_gains_the_peers_table(engine) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert SCHEMA_VERSION >= 6
    with engine.begin() as conn:
        migrate(conn)
        peers.drop(conn)
        conn.execute(properties.update().values(value="5"))
    assert not inspect(engine).has_table("peers")
    with engine.begin() as conn:
        assert migrate(conn) == SCHEMA_VERSION
    assert inspect(engine).has_table("peers")
    assert version_of(engine) == SCHEMA_VERSION
    with engine.begin() as conn:
        conn.execute(peers.insert().values(name="a", definition="{}"))


def test_version_6_database_gains_the_dicomweb_servers_table(engine) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert SCHEMA_VERSION >= 7
    with engine.begin() as conn:
        migrate(conn)
        dicomweb_servers.drop(conn)
        conn.execute(properties.update().values(value="6"))
    assert not inspect(engine).has_table("dicomweb_servers")
    with engine.begin() as conn:
        assert migrate(conn) == SCHEMA_VERSION
    assert inspect(engine).has_table("dicomweb_servers")
    assert version_of(engine) == SCHEMA_VERSION
