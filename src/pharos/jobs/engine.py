"""The jobs engine: a priority queue of step-wise jobs run by `ConcurrentJobs` worker threads
(Orthanc's JobsEngine and JobsRegistry).

States: Pending (queued: higher `Priority` first, then first submitted), Running, Paused,
Retry (a step asked to be run again later), Success and Failure (finished; a cancelled job is a
failure with Orthanc's CanceledJob code). Pause and cancel of a running job take effect between
two steps. At most `JobsHistorySize` finished jobs are kept, the oldest dropped first (with
their outputs: see `DiscardableJob`).

With a store (`SaveJobs`), every job is saved when its state changes and, while it runs, at
most every `save_interval` seconds; at start-up the saved jobs come back (see `records`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections.abc import Callable

from pharos.index.base_jobs import JobIndex
from pharos.jobs.records import JobFactory, JobRecord, record_from_text
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.jobs import (
    CANCELED,
    SUCCESS_ERROR,
    DiscardableJob,
    Job,
    JobError,
    JobInfo,
    JobOutput,
    JobState,
    StepResult,
    StepStatus,
    StopReason,
)

log = logging.getLogger(__name__)

# Told (event, job ID, job type) when a job is "Submitted" and when it ends with "Success" or
# "Failure" (plugins' listeners): called with the engine's lock held, so it must only enqueue.
JobListener = Callable[[str, str, str], None]


def _unknown(job_id: str) -> PharosError:
    return PharosError(ErrorCode.INEXISTENT_ITEM, f"Unknown job: {job_id}")


def _bad_state(action: str, record: JobRecord) -> PharosError:
    return PharosError(
        ErrorCode.BAD_SEQUENCE_OF_CALLS,
        f"Cannot {action} job {record.id}: its state is {record.state.value}",
    )


class JobsEngine:
    def __init__(
        self,
        registry: dict[str, JobFactory],
        threads: int = 2,
        history_size: int = 10,
        store: JobIndex | None = None,
        owner: str = "",
        save_interval: float = 1.0,
        listener: JobListener | None = None,
    ):
        self._registry = registry
        self._listener = listener
        # ConcurrentJobs: 0 is one per CPU core (as Orthanc)
        self._threads_count = threads if threads > 0 else (os.cpu_count() or 1)
        self._owner = owner
        self._history_size = max(0, history_size)
        self._store = store
        self._save_interval = save_interval
        self._records: dict[str, JobRecord] = {}
        self._sequence = 0
        self._lock = threading.Condition()
        self._workers: list[threading.Thread] = []
        self._stopping = False

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Load the saved jobs, then start the workers."""
        if self._store is not None:
            for job_id, text in self._store.saved_jobs(self._owner):
                record = record_from_text(text, self._registry)
                if record is not None and record.id == job_id:
                    self._records[record.id] = record
                    self._sequence = max(self._sequence, record.sequence)
            if self._records:
                log.warning("Jobs engine: %d saved jobs reloaded", len(self._records))
        self._stopping = False
        for number in range(self._threads_count):
            worker = threading.Thread(
                target=self._work, daemon=True, name=f"pharos-job-worker-{number}"
            )
            worker.start()
            self._workers.append(worker)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the workers; running jobs stop after their current step, saved as pending."""
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        self._workers.clear()

    # -- submission and control -------------------------------------------------------------

    def submit(self, job: Job, priority: int = 0) -> str:
        with self._lock:
            self._sequence += 1
            record = JobRecord(
                id=str(uuid.uuid4()),
                job=job,
                priority=priority,
                sequence=self._sequence,
                state=JobState.PENDING,
                creation_time=time.time(),
            )
            self._records[record.id] = record
            self._save(record)
            self._tell("Submitted", record)
            self._lock.notify_all()
        log.info("Job %s (%s) submitted with priority %d", record.id, job.job_type, priority)
        return record.id

    def pause(self, job_id: str) -> None:
        with self._lock:
            record = self._require(job_id)
            if record.state in (JobState.PENDING, JobState.RETRY):
                record.state, record.retry_at = JobState.PAUSED, None
                self._save(record)
            elif record.state is JobState.RUNNING:
                if record.scheduled_stop is not StopReason.CANCEL:
                    record.scheduled_stop = StopReason.PAUSE
            elif record.state is not JobState.PAUSED:
                raise _bad_state("pause", record)

    def resume(self, job_id: str) -> None:
        with self._lock:
            record = self._require(job_id)
            if record.state is JobState.PAUSED:
                record.state = JobState.PENDING
                self._save(record)
                self._lock.notify_all()
            elif record.state is JobState.RUNNING and record.scheduled_stop is StopReason.PAUSE:
                record.scheduled_stop = None  # the pause asked had not happened yet
            else:
                raise _bad_state("resume", record)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            record = self._require(job_id)
            if record.state in (JobState.PENDING, JobState.RETRY, JobState.PAUSED):
                # never started since its last stop: nothing to release
                self._finish(record, JobState.FAILURE, CANCELED)
            elif record.state is JobState.RUNNING:
                record.scheduled_stop = StopReason.CANCEL
            else:
                raise _bad_state("cancel", record)

    def resubmit(self, job_id: str) -> None:
        """Run a failed (or cancelled) job again from its first step."""
        with self._lock:
            record = self._require(job_id)
            if record.state is not JobState.FAILURE:
                raise _bad_state("resubmit", record)
            record.job.reset()
            record.state, record.error = JobState.PENDING, SUCCESS_ERROR
            record.completion_time = None
            self._save(record)
            self._lock.notify_all()

    # -- reading ----------------------------------------------------------------------------

    def ids(self) -> list[str]:
        with self._lock:
            return [r.id for r in sorted(self._records.values(), key=lambda r: r.sequence)]

    def info(self, job_id: str) -> JobInfo:
        with self._lock:
            return self._require(job_id).info(time.time())

    def infos(self) -> list[JobInfo]:
        now = time.time()
        with self._lock:
            records = sorted(self._records.values(), key=lambda r: r.sequence)
            return [record.info(now) for record in records]

    def output(self, job_id: str, key: str) -> JobOutput:
        with self._lock:
            record = self._require(job_id)
            output = record.job.output(key) if record.state is JobState.SUCCESS else None
        if output is None:
            raise PharosError(ErrorCode.INEXISTENT_ITEM, f"Job {job_id} has no output {key!r}")
        return output

    def _require(self, job_id: str) -> JobRecord:
        record = self._records.get(job_id)
        if record is None:
            raise _unknown(job_id)
        return record

    # -- workers ----------------------------------------------------------------------------

    def _next(self) -> JobRecord | None:
        """The pending job to run next (lock held), waiting for one; None at shutdown."""
        while not self._stopping:
            now = time.time()
            wake: float | None = None
            best: JobRecord | None = None
            for record in self._records.values():
                if record.state is JobState.RETRY and record.retry_at is not None:
                    if record.retry_at <= now:
                        record.state, record.retry_at = JobState.PENDING, None
                    else:
                        wake = record.retry_at if wake is None else min(wake, record.retry_at)
                if record.state is JobState.PENDING and (
                    best is None
                    or (-record.priority, record.sequence) < (-best.priority, best.sequence)
                ):
                    best = record
            if best is not None:
                best.state, best.running_since = JobState.RUNNING, now
                return best
            self._lock.wait(None if wake is None else max(0.01, wake - now))
        return None

    def _work(self) -> None:
        while True:
            with self._lock:
                record = self._next()
            if record is None:
                return
            self._run(record)

    def _run(self, record: JobRecord) -> None:
        job = record.job
        last_save = time.monotonic()
        try:
            job.start()
            if self._store is not None:
                # What start() decided (e.g. the new UIDs of a modification) is saved before
                # any step acts on it: a crash must not make a resumed job decide again.
                with self._lock:
                    self._save(record)
            while True:
                with self._lock:
                    reason = StopReason.SHUTDOWN if self._stopping else record.scheduled_stop
                if reason is not None:
                    self._stopped(record, reason)
                    return
                result = self._step(job)
                if result.status is not StepStatus.CONTINUE:
                    self._ended(record, result)
                    return
                if self._store is not None and time.monotonic() - last_save > self._save_interval:
                    last_save = time.monotonic()
                    with self._lock:
                        self._save(record)
        except Exception as exc:  # start() or stop() failed: the job fails
            log.exception("Job %s (%s) failed", record.id, job.job_type)
            error = (
                JobError.of(exc) if isinstance(exc, PharosError) else JobError.internal(str(exc))
            )
            with self._lock:
                self._account(record)
                self._finish(record, JobState.FAILURE, error)

    @staticmethod
    def _step(job: Job) -> StepResult:
        try:
            return job.step()
        except PharosError as exc:
            return StepResult.failed(JobError.of(exc))
        except Exception as exc:
            log.exception("A step of a %s job raised", job.job_type)
            return StepResult.failed(JobError.internal(f"{type(exc).__name__}: {exc}"))

    def _ended(self, record: JobRecord, result: StepResult) -> None:
        if result.status is StepStatus.SUCCESS:
            record.job.stop(StopReason.SUCCESS)
            with self._lock:
                self._account(record)
                self._finish(record, JobState.SUCCESS, SUCCESS_ERROR)
            log.info("Job %s (%s) succeeded", record.id, record.job.job_type)
        elif result.status is StepStatus.FAILURE:
            record.job.stop(StopReason.FAILURE)
            error = result.error or JobError.internal("The job failed")
            with self._lock:
                self._account(record)
                self._finish(record, JobState.FAILURE, error)
            log.warning(
                "Job %s (%s) failed: %s %s",
                record.id,
                record.job.job_type,
                error.description,
                error.details,
            )
        else:
            record.job.stop(StopReason.RETRY)
            with self._lock:
                self._account(record)
                record.state, record.retry_at = JobState.RETRY, time.time() + result.retry_after
                self._save(record)
                self._lock.notify_all()

    def _stopped(self, record: JobRecord, reason: StopReason) -> None:
        record.job.stop(reason)
        with self._lock:
            self._account(record)
            record.scheduled_stop = None
            if reason is StopReason.CANCEL:
                self._finish(record, JobState.FAILURE, CANCELED)
            else:
                record.state = JobState.PAUSED if reason is StopReason.PAUSE else JobState.PENDING
                self._save(record)

    def _account(self, record: JobRecord) -> None:
        """Add the time of this run to the job's runtime (lock held)."""
        if record.running_since is not None:
            record.runtime += max(0.0, time.time() - record.running_since)
            record.running_since = None

    def _finish(self, record: JobRecord, state: JobState, error: JobError) -> None:
        """Lock held: the job is finished; the history keeps the newest JobsHistorySize."""
        record.state, record.error = state, error
        record.completion_time = time.time()
        record.scheduled_stop = record.retry_at = None
        self._save(record)
        self._tell("Success" if state is JobState.SUCCESS else "Failure", record)
        finished = sorted(
            (r for r in self._records.values() if r.state.finished),
            key=lambda r: (r.completion_time or 0.0, r.sequence),
        )
        for old in finished[: max(0, len(finished) - self._history_size)]:
            del self._records[old.id]
            self._forget(old.id)
            self._discard(old)
        self._lock.notify_all()

    @staticmethod
    def _discard(record: JobRecord) -> None:
        """A job leaving the history takes its outputs on disk with it."""
        if isinstance(record.job, DiscardableJob):
            try:
                record.job.discard()
            except Exception:
                log.exception("The outputs of job %s could not be removed", record.id)

    def _tell(self, event: str, record: JobRecord) -> None:
        if self._listener is None:
            return
        try:
            self._listener(event, record.id, record.job.job_type)
        except Exception:
            log.exception("Job listener failed on %s of job %s", event, record.id)

    # -- persistence ------------------------------------------------------------------------

    def _save(self, record: JobRecord) -> None:
        if self._store is None:
            return
        try:
            self._store.save_job(self._owner, record.id, record.sequence, record.to_text())
        except Exception:
            log.exception("Job %s could not be saved", record.id)

    def _forget(self, job_id: str) -> None:
        if self._store is None:
            return
        try:
            self._store.delete_job(job_id)
        except Exception:
            log.exception("Job %s could not be removed from the saved jobs", job_id)
