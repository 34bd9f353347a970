"""The PostgreSQL section of the configuration, as Orthanc's PostgreSQL plugin reads it, and
the pooled connections: idle ones checked before use, reads in autocommit."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from pharos.index import postgres
from pharos.index.base_search import FindQuery
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.schema import peers
from pharos.index.sql import SqlIndex
from pharos.model.levels import Level
from tests.conftest import PG_ADMIN


def test_url_from_the_fields() -> None:
    url = postgres_url(
        {"Host": "db", "Port": 5433, "Database": "pacs", "Username": "u", "Password": "p"}
    )
    assert url.drivername == "postgresql+psycopg"
    assert (url.host, url.port, url.database, url.username, url.password) == (
        "db",
        5433,
        "pacs",
        "u",
        "p",
    )
    assert "sslmode" not in url.query


def test_ssl_and_empty_password() -> None:
    url = postgres_url({"Host": "db", "Database": "pacs", "Password": "", "EnableSsl": True})
    assert url.password is None and url.port == 5432
    assert url.query["sslmode"] == "require"


def test_connection_uri_wins() -> None:
    url = postgres_url(
        {"Host": "ignored", "ConnectionUri": "postgres://a:b@h:6000/x?sslmode=disable"}
    )
    assert (url.host, url.port, url.database, url.username) == ("h", 6000, "x", "a")
    assert url.drivername == "postgresql+psycopg"
    assert url.query["sslmode"] == "disable"


# -- connections ------------------------------------------------------------------------------


@pytest.fixture
def index(postgres_databases: Any) -> Iterator[SqlIndex]:
    opened = open_postgres_index(postgres_url(postgres_databases.create()), 2)
    yield opened
    opened.close()


def _terminate_connections(index: SqlIndex) -> int:
    database = index._read_engine.url.database
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        return len(
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            ).fetchall()
        )


def test_idle_connections_lost_are_replaced_before_use(
    index: SqlIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert index.lookup("nope") is None
    assert index.list_public_ids(Level.STUDY, 0, None) == []
    assert _terminate_connections(index) >= 1  # as a server restart would
    monkeypatch.setattr(postgres, "PING_AFTER_IDLE", 0.0)
    assert index.lookup("nope") is None
    assert index.list_public_ids(Level.STUDY, 0, None) == []
    index.stored_peers.put_service("a", "{}")  # a write works too
    assert list(index.stored_peers.stored_services()) == ["a"]


def test_reads_leave_pooled_connections_transactional(index: SqlIndex) -> None:
    """Reads run in autocommit on the shared pool; the writes after them still commit or
    roll back as a whole, and searches leave the prepared-statement threshold as it was."""
    assert index.lookup("nope") is None
    assert index.list_public_ids(Level.STUDY, 0, None) == []
    index.find(FindQuery(Level.STUDY))
    raw = index._read_engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        assert driver.autocommit is False
        assert driver.prepare_threshold == 5  # psycopg's default
    finally:
        raw.close()

    def half_done(conn: Any) -> None:
        index.stored_peers.put_service("half", "{}")  # its own transaction: kept
        conn.execute(peers.insert().values(name="rolled-back", definition="{}"))
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        index._write(half_done)
    assert list(index.stored_peers.stored_services()) == ["half"]
