"""What the engine knows of each job (its record), and how a record is saved and re-created.

A saved record is the JSON text of its fields plus the job's own serialized state; a job that
was running when the server stopped comes back pending, from its last saved step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from pharos.model.jobs import SUCCESS_ERROR, Job, JobError, JobInfo, JobState, StopReason

log = logging.getLogger(__name__)

# job type -> builds the job back from what its serialize() returned
JobFactory = Callable[[dict[str, Any]], Job]


def orthanc_time(epoch: float) -> str:
    """Orthanc's job times (boost's to_iso_string, UTC): 20201227T161836.428311."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y%m%dT%H%M%S.%f")


@dataclass(slots=True)
class JobRecord:
    id: str
    job: Job
    priority: int
    sequence: int  # submission order: FIFO among equal priorities, and the saved position
    state: JobState
    creation_time: float
    error: JobError = SUCCESS_ERROR
    runtime: float = 0.0  # seconds spent in steps
    completion_time: float | None = None
    retry_at: float | None = None  # when a job in Retry becomes pending again
    scheduled_stop: StopReason | None = None  # pause or cancel asked while running
    running_since: float | None = None

    def info(self, now: float) -> JobInfo:
        progress = max(0.0, min(1.0, self.job.progress()))
        if self.state is JobState.SUCCESS:
            progress = 1.0
        runtime = self.runtime
        if self.running_since is not None:
            runtime += max(0.0, now - self.running_since)
        eta = None
        if self.state is JobState.RUNNING and progress > 0.01 and runtime > 0:
            eta = orthanc_time(now + runtime * (1 - progress) / progress)
        completion = None
        if self.state.finished and self.completion_time is not None:
            completion = orthanc_time(self.completion_time)
        return JobInfo(
            id=self.id,
            job_type=self.job.job_type,
            priority=self.priority,
            state=self.state,
            progress=progress,
            content=self.job.public_content(),
            error=self.error,
            creation_time=orthanc_time(self.creation_time),
            runtime=runtime,
            completion_time=completion,
            eta=eta,
            timestamp=orthanc_time(now),
        )

    def to_text(self) -> str:
        state = self.state
        if state in (JobState.RUNNING, JobState.RETRY):
            state = JobState.PENDING  # re-run from the saved step after a restart
        record = {
            "ID": self.id,
            "Type": self.job.job_type,
            "Priority": self.priority,
            "Sequence": self.sequence,
            "State": state.value,
            "Error": self.error.to_json(),
            "CreationTime": self.creation_time,
            "Runtime": self.runtime,
            "CompletionTime": self.completion_time,
            "Job": self.job.serialize(),
        }
        return orjson.dumps(record).decode()


def record_from_text(text: str, registry: dict[str, JobFactory]) -> JobRecord | None:
    """The record saved as `text`, None (logged) when it cannot be re-created."""
    try:
        value = orjson.loads(text)
        factory = registry.get(value["Type"])
        if factory is None:
            log.warning("Saved job %s has an unknown type %r: ignored", value["ID"], value["Type"])
            return None
        state = JobState(value["State"])
        if state in (JobState.RUNNING, JobState.RETRY):
            state = JobState.PENDING
        completion = value.get("CompletionTime")
        return JobRecord(
            id=str(value["ID"]),
            job=factory(value["Job"]),
            priority=int(value["Priority"]),
            sequence=int(value["Sequence"]),
            state=state,
            creation_time=float(value["CreationTime"]),
            error=JobError.from_json(value["Error"]),
            runtime=float(value["Runtime"]),
            completion_time=None if completion is None else float(completion),
        )
    except Exception as exc:
        log.warning("A saved job cannot be re-created: %s", exc)
        return None
