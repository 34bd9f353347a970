"""What the services need from a DICOM client (SCU), whatever implements it.

The REST API (`/modalities/...`) and the jobs reach remote modalities through this interface;
`pharos.dimse.scu` implements it on pynetdicom, and `context` wires it in, so that `http` and
`services` never import `dimse` (DESIGN.md: the ways in do not import each other).

Errors: every method raises `PharosError` — `NETWORK_PROTOCOL` (as Orthanc) when the
association cannot be made, is rejected or aborted, or the peer answers with a failure status
(the reason, status and error comment in the details); `TIMEOUT` when the peer does not answer
within the timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydicom.dataset import Dataset

from pharos.model.levels import Level
from pharos.services.dicom_retrieve import StoredInstance
from pharos.services.modalities import Modality


@dataclass(frozen=True, slots=True)
class Association:
    """How to reach a modality for one operation."""

    modality: Modality
    local_aet: str  # the calling AE title (`LocalAet`, else the modality's, else DicomAet)
    timeout: float | None  # seconds for each network step (`Timeout`, else DicomScuTimeout)

    @classmethod
    def to(
        cls,
        modality: Modality,
        dicom_aet: str,
        scu_timeout: int,
        local_aet: str | None = None,
        timeout: int | None = None,
    ) -> Association:
        """The association as asked (`local_aet`, `timeout`), else as the modality says, else
        with DicomAet and DicomScuTimeout (0: none)."""
        if timeout is None:
            timeout = modality.timeout or scu_timeout
        aet = local_aet or modality.local_aet or dicom_aet
        return cls(modality, aet, float(timeout) if timeout else None)


@dataclass(frozen=True, slots=True)
class StoreRequest:
    instances: Sequence[StoredInstance]
    # Loads the stored file of an instance (as RetrieveService.load).
    load: Callable[[StoredInstance], Dataset]
    move_originator_aet: str | None = None
    move_originator_id: int | None = None
    # Transcode when the peer does not accept the stored transfer syntax (the modality's
    # AllowTranscoding); otherwise such an instance fails.
    allow_transcoding: bool = True


@dataclass(frozen=True, slots=True)
class FailedInstance:
    sop_instance_uid: str
    reason: str


@dataclass(slots=True)
class StoreReport:
    sent: int = 0
    failed: list[FailedInstance] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FindRequest:
    level: Level
    identifier: Dataset  # the C-FIND keys, with QueryRetrieveLevel set
    study_root: bool = False  # Study Root instead of Patient Root (never for the patient level)


@dataclass(frozen=True, slots=True)
class MoveRequest:
    level: Level
    identifiers: Sequence[Dataset]  # one C-MOVE per identifier, on one association
    target_aet: str  # the Move Destination


@dataclass(slots=True)
class RetrieveReport:
    completed: int = 0
    failed: int = 0
    warning: int = 0


# C-GET hands each received instance to this; it returns the C-STORE status to answer.
ReceivedInstance = Callable[[Dataset, str], int]  # (dataset, transfer syntax UID) -> status
# A storage commitment report (N-EVENT-REPORT) a peer sends on the association of its
# request; returns the status to answer. (calling AE title, event type, event information)
ReceivedReport = Callable[[str, int, Dataset | None], int]


class DicomClient(Protocol):
    def echo(self, association: Association) -> None: ...

    def store(self, association: Association, request: StoreRequest) -> StoreReport:
        """Sends all the instances over one association."""
        ...

    def find(self, association: Association, request: FindRequest) -> list[Dataset]:
        """The answers of a C-FIND (all the Pending identifiers)."""
        ...

    def move(self, association: Association, request: MoveRequest) -> RetrieveReport: ...

    def get(
        self, association: Association, request: MoveRequest, received: ReceivedInstance
    ) -> RetrieveReport:
        """C-GET; `request.target_aet` is ignored."""
        ...

    def request_commitment(
        self, association: Association, information: Dataset, received: ReceivedReport
    ) -> None:
        """Storage commitment N-ACTION (Push Model) with this Action Information; a report the
        peer sends back on the same association goes to `received`."""
        ...

    def report_commitment(
        self, association: Association, event_type: int, information: Dataset
    ) -> None:
        """Storage commitment N-EVENT-REPORT, on an association where we propose the SCP role."""
        ...
