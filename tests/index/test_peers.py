"""The peers table (OrthancPeersInDatabase, schema version 6), on both backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import inspect

from pharos.index.migrations import migrate
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.schema import SCHEMA_VERSION, peers, properties
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


def test_put_get_replace_delete(index: SqlIndex) -> None:
    assert index.stored_peers() == {}
    index.put_peer("b", '{"Url": "http://b/"}')
    index.put_peer("a", '{"Url": "http://a/"}')
    index.put_peer("b", '{"Url": "http://b2/"}')  # an upsert, not a duplicate key
    assert index.stored_peers() == {"a": '{"Url": "http://a/"}', "b": '{"Url": "http://b2/"}'}
    assert list(index.stored_peers()) == ["a", "b"]
    assert index.stored_peer("b") == '{"Url": "http://b2/"}'
    assert index.stored_peer("nope") is None
    assert index.delete_peer("b") is True
    assert index.delete_peer("b") is False
    assert list(index.stored_peers()) == ["a"]


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
