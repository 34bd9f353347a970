"""The jobs engine with jobs the test drives step by step: priorities, concurrency, pause,
resume, cancel, retry, failures, the history bound and the JSON of a job."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from pharos.jobs.engine import JobsEngine
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.jobs import JobState, StopReason
from tests.jobs.fakes import FakeJob, Gate, factory, wait_for


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def make_engine(gate: Gate) -> Iterator[Any]:
    engines: list[JobsEngine] = []

    def make(**options: Any) -> JobsEngine:
        engine = JobsEngine({"Fake": factory(gate)}, **options)
        engine.start()
        engines.append(engine)
        return engine

    yield make
    gate.open = True
    gate.allow(1000)
    for engine in engines:
        engine.stop()


def state(engine: JobsEngine, job_id: str) -> JobState:
    return engine.info(job_id).state


def code_of(call: Any, *args: Any) -> ErrorCode:
    with pytest.raises(PharosError) as info:
        call(*args)
    return info.value.code


def test_higher_priority_first_then_fifo(make_engine: Any, gate: Gate) -> None:
    engine: JobsEngine = make_engine(threads=1)
    done: list[str] = []
    blocker = FakeJob(gate, steps=1, name="blocker", done=done)
    engine.submit(blocker)
    wait_for(lambda: blocker.inside)  # the only worker is busy: the others queue up
    for name, priority in (("low", 0), ("high", 5), ("mid", 1), ("low2", 0), ("neg", -3)):
        engine.submit(FakeJob(gate, steps=1, name=name, done=done), priority)
    gate.allow(6)
    wait_for(lambda: len(done) == 6)
    assert done == ["blocker", "high", "mid", "low", "low2", "neg"]


def test_concurrent_jobs(make_engine: Any, gate: Gate) -> None:
    engine: JobsEngine = make_engine(threads=2)
    jobs = [FakeJob(gate, steps=1, name=str(i)) for i in range(3)]
    ids = [engine.submit(job) for job in jobs]
    wait_for(lambda: jobs[0].inside and jobs[1].inside)
    assert [state(engine, i) for i in ids] == [JobState.RUNNING, JobState.RUNNING, JobState.PENDING]
    gate.allow(3)
    wait_for(lambda: all(state(engine, i) is JobState.SUCCESS for i in ids))


def test_pause_and_resume_mid_job(make_engine: Any, gate: Gate) -> None:
    engine: JobsEngine = make_engine()
    job = FakeJob(gate, steps=3)
    job_id = engine.submit(job)
    gate.allow(1)
    wait_for(lambda: job.position == 1 and job.inside)
    engine.pause(job_id)  # takes effect once the step in progress is over
    assert state(engine, job_id) is JobState.RUNNING
    gate.allow(1)
    wait_for(lambda: state(engine, job_id) is JobState.PAUSED)
    assert (job.position, job.stops) == (2, [StopReason.PAUSE])
    engine.pause(job_id)  # pausing a paused job changes nothing
    engine.resume(job_id)
    gate.allow(1)
    wait_for(lambda: state(engine, job_id) is JobState.SUCCESS)
    assert (job.starts, job.stops, job.position) == (2, [StopReason.PAUSE, StopReason.SUCCESS], 3)
    info = engine.info(job_id).to_json()
    assert info["Progress"] == 100 and info["ErrorCode"] == 0 and "CompletionTime" in info


def test_pause_then_resume_before_the_step_ends_keeps_running(make_engine: Any, gate: Gate) -> None:
    engine: JobsEngine = make_engine()
    job = FakeJob(gate, steps=2)
    job_id = engine.submit(job)
    wait_for(lambda: job.inside)
    engine.pause(job_id)
    engine.resume(job_id)
    gate.allow(2)
    wait_for(lambda: state(engine, job_id) is JobState.SUCCESS)
    assert job.stops == [StopReason.SUCCESS]


def test_cancel_mid_job_then_resubmit(make_engine: Any, gate: Gate) -> None:
    engine: JobsEngine = make_engine()
    job = FakeJob(gate, steps=3)
    job_id = engine.submit(job)
    wait_for(lambda: job.inside)
    engine.cancel(job_id)
    gate.allow(1)
    wait_for(lambda: state(engine, job_id) is JobState.FAILURE)
    info = engine.info(job_id).to_json()
    assert (info["ErrorCode"], info["ErrorDescription"]) == (37, "This job was canceled")
    assert job.stops == [StopReason.CANCEL] and "CompletionTime" in info
    assert code_of(engine.cancel, job_id) is ErrorCode.BAD_SEQUENCE_OF_CALLS
    assert code_of(engine.pause, job_id) is ErrorCode.BAD_SEQUENCE_OF_CALLS
    assert code_of(engine.resume, job_id) is ErrorCode.BAD_SEQUENCE_OF_CALLS
    engine.resubmit(job_id)
    assert job.resets == 1
    gate.allow(3)
    wait_for(lambda: state(engine, job_id) is JobState.SUCCESS)
    assert engine.info(job_id).to_json()["ErrorCode"] == 0
    assert code_of(engine.resubmit, job_id) is ErrorCode.BAD_SEQUENCE_OF_CALLS


def test_pending_and_paused_jobs(make_engine: Any, gate: Gate) -> None:
    engine: JobsEngine = make_engine(threads=1)
    blocker = FakeJob(gate, steps=1)
    engine.submit(blocker)
    wait_for(lambda: blocker.inside)
    waiting = FakeJob(gate, steps=1)
    job_id = engine.submit(waiting)
    assert code_of(engine.resume, job_id) is ErrorCode.BAD_SEQUENCE_OF_CALLS  # not paused
    assert code_of(engine.resubmit, job_id) is ErrorCode.BAD_SEQUENCE_OF_CALLS  # not failed
    engine.pause(job_id)
    assert state(engine, job_id) is JobState.PAUSED
    gate.allow(1)
    wait_for(lambda: blocker.done == [""])
    assert state(engine, job_id) is JobState.PAUSED and waiting.starts == 0
    engine.cancel(job_id)  # a paused job can be cancelled: it never ran
    assert state(engine, job_id) is JobState.FAILURE and waiting.stops == []
    for action in (engine.info, engine.pause, engine.resume, engine.cancel, engine.resubmit):
        assert code_of(action, "nope") is ErrorCode.INEXISTENT_ITEM


def test_retry_waits_and_can_be_paused(make_engine: Any, gate: Gate) -> None:
    engine: JobsEngine = make_engine()
    job = FakeJob(gate, steps=2, retry_once_at=1)
    job_id = engine.submit(job)
    gate.allow(2)
    wait_for(lambda: state(engine, job_id) is JobState.RETRY)  # retried in an hour
    assert job.stops == [StopReason.RETRY]
    engine.pause(job_id)
    assert state(engine, job_id) is JobState.PAUSED
    engine.resume(job_id)  # pending again: the step asking to be retried runs again now
    gate.allow(1)
    wait_for(lambda: state(engine, job_id) is JobState.SUCCESS)
    assert job.position == 2 and job.starts == 2


@pytest.mark.parametrize(
    ("error", "code", "description", "details"),
    [
        (PharosError(ErrorCode.NETWORK_PROTOCOL, "peer gone"), 9,
         "Error in the network protocol", "peer gone"),
        (ValueError("bug"), -1, "Internal error", "ValueError: bug"),
    ],
)  # fmt: skip
def test_failure_details(
    make_engine: Any, gate: Gate, error: Exception, code: int, description: str, details: str
) -> None:
    engine: JobsEngine = make_engine()
    job = FakeJob(gate, steps=3, fail_at=1, error=error)
    job_id = engine.submit(job)
    gate.allow(2)
    wait_for(lambda: state(engine, job_id) is JobState.FAILURE)
    info = engine.info(job_id).to_json()
    assert (info["ErrorCode"], info["ErrorDescription"], info["ErrorDetails"]) == (
        code,
        description,
        details,
    )
    assert info["Progress"] == 33 and job.stops == [StopReason.FAILURE]


def test_history_keeps_the_newest_finished_jobs(make_engine: Any, gate: Gate) -> None:
    engine: JobsEngine = make_engine(threads=1, history_size=2)
    gate.open = True
    done: list[str] = []
    ids = [engine.submit(FakeJob(gate, steps=1, name=str(i), done=done)) for i in range(5)]
    wait_for(lambda: len(done) == 5 and len(engine.ids()) == 2)
    assert engine.ids() == ids[3:]
    assert code_of(engine.info, ids[0]) is ErrorCode.INEXISTENT_ITEM


def test_job_json_and_outputs(make_engine: Any, gate: Gate) -> None:
    engine: JobsEngine = make_engine()
    job = FakeJob(gate, steps=4, name="json")
    job_id = engine.submit(job, priority=7)
    gate.allow(1)
    wait_for(lambda: job.position == 1 and job.inside)
    info = engine.info(job_id).to_json()
    assert set(info) == {
        "Content", "CreationTime", "EffectiveRuntime", "ErrorCode", "ErrorDescription",
        "ErrorDetails", "EstimatedTimeOfArrival", "ID", "Priority", "Progress", "State",
        "Timestamp", "Type",
    }  # fmt: skip
    assert (info["ID"], info["Type"], info["Priority"], info["State"]) == (
        job_id,
        "Fake",
        7,
        "Running",
    )
    assert info["Progress"] == 25 and info["Content"] == {"Name": "json", "Position": 1}
    assert len(info["CreationTime"]) == len("20201227T161836.428311")
    assert info["CreationTime"][8] == "T" and isinstance(info["EffectiveRuntime"], float)
    assert code_of(engine.output, job_id, "name") is ErrorCode.INEXISTENT_ITEM  # not finished
    assert [i.to_json()["ID"] for i in engine.infos()] == [job_id]
    gate.allow(3)
    wait_for(lambda: state(engine, job_id) is JobState.SUCCESS)
    assert engine.output(job_id, "name").content == b"json"
    assert code_of(engine.output, job_id, "other") is ErrorCode.INEXISTENT_ITEM
    assert "EstimatedTimeOfArrival" not in engine.info(job_id).to_json()


class DiscardedJob(FakeJob):
    """A job with an output outside itself, told when it leaves the history."""

    def __init__(self, gate: Gate, name: str, done: list[str], discarded: list[str]):
        super().__init__(gate, steps=1, name=name, done=done)
        self.discarded = discarded

    def discard(self) -> None:
        self.discarded.append(self.name)
        if self.name == "boom":
            raise OSError("cannot remove")


def test_jobs_leaving_the_history_discard_their_outputs(make_engine: Any, gate: Gate) -> None:
    engine: JobsEngine = make_engine(threads=1, history_size=1)
    gate.open = True
    done: list[str] = []
    discarded: list[str] = []
    for name in ("boom", "a", "b"):  # a failing discard() does not stop the engine
        engine.submit(DiscardedJob(gate, name, done, discarded))
        wait_for(lambda n=name: n in done and len(engine.ids()) == 1)  # type: ignore[misc]
    wait_for(lambda: discarded == ["boom", "a"])
    engine.submit(FakeJob(gate, steps=1, name="plain", done=done))  # no discard(): fine
    wait_for(lambda: discarded == ["boom", "a", "b"] and "plain" in done)
    assert [engine.info(i).job_type for i in engine.ids()] == ["Fake"]
