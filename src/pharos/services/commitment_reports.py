"""The storage commitment reports of the transactions Pharos asked for (SCU side), kept in
memory as Orthanc keeps them: at most `StorageCommitmentReportsSize` (0: no limit), the least
recently used dropped first; lost at restart.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pharos.dicom.storage_commitment import Failure, Reference, failure_description


@dataclass(frozen=True, slots=True)
class CommitmentReport:
    """What the peer answered to one transaction; `complete` once its N-EVENT-REPORT came."""

    remote_aet: str
    complete: bool = False
    successes: tuple[Reference, ...] = ()
    failures: tuple[Failure, ...] = ()

    @property
    def status(self) -> str:
        if not self.complete:
            return "Pending"
        return "Failure" if self.failures else "Success"

    def to_json(self) -> dict[str, Any]:
        """Orthanc's GET /storage-commitment/{id}: the lists once the report came."""
        answer: dict[str, Any] = {"RemoteAET": self.remote_aet, "Status": self.status}
        if self.complete:
            answer["Success"] = [_reference_json(ref) for ref in self.successes]
            answer["Failures"] = [
                {
                    **_reference_json(failure.reference),
                    "FailureReason": failure.reason,
                    "Description": failure_description(failure.reason),
                }
                for failure in self.failures
            ]
        return answer


def completed(
    remote_aet: str, successes: Sequence[Reference], failures: Sequence[Failure]
) -> CommitmentReport:
    return CommitmentReport(remote_aet, True, tuple(successes), tuple(failures))


def _reference_json(reference: Reference) -> dict[str, str]:
    return {
        "SOPClassUID": reference.sop_class_uid,
        "SOPInstanceUID": reference.sop_instance_uid,
    }


@dataclass
class CommitmentReports:
    """Thread-safe: the DICOM server's threads write, HTTP handlers read."""

    size: int = 100  # StorageCommitmentReportsSize; 0 for no limit
    _reports: OrderedDict[str, CommitmentReport] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, transaction_uid: str, report: CommitmentReport) -> None:
        with self._lock:
            self._reports.pop(transaction_uid, None)
            self._reports[transaction_uid] = report
            while self.size > 0 and len(self._reports) > self.size:
                self._reports.popitem(last=False)

    def get(self, transaction_uid: str) -> CommitmentReport | None:
        """The report (now the most recently used), if still kept."""
        with self._lock:
            report = self._reports.get(transaction_uid)
            if report is not None:
                self._reports.move_to_end(transaction_uid)
            return report

    def discard(self, transaction_uid: str) -> None:
        with self._lock:
            self._reports.pop(transaction_uid, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._reports)
