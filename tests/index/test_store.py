"""The set-wise store transaction, called with batches as the SQLite writer does."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pharos.index.base import StoreStatus
from pharos.index.sql import SqlIndex
from pharos.index.store import StoreRequest, store_instances
from pharos.model.changes import ChangeType
from pharos.model.levels import Level

from .test_sql import index, new_instance

__all__ = ["index"]


def run_batch(index: SqlIndex, requests: list[StoreRequest]) -> list[StoreStatus]:
    stmts = index._stmts  # the statements the index built for its dialect
    outcomes = index._write(lambda conn: store_instances(conn, stmts, requests))
    return [outcome.status for outcome in outcomes]


def test_a_batch_with_repeats_new_parents_and_two_series(index: SqlIndex) -> None:
    waited: list[str] = []
    requests = [
        StoreRequest(
            new_instance("1.1", series="9.1", number=1), False, lambda: waited.append("a")
        ),
        StoreRequest(
            new_instance("1.1", series="9.1", number=1), False, lambda: waited.append("x")
        ),
        StoreRequest(
            new_instance("1.2", series="9.2", number=1), False, lambda: waited.append("b")
        ),
        StoreRequest(
            new_instance("1.3", series="9.1", number=2), False, lambda: waited.append("c")
        ),
    ]
    statuses = run_batch(index, requests)
    assert statuses == [
        StoreStatus.SUCCESS,
        StoreStatus.ALREADY_STORED,
        StoreStatus.SUCCESS,
        StoreStatus.SUCCESS,
    ]
    assert waited == ["a", "b", "c"]  # the repeat stored nothing, so waits for nothing
    stats = index.statistics()
    assert (stats.patients, stats.studies, stats.series, stats.instances) == (1, 1, 2, 3)
    kinds = [(c.change_type, c.level) for c in index.changes(0, 100)[0]]
    assert kinds == [
        (ChangeType.NEW_INSTANCE, Level.INSTANCE),
        (ChangeType.NEW_SERIES, Level.SERIES),
        (ChangeType.NEW_STUDY, Level.STUDY),
        (ChangeType.NEW_PATIENT, Level.PATIENT),
        (ChangeType.NEW_INSTANCE, Level.INSTANCE),
        (ChangeType.NEW_SERIES, Level.SERIES),
        (ChangeType.NEW_INSTANCE, Level.INSTANCE),
    ]
    study = index.list_resources(Level.STUDY, 0, None)[0]
    assert len(study.children) == 2
    series = {info.ref.public_id: info for info in index.list_resources(Level.SERIES, 0, None)}
    assert sorted(len(info.children) for info in series.values()) == [1, 2]


def test_a_batch_completing_a_series_logs_it_once(index: SqlIndex) -> None:
    requests = [
        StoreRequest(new_instance(f"1.{n}", number=n, expected=3), False) for n in (1, 2, 3)
    ]
    assert run_batch(index, requests) == [StoreStatus.SUCCESS] * 3
    kinds = [c.change_type for c in index.changes(0, 100)[0]]
    assert kinds.count(ChangeType.COMPLETED_SERIES) == 1
    assert kinds[-1] is ChangeType.COMPLETED_SERIES


def test_a_failing_wait_fails_the_transaction(index: SqlIndex) -> None:
    def broken() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        run_batch(index, [StoreRequest(new_instance("1.1"), False, broken)])
    assert index.statistics().instances == 0
    assert index.changes(0, 100)[0] == []


def test_sqlite_writer_merges_concurrent_stores(tmp_path: Path) -> None:
    """Stores queued while the writer is busy share one transaction, with separate outcomes."""
    import threading

    from pharos.index.sqlite import open_sqlite_index

    opened = open_sqlite_index(tmp_path)
    try:
        gate = threading.Event()
        results: dict[str, StoreStatus] = {}

        def block(conn: object) -> None:
            gate.wait(5)

        blocker = threading.Thread(target=opened._write, args=(block,))
        blocker.start()

        def store(sop: str) -> None:
            results[sop] = opened.store_instance(new_instance(sop), False).status

        threads = [threading.Thread(target=store, args=(f"1.{n}",)) for n in range(5)]
        threads.append(threading.Thread(target=store, args=("1.0",)))  # a repeat
        for thread in threads:
            thread.start()
        gate.set()
        for thread in [blocker, *threads]:
            thread.join()
        assert sorted(results) == [f"1.{n}" for n in range(5)]
        assert opened.statistics().instances == 5
    finally:
        opened.close()


def test_a_busy_sqlite_writer_does_not_wait_for_files(tmp_path: Path) -> None:
    """While the single writer has work, a store waits for its file before queueing (so the
    writer never waits on a file); while it is idle, the writer waits, and the statements
    run meanwhile. Either way the file is waited for before the commit."""
    import threading

    from pharos.index.sqlite import open_sqlite_index

    opened = open_sqlite_index(tmp_path)
    try:
        waited_in: list[str] = []

        def wait_for_file() -> None:
            waited_in.append(threading.current_thread().name)

        opened.store_instance(new_instance("1.1"), False, wait_for_file)
        assert waited_in == ["pharos-sqlite-writer"]

        gate = threading.Event()

        def wait_and_open_the_gate() -> None:
            wait_for_file()
            gate.set()  # had the writer waited for this file, it would have waited 5 s

        blocker = threading.Thread(target=opened._write, args=(lambda conn: gate.wait(5),))
        blocker.start()
        busy = opened._writer_busy
        assert busy is not None
        while not busy():
            time.sleep(0.001)
        opened.store_instance(new_instance("1.2"), False, wait_and_open_the_gate)
        blocker.join()
        assert waited_in[1] == threading.current_thread().name
        assert opened.statistics().instances == 2
    finally:
        opened.close()
