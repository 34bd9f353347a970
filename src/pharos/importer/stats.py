"""Counts of an import, updated from the sender threads, and the summary printed at the end."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from pharos.importer.outcomes import Outcome, Status
from pharos.importer.sources import SkipReason

MB = 1_000_000


@dataclass
class ImportStats:
    stored: int = 0
    already_stored: int = 0
    skipped: Counter[SkipReason] = field(default_factory=Counter)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    sent_files: int = 0  # DICOM files sent, whatever their outcome
    sent_bytes: int = 0
    unreadable: int = 0  # files that could not be read (counted in `failed` too)
    stopped: str | None = None  # why the import stopped before the end
    total: int | None = None  # entries expected, once counted
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, name: str, size: int, outcome: Outcome) -> None:
        with self._lock:
            self.sent_files += 1
            self.sent_bytes += size
            if outcome.status is Status.STORED:
                self.stored += 1
            elif outcome.status is Status.ALREADY_STORED:
                self.already_stored += 1
            else:
                self.failed.append((name, outcome.reason or "unknown reason"))

    def skip(self, reason: SkipReason) -> None:
        with self._lock:
            self.skipped[reason] += 1

    def fail(self, name: str, reason: str) -> None:
        """A file that could not even be read (it is not counted as sent)."""
        with self._lock:
            self.unreadable += 1
            self.failed.append((name, reason))

    def finish(self) -> None:
        self.finished = time.monotonic()

    @property
    def done(self) -> int:
        """Entries dealt with: sent, skipped or failed."""
        return self.sent_files + self.skipped.total() + self.unreadable

    @property
    def elapsed(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    def files_per_second(self) -> float:
        return self.sent_files / self.elapsed if self.elapsed > 0 else 0.0

    def mb_per_second(self) -> float:
        return self.sent_bytes / MB / self.elapsed if self.elapsed > 0 else 0.0

    def counts(self) -> str:
        """stored: 12, already stored: 3, skipped: 2 (1 not DICOM, 1 DICOMDIR), failed: 1"""
        skipped = f"skipped: {self.skipped.total()}"
        if self.skipped:
            detail = ", ".join(f"{n} {reason.value}" for reason, n in sorted_reasons(self.skipped))
            skipped += f" ({detail})"
        return (
            f"stored: {self.stored}, already stored: {self.already_stored}, {skipped}, "
            f"failed: {len(self.failed)}"
        )

    def short_counts(self) -> str:
        return (
            f"stored {self.stored} · already stored {self.already_stored} · "
            f"skipped {self.skipped.total()} · failed {len(self.failed)}"
        )

    def summary(self, interrupted: bool = False) -> str:
        lines = [
            f"{'Interrupted' if interrupted else 'Done'}: {self.sent_files} DICOM files "
            f"({self.sent_bytes / MB:.1f} MB) in {self.elapsed:.1f} s: "
            f"{self.files_per_second():.1f} files/s, {self.mb_per_second():.1f} MB/s",
            self.counts(),
        ]
        if self.stopped:
            lines.append(f"Stopped early: {self.stopped}; the files after that were not sent")
        if self.failed:
            lines.append(f"Failed ({len(self.failed)}):")
            lines.extend(f"  {name}: {reason}" for name, reason in self.failed)
        return "\n".join(lines) + "\n"


def sorted_reasons(skipped: Counter[SkipReason]) -> list[tuple[SkipReason, int]]:
    order = list(SkipReason)
    return sorted(skipped.items(), key=lambda item: order.index(item[0]))
