"""PostgreSQL: pooled connections, each write transaction retried on concurrency conflicts."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError

from pharos.index.base import ConcurrentChange
from pharos.index.migrations import migrate
from pharos.index.schema import metadata
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


# A pooled connection idle for longer is checked before use (one round trip).
PING_AFTER_IDLE = 5.0


def create_postgres_engine(url: URL, pool_size: int) -> Engine:
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        isolation_level="READ COMMITTED",
    )
    # SQLAlchemy's pool_pre_ping would ping at every checkout: a round trip per transaction,
    # a tenth of a QIDO-RS search's time. Connections die while idle (a server restart, a
    # proxy's idle timeout), so those idle for a while are pinged; one that fails is
    # replaced before use (DisconnectionError: the pool connects again).
    event.listen(engine, "checkin", _returned)
    event.listen(engine, "checkout", _ping_if_idle)
    return engine


def _returned(dbapi_connection: Any, record: Any) -> None:
    record.info["returned"] = time.monotonic()


def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    returned = record.info.get("returned")
    if returned is None or time.monotonic() - returned < PING_AFTER_IDLE:
        return
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        if not dbapi_connection.autocommit:
            dbapi_connection.rollback()
    except psycopg.Error as exc:
        raise DisconnectionError(f"idle PostgreSQL connection lost: {exc}") from exc


def read_only_engine(engine: Engine) -> Engine:
    """The engine for reads: the same pool, in autocommit. Reads in READ COMMITTED see a new
    snapshot per statement anyway, so a transaction around them only adds BEGIN and COMMIT,
    two round trips."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


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


class PlannerStatistics:
    """Keeps the planner's statistics of the index tables fresh, as autovacuum would: it may be
    off, or lag behind a bulk load, and without statistics the planner guesses row counts
    (e.g. thousands of children per resource) and scans whole tables instead of using the
    indexes. Every `CHECK_EVERY` writes (and once at start), a background thread ANALYZEs
    the tables never analyzed, or changed by more than `ROWS` + `FRACTION` of their rows
    since (autovacuum's rule with coarser defaults than its 50 + 10 %: during a bulk load
    each table is analyzed ~6 times per tenfold growth, ~1 s in all at 100,000 instances)."""

    CHECK_EVERY = 500
    ROWS = 1000
    FRACTION = 0.5

    def __init__(self, engine: Engine, tables: list[str]):
        self._engine = engine
        self._tables = tables
        self._writes = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failed = False

    def wrote(self) -> None:
        self._writes += 1  # approximate under concurrency, which is fine
        if self._writes % self.CHECK_EVERY == 0:
            self.check_soon()

    def check_soon(self) -> None:
        with self._lock:
            if self._failed or (self._thread is not None and self._thread.is_alive()):
                return
            self._thread = threading.Thread(
                target=self._check, name="pharos-pg-analyze", daemon=True
            )
            self._thread.start()

    def close(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join()

    def _check(self) -> None:
        try:
            with self._engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                # reltuples < 0: never analyzed (the change counters may have been reset since:
                # they are not kept by a crash, pg_stat_reset() or CREATE DATABASE ... TEMPLATE).
                rows = conn.execute(
                    text(
                        "SELECT s.relname, s.n_mod_since_analyze, c.reltuples, "
                        "pg_relation_size(s.relid) > 0 "
                        "FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid "
                        "WHERE s.schemaname = current_schema() AND s.relname = ANY(:tables)"
                    ),
                    {"tables": self._tables},
                ).all()
                for name, changed, tuples, stored in rows:
                    if (tuples < 0 and stored) or changed > self.ROWS + self.FRACTION * tuples:
                        conn.exec_driver_sql(f'ANALYZE "{name}"')
        except Exception as exc:  # never fatal: only the speed of searches depends on it
            self._failed = True
            log.warning("Cannot refresh the planner statistics of the index (%s)", exc)


def open_postgres_index(url: URL, pool_size: int = 8) -> SqlIndex:
    """An index in a PostgreSQL database, safe to share between several Pharos processes."""
    engine = create_postgres_engine(url, pool_size)
    run_with_retry(engine, migrate)
    statistics = PlannerStatistics(engine, [table.name for table in metadata.sorted_tables])
    statistics.check_soon()

    def run_write(work: Callable[[Connection], T]) -> T:
        result = run_with_retry(engine, work)
        statistics.wrote()
        return result

    def close() -> None:
        statistics.close()
        engine.dispose()

    return SqlIndex(
        read_engine=read_only_engine(engine),
        run_write=run_write,
        description=f"PostgreSQL at {url.render_as_string(hide_password=True)}",
        on_close=close,
    )
