"""Jobs: long operations run in steps by the jobs engine, so that they show their progress,
can be paused, cancelled and resubmitted, and survive a restart (Orthanc's `IJob`).

A job is started, then stepped until a step answers success or failure (or asks to be retried
later); between two steps the engine may stop it (pause, cancel, shutdown). `serialize()`
returns what re-creates the job, at its current step, through the factory registered for its
`job_type`; so a job keeps in its serialized state everything a restart needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol, runtime_checkable

from pharos.model.errors import ErrorCode, PharosError


class JobState(Enum):
    PENDING = "Pending"
    RUNNING = "Running"
    SUCCESS = "Success"
    FAILURE = "Failure"
    PAUSED = "Paused"
    RETRY = "Retry"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCESS, JobState.FAILURE)


class StepStatus(Enum):
    CONTINUE = "Continue"
    SUCCESS = "Success"
    FAILURE = "Failure"
    RETRY = "Retry"  # try this step again after `retry_after` seconds


@dataclass(frozen=True, slots=True)
class StepResult:
    status: StepStatus
    retry_after: float = 0.0  # seconds, for RETRY
    error: JobError | None = None  # for FAILURE

    @staticmethod
    def proceed() -> StepResult:
        return StepResult(StepStatus.CONTINUE)

    @staticmethod
    def done() -> StepResult:
        return StepResult(StepStatus.SUCCESS)

    @staticmethod
    def retry(seconds: float) -> StepResult:
        return StepResult(StepStatus.RETRY, retry_after=max(0.0, seconds))

    @staticmethod
    def failed(error: JobError) -> StepResult:
        return StepResult(StepStatus.FAILURE, error=error)


class StopReason(Enum):
    """Why the engine stops a job (it may be started again later, except after SUCCESS)."""

    PAUSE = "Pause"
    CANCEL = "Cancel"
    SUCCESS = "Success"
    FAILURE = "Failure"
    RETRY = "Retry"
    SHUTDOWN = "Shutdown"


@dataclass(frozen=True, slots=True)
class JobError:
    """Orthanc's `ErrorCode` (number), `ErrorDescription` and `ErrorDetails` of a job."""

    code: int
    description: str
    details: str = ""

    @staticmethod
    def of(error: PharosError) -> JobError:
        return JobError(error.code.code, error.code.description, error.details or "")

    @staticmethod
    def internal(details: str) -> JobError:
        code = ErrorCode.INTERNAL_ERROR
        return JobError(code.code, code.description, details)

    def to_json(self) -> dict[str, Any]:
        return {"Code": self.code, "Description": self.description, "Details": self.details}

    @staticmethod
    def from_json(value: dict[str, Any]) -> JobError:
        return JobError(int(value["Code"]), str(value["Description"]), str(value["Details"]))


SUCCESS_ERROR = JobError(0, "Success")
# Orthanc's ErrorCode_CanceledJob (not an HTTP error: only jobs carry it)
CANCELED = JobError(37, "This job was canceled")


@dataclass(frozen=True, slots=True)
class JobOutput:
    """What `GET /jobs/{id}/{key}` answers: `content`, or the file at `path` (streamed from
    disk: an archive of several GB never sits in memory; `content` is then empty)."""

    content: bytes
    mime_type: str
    filename: str | None = None
    path: str | None = None


class Job(Protocol):
    @property
    def job_type(self) -> str:
        """Orthanc's `Type` (e.g. "DicomModalityStore"), the key of its factory too."""
        ...

    def start(self) -> None:
        """Called before the first step, and again after each stop (resume, retry)."""
        ...

    def step(self) -> StepResult:
        """Do the next unit of work; PharosError raised here fails the job with its code."""
        ...

    def stop(self, reason: StopReason) -> None:
        """Release what start() took (associations, files); the step state is kept."""
        ...

    def reset(self) -> None:
        """Back to the first step (resubmission of a failed job)."""
        ...

    def progress(self) -> float:
        """0..1."""
        ...

    def public_content(self) -> dict[str, Any]:
        """Orthanc's `Content`."""
        ...

    def serialize(self) -> dict[str, Any]:
        """JSON-able state that the factory of `job_type` turns back into this job."""
        ...

    def output(self, key: str) -> JobOutput | None:
        """An output of a finished job (`GET /jobs/{id}/{key}`), None when there is none."""
        ...


@runtime_checkable
class DiscardableJob(Protocol):
    """A job with outputs outside the job itself (e.g. a ZIP file on disk): the engine calls
    `discard()` when the finished job leaves the history (`JobsHistorySize`), so that its
    outputs go with it."""

    def discard(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Submission:
    """A job a service prepared for an asynchronous request (`"Synchronous": false`), to be
    handed to the engine by the way in, with Orthanc's `Priority`."""

    job: Job
    priority: int = 0


def parse_priority(value: Any) -> int:
    """The `Priority` field of a request body (an integer, higher first)."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT, f'"Priority" must be an integer, not {value!r}'
        )
    return value


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A snapshot of a job, as `GET /jobs/{id}` shows it."""

    id: str
    job_type: str
    priority: int
    state: JobState
    progress: float
    content: dict[str, Any]
    error: JobError
    creation_time: str  # Orthanc's ISO format, UTC: 20201227T161836.428311
    runtime: float  # seconds spent running
    completion_time: str | None
    eta: str | None
    timestamp: str

    def to_json(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "Content": self.content,
            "CreationTime": self.creation_time,
            "EffectiveRuntime": round(self.runtime, 3),
            "ErrorCode": self.error.code,
            "ErrorDescription": self.error.description,
            "ErrorDetails": self.error.details,
            "ID": self.id,
            "Priority": self.priority,
            "Progress": round(self.progress * 100),
            "State": self.state.value,
            "Timestamp": self.timestamp,
            "Type": self.job_type,
        }
        if self.completion_time is not None:
            result["CompletionTime"] = self.completion_time
        if self.eta is not None:
            result["EstimatedTimeOfArrival"] = self.eta
        return result
