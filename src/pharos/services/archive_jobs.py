"""Archives made by a job (`"Synchronous": false`): Orthanc's `Archive` and `Media` jobs,
whose output `GET /jobs/{id}/archive` is the ZIP file.

The ZIP is written to a file in the archives folder, a step at a time (one file of the
archive per step), under a temporary name until it is complete. Finished archives are kept
on disk, the `MediaArchiveSize` most recently used ones (as Orthanc); older ones are removed
when a new one is finished, and `GET /jobs/{id}/archive` then answers 404. An archive is also
removed when its job leaves the jobs history (`JobsHistorySize`, see `discard`).

Jobs are saved (`SaveJobs`) with their request and, once finished, the name of their ZIP: a
finished job reloaded after a restart still serves its file; an unfinished one starts its
archive again from the beginning (a half-written ZIP cannot be resumed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pharos.model.jobs import Job, JobOutput, StepResult, StopReason, Submission
from pharos.services.archive import (
    ZIP_MIME,
    ArchivePlan,
    ArchiveProgress,
    ArchiveRequest,
    ArchiveService,
)

ARCHIVE_JOB = "Archive"
MEDIA_JOB = "Media"
OUTPUT_KEY = "archive"
_PART = ".part"
_STEP_BYTES = 64 << 20  # a step ends after one file of the archive, or this much ZIP
MEGABYTE = 1024 * 1024

log = logging.getLogger(__name__)


class ArchiveOutputs:
    """The finished ZIP files of archive jobs: a folder, at most `keep` of them, the least
    recently used removed first."""

    def __init__(self, directory: Path, keep: int):
        self.directory = directory
        self._keep = max(1, keep)
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, None] = OrderedDict()
        self._writing: set[str] = set()
        self._swept = False

    def new_part(self) -> Path:
        """A new file to write an archive into (not kept until `publish`)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{uuid.uuid4()}.zip"
        with self._lock:
            self._writing.add(name)
            if not self._swept:
                self._swept = True
                self._sweep()
        return self.directory / (name + _PART)

    def discard(self, part: Path) -> None:
        with self._lock:
            self._writing.discard(part.name.removesuffix(_PART))
        with contextlib.suppress(FileNotFoundError):
            part.unlink()

    def publish(self, part: Path) -> str:
        """The complete archive `part` kept; the name to find it again."""
        name = part.name.removesuffix(_PART)
        os.replace(part, self.directory / name)
        with self._lock:
            self._writing.discard(name)
            self._kept[name] = None
            self._evict()
        return name

    def adopt(self, name: str) -> None:
        """An archive of a job reloaded after a restart (kept if its file is still there)."""
        if (self.directory / name).is_file():
            with self._lock:
                self._kept[name] = None
                self._kept.move_to_end(name, last=False)  # older than any new one
                self._evict()

    def remove(self, name: str) -> None:
        """The archive of a job that left the jobs history: nobody can download it any more."""
        with self._lock:
            self._kept.pop(name, None)
        with contextlib.suppress(FileNotFoundError):
            (self.directory / name).unlink()

    def path(self, name: str) -> Path | None:
        with self._lock:
            if name not in self._kept:
                return None
            self._kept.move_to_end(name)
        path = self.directory / name
        return path if path.is_file() else None

    def _evict(self) -> None:
        while len(self._kept) > self._keep:
            old, _ = self._kept.popitem(last=False)
            with contextlib.suppress(FileNotFoundError):
                (self.directory / old).unlink()

    def _sweep(self) -> None:
        """Once, at the first archive: files left by a previous run and no longer known."""
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return
        for entry in entries:
            name = entry.name.removesuffix(_PART)
            if entry.is_file() and name not in self._kept and name not in self._writing:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)


