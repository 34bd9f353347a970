"""The narrow interface of the metadata index, and the records it takes and returns."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from pharos.index.base_annotations import AnnotationIndex
from pharos.index.base_jobs import JobIndex
from pharos.index.base_modalities import ModalityIndex
from pharos.index.base_search import SearchIndex
from pharos.model.changes import Change
from pharos.model.ids import ResourceIds
from pharos.model.levels import Level

DICOM_CONTENT_TYPE = 1  # Orthanc's FileContentType_Dicom


@dataclass(frozen=True, slots=True)
class Attachment:
    content_type: int
    uuid: str
    compressed_size: int
    uncompressed_size: int
    compression: int
    uncompressed_md5: str | None
    compressed_md5: str | None
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Reception:
    """Where an instance came from (Orthanc's instance metadata)."""

    origin: str  # Orthanc's RequestOrigin: RestApi, DicomProtocol, Plugins, Lua, ...
    remote_aet: str = ""
    remote_ip: str | None = None
    called_aet: str | None = None
    http_username: str | None = None


@dataclass(frozen=True, slots=True)
class NewInstance:
    ids: ResourceIds
    tags: dict[Level, dict[str, str]]
    attachment: Attachment
    reception: Reception
    transfer_syntax: str
    sop_class_uid: str | None
    pixel_data_offset: int | None
    expected_instances: int | None
    index_in_series: int | None
    now: float  # epoch seconds


class StoreStatus(Enum):
    SUCCESS = "Success"
    ALREADY_STORED = "AlreadyStored"


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    status: StoreStatus
    replaced_files: list[str] = field(default_factory=list)  # to remove after commit


@dataclass(frozen=True, slots=True)
class ResourceRef:
    pk: int
    level: Level
    public_id: str
    parent_pk: int | None


@dataclass(slots=True)
class ResourceInfo:
    """Everything Orthanc's JSON of a resource shows."""

    ref: ResourceRef
    parent_public_id: str | None
    updated_at: float
    stable: bool
    tags: dict[str, str]
    patient_tags: dict[str, str] | None = None  # studies only
    children: list[str] = field(default_factory=list)
    expected_instances: int | None = None  # series only
    series_status: str | None = None  # series only
    file_size: int | None = None  # instances only
    file_uuid: str | None = None
    index_in_series: int | None = None
    labels: list[str] = field(default_factory=list)  # sorted (Orthanc 1.12)


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    deleted: bool  # False when the resource had already vanished (a concurrent delete)
    remaining_ancestor: tuple[Level, str] | None
    removed_files: list[str]  # to remove after commit


@dataclass(frozen=True, slots=True)
class Statistics:
    patients: int
    studies: int
    series: int
    instances: int
    disk_size: int
    uncompressed_size: int
    dicom_disk_size: int = 0
    dicom_uncompressed_size: int = 0


@dataclass(frozen=True, slots=True)
class Export:
    seq: int
    level: Level
    public_id: str
    remote_modality: str
    patient_id: str
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    date: str

    def to_json(self) -> dict[str, object]:
        result: dict[str, object] = {
            "Date": self.date,
            "ID": self.public_id,
            "Path": self.level.path(self.public_id),
            "PatientID": self.patient_id,
            "RemoteModality": self.remote_modality,
            "ResourceType": self.level.title,
            "Seq": self.seq,
        }
        if self.level >= Level.STUDY:
            result["StudyInstanceUID"] = self.study_instance_uid
        if self.level >= Level.SERIES:
            result["SeriesInstanceUID"] = self.series_instance_uid
        if self.level >= Level.INSTANCE:
            result["SOPInstanceUID"] = self.sop_instance_uid
        return result


class ConcurrentChange(Exception):
    """Raised inside a write transaction that found the database changed under it: the
    transaction is rolled back and run again (only another process sharing PostgreSQL can
    cause it)."""


class Index(SearchIndex, AnnotationIndex, ModalityIndex, JobIndex, Protocol):
    """What the services need from the metadata database; thread-safe."""

    def describe(self) -> str: ...

    def close(self) -> None: ...

    def reading(self) -> AbstractContextManager[None]:
        """The reads of this thread inside the block share one connection and transaction:
        one snapshot, and one round trip to begin and end instead of one per read."""
        ...

    # Store and delete
    def store_instance(
        self,
        instance: NewInstance,
        overwrite: bool,
        before_commit: Callable[[], None] | None = None,
    ) -> StoreOutcome:
        """Index an instance in one transaction; `before_commit` runs just before the commit."""
        ...

    def delete_resource(self, ref: ResourceRef) -> DeleteOutcome: ...

    # Browse
    def lookup(self, public_id: str) -> ResourceRef | None: ...

    def list_public_ids(self, level: Level, since: int, limit: int | None) -> list[str]: ...

    def list_resources(self, level: Level, since: int, limit: int | None) -> list[ResourceInfo]: ...

    def resource_info(self, ref: ResourceRef) -> ResourceInfo: ...

    def resources_info(self, refs: list[ResourceRef]) -> list[ResourceInfo]: ...

    def children(self, ref: ResourceRef) -> list[ResourceRef]: ...

    def descendants(self, ref: ResourceRef, level: Level) -> list[ResourceRef]: ...

    def ancestor(self, ref: ResourceRef, level: Level) -> ResourceRef: ...

    def main_tags(self, ref: ResourceRef) -> dict[str, str]: ...

    def attachment(self, ref: ResourceRef, content_type: int) -> Attachment | None: ...

    # Logs
    def changes(self, since: int, limit: int) -> tuple[list[Change], bool]: ...

    def last_change(self) -> Change | None: ...

    def clear_changes(self) -> None: ...

    def exports(self, since: int, limit: int) -> tuple[list[Export], bool]: ...

    def last_export(self) -> Export | None: ...

    def clear_exports(self) -> None: ...

    # Statistics and maintenance
    def statistics(self) -> Statistics: ...

    def resource_statistics(self, ref: ResourceRef) -> Statistics: ...

    def mark_stable(self, older_than: float, now: float) -> int: ...

    def unknown_files(self, uuids: Iterable[str]) -> set[str]: ...
