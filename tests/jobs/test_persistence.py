"""Saved jobs (SaveJobs) in the index, on both backends: a job stopped mid-way by a shutdown
comes back pending at its step and completes; paused and finished jobs keep their state; the
history bound removes saved jobs too; the schema gains the jobs table (version 4 to 5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from pharos.index.migrations import migrate
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.schema import SCHEMA_VERSION, jobs, properties
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.jobs.engine import JobsEngine
from pharos.model.jobs import JobState
from tests.index.test_migrations import engine, version_of  # noqa: F401 - fixture
from tests.jobs.fakes import FakeJob, Gate, factory, wait_for


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


def test_a_job_stopped_by_a_shutdown_resumes_at_its_step(index: SqlIndex) -> None:
    gate = Gate()
    first = JobsEngine({"Fake": factory(gate)}, store=index, save_interval=0)
    first.start()
    job = FakeJob(gate, steps=4, name="long")
    job_id = first.submit(job, priority=3)
    gate.allow(1)
    wait_for(lambda: job.position == 1 and job.inside)
    gate.allow(1)  # the step in progress ends, then the shutdown stops the job
    first.stop()
    assert job.position == 2 and first.info(job_id).state is JobState.PENDING

    gate2 = Gate()
    second = JobsEngine({"Fake": factory(gate2)}, store=index)
    second.start()
    try:
        info = second.info(job_id)
        assert (info.priority, info.content) == (3, {"Name": "long", "Position": 2})
        gate2.allow(2)
        wait_for(lambda: second.info(job_id).state is JobState.SUCCESS)
        assert second.info(job_id).content["Position"] == 4
    finally:
        second.stop()
    third = JobsEngine({"Fake": factory(Gate())}, store=index)
    third.start()  # a finished job stays in the history
    try:
        assert third.info(job_id).state is JobState.SUCCESS
        assert third.info(job_id).completion_time is not None
    finally:
        third.stop()


def test_paused_failed_and_unknown_saved_jobs(index: SqlIndex) -> None:
    gate = Gate()
    first = JobsEngine({"Fake": factory(gate)}, threads=1, store=index)
    first.start()
    blocker = FakeJob(gate, steps=1, name="blocker")
    first.submit(blocker)
    wait_for(lambda: blocker.inside)
    paused = first.submit(FakeJob(gate, steps=2, name="paused"))
    first.pause(paused)
    cancelled = first.submit(FakeJob(gate, steps=2, name="cancelled"))
    first.cancel(cancelled)
    gate.allow(1)
    wait_for(lambda: blocker.done == ["blocker"])
    first.stop()
    index.save_job("", "broken", 99, '{"ID": "broken", "Type": "Nope"}')

    second = JobsEngine({"Fake": factory(Gate(open_=True))}, store=index)
    second.start()
    try:
        assert second.info(paused).state is JobState.PAUSED
        info = second.info(cancelled).to_json()
        assert (info["State"], info["ErrorCode"]) == ("Failure", 37)
        assert "broken" not in second.ids() and len(second.ids()) == 3
        second.resume(paused)
        wait_for(lambda: second.info(paused).state is JobState.SUCCESS)
    finally:
        second.stop()


def test_history_bound_removes_saved_jobs(index: SqlIndex) -> None:
    jobs_engine = JobsEngine(
        {"Fake": factory(Gate(open_=True))}, threads=1, history_size=1, store=index
    )
    jobs_engine.start()
    try:
        ids = [jobs_engine.submit(FakeJob(Gate(open_=True), steps=1)) for _ in range(3)]
        wait_for(lambda: jobs_engine.ids() == ids[2:])
        assert [job_id for job_id, _ in index.saved_jobs("")] == ids[2:]
    finally:
        jobs_engine.stop()


def test_without_a_store_nothing_is_saved(index: SqlIndex) -> None:
    jobs_engine = JobsEngine({"Fake": factory(Gate(open_=True))})
    jobs_engine.start()
    try:
        job_id = jobs_engine.submit(FakeJob(Gate(open_=True), steps=1))
        wait_for(lambda: jobs_engine.info(job_id).state is JobState.SUCCESS)
        assert index.saved_jobs("") == []
    finally:
        jobs_engine.stop()


def test_version_4_database_gains_the_jobs_table(engine: Any) -> None:  # noqa: F811
    with engine.begin() as conn:
        migrate(conn)
        jobs.drop(conn)
        conn.execute(properties.update().values(value="4"))
    assert not inspect(engine).has_table("jobs")
    with engine.begin() as conn:
        assert migrate(conn) == SCHEMA_VERSION
    assert inspect(engine).has_table("jobs")
    assert version_of(engine) == SCHEMA_VERSION


def test_servers_sharing_the_index_keep_their_own_jobs(index: SqlIndex) -> None:
    first = JobsEngine({"Fake": factory(Gate())}, store=index, owner="one")
    job_id = first.submit(FakeJob(Gate(), steps=2))  # not started: stays pending
    other = JobsEngine({"Fake": factory(Gate())}, store=index, owner="two")
    other.start()
    try:
        assert other.ids() == []
    finally:
        other.stop()
    again = JobsEngine({"Fake": factory(Gate(open_=True))}, store=index, owner="one")
    again.start()
    try:
        wait_for(lambda: again.info(job_id).state is JobState.SUCCESS)
    finally:
        again.stop()
    assert first.ids() == [job_id]


class DecidingJob(FakeJob):
    """A job whose start() decides something its later steps depend on (as the new UIDs of a
    modification)."""

    def start(self) -> None:
        super().start()
        if not self.name.endswith("+decided"):
            self.name += "+decided"


def test_what_start_decided_is_saved_before_the_first_step(index: SqlIndex) -> None:
    gate = Gate()
    jobs_engine = JobsEngine({"Fake": factory(gate)}, store=index, save_interval=3600)
    jobs_engine.start()
    try:
        job = DecidingJob(gate, steps=2, name="job")
        job_id = jobs_engine.submit(job)
        wait_for(lambda: job.inside)  # started, in its first step: a crash now...
        saved = dict(index.saved_jobs(""))
        assert "job+decided" in saved[job_id]  # ...would find the decision saved
    finally:
        gate.open = True
        gate.allow(10)
        jobs_engine.stop()
