"""SQLite: one writer thread that group-commits, pooled readers (WAL)."""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.pool import QueuePool

from pharos.index.migrations import migrate
from pharos.index.sql import SqlIndex

log = logging.getLogger(__name__)

T = TypeVar("T")

# Work waiting for the writer is committed together: one fsync for many stores.
_MAX_BATCH = 64


def create_sqlite_engines(path: Path) -> tuple[Engine, Engine]:
    """(writer, readers) engines on one database file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    url = f"sqlite+pysqlite:///{path}"
    writer = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0)
    readers = create_engine(url, poolclass=QueuePool, pool_size=8, max_overflow=8)
    _configure(writer, begin="BEGIN IMMEDIATE")
    _configure(readers, begin="BEGIN")
    return writer, readers


def _configure(engine: Engine, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # SQLAlchemy drives transactions itself (see "begin" below), not the sqlite3 module.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk when it returns; acknowledged data is never lost.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # On the driver's connection: through SQLAlchemy's execution path, this one
        # statement took a tenth of the CPU time of a store.
        driver = conn.connection.driver_connection
        assert driver is not None  # a connection being begun is open
        driver.execute(begin)


class SqliteWriter:
    """Runs write transactions on one thread; work queued meanwhile shares one commit (and
    so one fsync of the write-ahead log)."""

    def __init__(self, engine: Engine):
        self._engine = engine
        self._queue: queue.SimpleQueue[tuple[Callable[[Connection], Any], Future[Any]] | None] = (
            queue.SimpleQueue()
        )
        self._working = False  # a batch is running
        self._thread = threading.Thread(target=self._run, name="pharos-sqlite-writer", daemon=True)
        self._thread.start()

    def busy(self) -> bool:
        """Whether work is running or queued (read without a lock: a hint, not a promise)."""
        return self._working or not self._queue.empty()

    def run(self, work: Callable[[Connection], T]) -> T:
        future: Future[T] = Future()
        self._queue.put((work, future))
        return future.result()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._engine.dispose()

    def _run(self) -> None:
        conn: Connection | None = None
        while True:
            item = self._queue.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < _MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(more)
            try:
                if conn is None or conn.invalidated:
                    conn = self._engine.connect()
            except Exception as exc:
                for _work, future in batch:
                    future.set_exception(exc)
                continue
            self._working = True
            self._commit_batch(conn, batch)
            self._working = False
        if conn is not None:
            conn.close()

    def _commit_batch(
        self, conn: Connection, batch: list[tuple[Callable[[Connection], Any], Future[Any]]]
    ) -> None:
        """All the work of the batch in one transaction, committed once. If any piece fails,
        the batch is rolled back and each piece runs again alone, so that one failure does
        not fail the others (rare: it costs a second pass, not a SAVEPOINT per piece)."""
        if len(batch) > 1:
            try:
                with conn.begin():
                    results = _run_merged(conn, [work for work, _future in batch])
            except Exception:
                pass
            else:
                for (_work, future), result in zip(batch, results, strict=True):
                    future.set_result(result)
                return
        for work, future in batch:
            try:
                with conn.begin():
                    result = work(conn)
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(result)


def _run_merged(conn: Connection, works: list[Callable[[Connection], Any]]) -> list[Any]:
    """Run the works in order; consecutive works of a class with a `run_batch` static method
    (the store) run as one set-wise call."""
    results: list[Any] = []
    i = 0
    while i < len(works):
        run_batch = getattr(type(works[i]), "run_batch", None)
        j = i + 1
        if run_batch is None:
            results.append(works[i](conn))
        else:
            while j < len(works) and type(works[j]) is type(works[i]):
                j += 1
            results.extend(run_batch(conn, works[i:j]))
        i = j
    return results


def open_sqlite_index(directory: Path) -> SqlIndex:
    """The embedded default: `index.db` (SQLite, WAL) in `directory`."""
    path = Path(directory).resolve() / "index.db"
    writer_engine, read_engine = create_sqlite_engines(path)
    writer = SqliteWriter(writer_engine)
    writer.run(migrate)

    def close() -> None:
        writer.close()
        read_engine.dispose()

    return SqlIndex(
        read_engine=read_engine,
        run_write=writer.run,
        writer_busy=writer.busy,
        description=f"SQLite {sqlite3.sqlite_version} at {path}",
        on_close=close,
    )
