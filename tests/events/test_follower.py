"""The change-log follower on a real index (SQLite and PostgreSQL): every committed change
published in order, a failing sink retried without loss, durable cursors, one publisher per
sink among processes (leases), gaps of uncommitted or rolled-back changes on PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from pharos.events.follower import EventFollower, SinkFollower
from pharos.index.base import Reception
from pharos.index.postgres import create_postgres_engine, open_postgres_index, postgres_url
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.services.options import ServiceOptions
from pharos.services.store import StoreService
from pharos.storage.filesystem import FileSystemStorage
from tests.dicomgen import make_dicom

REST = Reception(origin="RestApi")


class Recorder:
    """A sink remembering what it was given; fails its first `failures` publishes."""

    def __init__(self, name: str = "recorder", failures: int = 0) -> None:
        self.name = name
        self.failures = failures
        self.attempts = 0
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def publish(self, events: list[dict[str, Any]]) -> None:
        with self.lock:
            self.attempts += 1
            if self.failures:
                self.failures -= 1
                raise ConnectionError("broker down")
            self.events.extend(events)

    def seqs(self) -> list[int]:
        with self.lock:
            return [int(event["Seq"]) for event in self.events]


class World:
    def __init__(self, index: SqlIndex, open_again: Callable[[], SqlIndex], tmp_path: Path):
        self.index = index
        self.open_again = open_again
        self.store = StoreService(
            index, FileSystemStorage(tmp_path / "files", fsync=False), ServiceOptions(), None
        )
        self.count = 0

    def add(self, instances: int = 1) -> None:
        for _ in range(instances):
            self.count += 1
            self.store.store(make_dicom(PatientID=f"P{self.count}"), REST)

    def all_seqs(self) -> list[int]:
        changes, _ = self.index.changes(0, 10_000)
        return [change.seq for change in changes]


@pytest.fixture
def world(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    opened: list[SqlIndex] = []
    if backend == "sqlite":

        def open_index() -> SqlIndex:
            opened.append(open_sqlite_index(tmp_path))
            return opened[-1]
    else:
        section = request.getfixturevalue("postgres_databases").create()

        def open_index() -> SqlIndex:
            opened.append(open_postgres_index(postgres_url(section), 2))
            return opened[-1]

    made = World(open_index(), open_index, tmp_path)
    yield made
    made.store.close()
    for index in opened:
        index.close()


def drain(follower: SinkFollower) -> int:
    total = 0
    while published := follower.step():
        total += published
    return total


def test_every_change_published_in_order_from_the_sink_start(world: World) -> None:
    world.add()  # before the sink existed: not published
    before = world.all_seqs()
    sink = Recorder()
    follower = SinkFollower(world.index, sink, "me", batch=3)  # several batches
    assert follower.step() == 0  # creates the cursor at the last change
    world.add(2)
    assert drain(follower) == 8  # 4 changes per new patient
    assert sink.seqs() == [seq for seq in world.all_seqs() if seq not in before]
    assert [event["ChangeType"] for event in sink.events[:4]] == [
        "NewInstance",
        "NewSeries",
        "NewStudy",
        "NewPatient",
    ]
    assert set(sink.events[0]) == {"ChangeType", "Date", "ID", "Path", "ResourceType", "Seq"}
    cursor = world.index.event_cursor("recorder")
    assert cursor is not None and cursor.seq == world.all_seqs()[-1]


def test_a_failing_sink_is_retried_and_nothing_is_lost_or_repeated(world: World) -> None:
    sink = Recorder(failures=2)
    follower = EventFollower(world.index, [sink], period=0.01, backoff=(0.01, 0.05))
    follower.start()
    try:
        world.add(2)
        deadline = time.monotonic() + 30
        while len(sink.seqs()) < 8:
            assert time.monotonic() < deadline, f"published {sink.seqs()}"
            time.sleep(0.02)
    finally:
        follower.stop()
    assert sink.attempts >= 3
    assert sink.seqs() == world.all_seqs()  # in order, each once (failures publish nothing)


def test_the_cursor_survives_a_restart(world: World) -> None:
    first = Recorder()
    follower = EventFollower(world.index, [first], owner="first")
    follower.start()
    follower.stop()  # the cursor exists: everything after it is for this sink
    world.add()
    assert drain(follower.followers[0]) == 4
    follower.stop()  # releases the lease
    world.add()  # committed while "the server is down"
    second = Recorder()
    restarted = SinkFollower(world.open_again(), second, "second")
    assert drain(restarted) == 4
    assert first.seqs() + second.seqs() == world.all_seqs()


def test_one_process_publishes_a_sink_at_a_time(world: World) -> None:
    other_index = world.open_again()  # another process: its own connections
    mine, theirs = Recorder(), Recorder()
    me = SinkFollower(world.index, mine, "me", lease=60)
    them = SinkFollower(other_index, theirs, "them", lease=60)
    assert me.step() == 0  # takes the lease
    world.add()
    assert them.step() == 0 and theirs.events == []
    assert drain(me) == 4
    world.add()
    world.index.release_event_cursor("recorder", "me")  # a clean stop
    assert drain(them) == 4
    assert me.step() == 0  # now theirs
    assert mine.seqs() + theirs.seqs() == world.all_seqs()


def test_an_expired_lease_is_taken_over(world: World) -> None:
    mine, theirs = Recorder(), Recorder()
    me = SinkFollower(world.index, mine, "me", lease=0.2)
    them = SinkFollower(world.index, theirs, "them", lease=0.2)
    assert me.step() == 0
    world.add()
    time.sleep(0.3)  # "me" crashed: its lease runs out
    assert drain(them) == 4
    assert theirs.seqs() == world.all_seqs()
    # "me" coming back cannot move the cursor it no longer holds.
    assert not world.index.advance_event_cursor("recorder", "me", 0, time.time(), 1)


def test_sinks_are_independent_and_names_unique(world: World) -> None:
    down, up = Recorder("down", failures=1000), Recorder("up")
    twin = Recorder("up")
    follower = EventFollower(
        world.index, [down, up, twin], period=0.01, backoff=(0.01, 0.02), owner="me"
    )
    assert [f.name for f in follower.followers] == ["down", "up"]
    follower.start()
    try:
        world.add()
        deadline = time.monotonic() + 30
        while len(up.seqs()) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        follower.stop()
    assert down.events == [] and twin.events == []
    cursor = world.index.event_cursor("down")
    assert cursor is not None and cursor.seq == 0  # nothing published: nothing skipped
    assert cursor.lease_until == 0  # released at stop


def test_a_sink_name_too_long_for_a_cursor_is_left_out(world: World) -> None:
    follower = EventFollower(world.index, [Recorder("x" * 100)])
    follower.start()
    follower.stop()
    assert follower._threads == []


def test_a_cleared_log_is_followed_again_from_its_start(world: World) -> None:
    sink = Recorder()
    follower = SinkFollower(world.index, sink, "me")
    follower.step()
    world.add()
    assert drain(follower) == 4
    world.index.clear_changes()  # SQLite numbers from 1 again, PostgreSQL goes on
    world.add()
    assert drain(follower) == 4
    assert sink.seqs()[4:] == world.all_seqs()


@pytest.mark.parametrize("outcome", ["commit", "rollback"])
def test_postgres_waits_for_changes_committed_out_of_order(
    outcome: str, postgres_databases: Any
) -> None:
    """PostgreSQL numbers a change before its commit: a later change may be visible first. The
    follower stops at the gap until the transaction ends, then publishes or passes over it."""
    url = postgres_url(postgres_databases.create())
    index = open_postgres_index(url, 2)
    engine = create_postgres_engine(url, 1)
    try:
        sink = Recorder()
        follower = SinkFollower(index, sink, "me")
        follower.step()
        insert = text(
            "INSERT INTO changes (change_type, level, public_id, date) "
            "VALUES (2, 3, :id, '20260101T000000') RETURNING seq"
        )
        with engine.connect() as slow:
            transaction = slow.begin()
            pending = slow.execute(insert, {"id": "slow"}).scalar_one()
            with engine.begin() as fast:
                committed = fast.execute(insert, {"id": "fast"}).scalar_one()
            assert committed == pending + 1
            assert follower.step() == 0  # the gap may still fill
            assert follower.step() == 0
            if outcome == "commit":
                transaction.commit()
            else:
                transaction.rollback()
        expected = [pending, committed] if outcome == "commit" else [committed]
        # Other transactions on the server (other tests) may delay the verdict on the gap.
        deadline = time.monotonic() + 60
        while sink.seqs() != expected:
            assert time.monotonic() < deadline, f"published {sink.seqs()}, not {expected}"
            follower.step()
            time.sleep(0.05)
    finally:
        engine.dispose()
        index.close()
