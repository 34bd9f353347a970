"""PostgreSQL: pooled connections, each write transaction retried on concurrency conflicts."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from pharos.index.base import ConcurrentChange
from pharos.index.migrations import migrate
from pharos.index.sql import SqlIndex

log = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATEs after which the whole transaction can simply run again: serialization failure,
# deadlock, and the constraint violations that a concurrent writer can cause between our
# reads and our writes (e.g. a parent deleted by another process while we add a child).
_RETRYABLE = {"40001", "40P01", "23503", "23505"}
MAX_ATTEMPTS = 20


def postgres_url(section: Mapping[str, Any]) -> URL:
    """The URL for Orthanc's `PostgreSQL` configuration section (ConnectionUri wins)."""
    uri = section.get("ConnectionUri")
    if uri:
        url = make_url(str(uri).replace("postgres://", "postgresql://", 1))
        return url.set(drivername="postgresql+psycopg")
    query = {"sslmode": "require"} if section.get("EnableSsl") else {}
    return URL.create(
        "postgresql+psycopg",
        username=section.get("Username"),
        password=section.get("Password") or None,
        host=section.get("Host"),
        port=int(section.get("Port") or 5432),
        database=section.get("Database"),
        query=query,
    )


def create_postgres_engine(url: URL, pool_size: int) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        isolation_level="READ COMMITTED",
    )


def run_with_retry(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run `work` in a transaction, again from the start when a concurrent writer interfered."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with engine.begin() as conn:
                return work(conn)
        except (DBAPIError, psycopg.Error) as exc:
            # Raw psycopg errors come from statements run on the DBAPI cursor (compiled.py).
            original = exc.orig if isinstance(exc, DBAPIError) else exc
            state = getattr(original, "sqlstate", None)
            if state not in _RETRYABLE or attempt == MAX_ATTEMPTS:
                raise
            log.debug("retrying a transaction after SQLSTATE %s (attempt %d)", state, attempt)
            time.sleep(random.uniform(0, 0.005 * attempt))
        except ConcurrentChange:
            if attempt == MAX_ATTEMPTS:
                raise
            time.sleep(random.uniform(0, 0.005 * attempt))
    raise AssertionError("unreachable")


def open_postgres_index(url: URL, pool_size: int = 8) -> SqlIndex:
    """An index in a PostgreSQL database, safe to share between several Pharos processes."""
    engine = create_postgres_engine(url, pool_size)
    run_with_retry(engine, migrate)
    return SqlIndex(
        read_engine=engine,
        run_write=lambda work: run_with_retry(engine, work),
        description=f"PostgreSQL at {url.render_as_string(hide_password=True)}",
        on_close=engine.dispose,
    )