class ArchiveJob:
    """Writes the archive of `request` to a file, one file of the archive per step."""

    def __init__(
        self,
        service: ArchiveService,
        outputs: ArchiveOutputs,
        request: ArchiveRequest,
        *,
        output: str | None = None,
        sizes: tuple[int, int, int] = (0, 0, 0),
    ):
        self._service = service
        self._outputs = outputs
        self._request = request
        self._output = output  # the finished ZIP, by name in `outputs`
        self._count, self._uncompressed, self._archive_size = sizes
        self._plan: ArchivePlan | None = None
        self._progress = ArchiveProgress()
        self._part: Path | None = None
        self._file: BinaryIO | None = None
        self._stream: Iterator[bytes] | None = None

    @property
    def job_type(self) -> str:
        return MEDIA_JOB if self._request.media else ARCHIVE_JOB

    def start(self) -> None:
        if self._output is not None or self._stream is not None:
            return  # finished, or resumed after a pause: the ZIP goes on where it was
        self._plan = self._service.plan(self._request)
        self._count = len(self._plan.entries)
        self._uncompressed = self._plan.uncompressed_size
        self._progress = ArchiveProgress()
        self._part = self._outputs.new_part()
        self._file = open(self._part, "wb")  # noqa: SIM115 (closed at the last step or stop)
        # Not gathered: the file buffers writes, and steps end between two files.
        self._stream = self._service.stream(self._plan, self._progress, gather=False)

    def step(self) -> StepResult:
        if self._output is not None:
            return StepResult.done()
        assert self._stream is not None and self._file is not None and self._part is not None
        entries, written = self._progress.entries, 0
        for piece in self._stream:
            self._file.write(piece)
            written += len(piece)
            if self._progress.entries > entries or written >= _STEP_BYTES:
                self._archive_size = self._progress.written
                return StepResult.proceed()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._archive_size = self._progress.written
        self._output = self._outputs.publish(self._part)
        self._file = self._stream = self._part = None
        log.info("Archive of %d files written (%d bytes)", self._count, self._archive_size)
        return StepResult.done()

    def stop(self, reason: StopReason) -> None:
        if reason in (StopReason.PAUSE, StopReason.SUCCESS):
            return  # a paused job goes on from its open ZIP when resumed
        self._abandon()

    def _abandon(self) -> None:
        """Drop the ZIP being written: the next start makes it again from the beginning."""
        if self._file is not None:
            self._file.close()
        if self._part is not None:
            self._outputs.discard(self._part)
        self._file = self._stream = self._part = None
        self._archive_size = 0

    def reset(self) -> None:
        self._abandon()
        self._output = None

    def discard(self) -> None:
        """The job leaves the jobs history (`JobsHistorySize`): its ZIP goes with it."""
        self._abandon()
        if self._output is not None:
            self._outputs.remove(self._output)
            self._output = None

    def progress(self) -> float:
        if self._output is not None:
            return 1.0
        if not self._count:
            return 0.0
        return min(1.0, self._progress.entries / (self._count + 1))

    def public_content(self) -> dict[str, Any]:
        content: dict[str, Any] = {
            "Description": self._request.description,
            "InstancesCount": self._count,
            "UncompressedSizeMB": self._uncompressed // MEGABYTE,
            "ArchiveSizeMB": self._archive_size // MEGABYTE,
            "ArchiveSize": str(self._archive_size),
            "UncompressedSize": str(self._uncompressed),
        }
        if self._request.transcode:
            content["Transcode"] = self._request.transcode
        return content

    def serialize(self) -> dict[str, Any]:
        return {
            "Request": self._request.to_json(),
            "Output": self._output,
            "Sizes": [self._count, self._uncompressed, self._archive_size],
        }

    def output(self, key: str) -> JobOutput | None:
        if key != OUTPUT_KEY or self._output is None:
            return None
        path = self._outputs.path(self._output)
        if path is None:
            return None  # removed: MediaArchiveSize newer archives were made since
        filename = self._service.filename(self._request, "archive.zip")
        return JobOutput(b"", ZIP_MIME, filename, path=str(path))


class ArchiveJobs:
    """Prepares archive jobs, and re-creates saved ones."""

    def __init__(self, service: ArchiveService, outputs: ArchiveOutputs):
        self._service = service
        self._outputs = outputs

    @property
    def service(self) -> ArchiveService:
        return self._service

    def submission(self, request: ArchiveRequest) -> Submission:
        """The job of an asynchronous request; its resources are checked now (404)."""
        self._service.resolve(request)
        return Submission(ArchiveJob(self._service, self._outputs, request), request.priority)

    def factories(self) -> dict[str, Callable[[dict[str, Any]], Job]]:
        return {ARCHIVE_JOB: self._restore, MEDIA_JOB: self._restore}

    def _restore(self, state: dict[str, Any]) -> Job:
        request = ArchiveRequest.from_json(state["Request"])
        output = state.get("Output")
        if output is not None:
            self._outputs.adopt(str(output))
        count, uncompressed, size = (int(value) for value in state.get("Sizes", (0, 0, 0)))
        return ArchiveJob(
            self._service,
            self._outputs,
            request,
            output=None if output is None else str(output),
            sizes=(count, uncompressed, size),
        )


def archive_directory(temporary: str | None, storage: Path, owner: str) -> Path:
    """Where archive jobs write: `TemporaryDirectory` if set, else beside the stored files
    (the same disk, sized for them); one folder per server sharing that area."""
    base = Path(temporary) if temporary else storage / "archives"
    return base / f"pharos-archives-{owner[:16]}"
