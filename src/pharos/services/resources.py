"""Browse the hierarchy: resources as Orthanc's JSON, lists, parents and children, statistics."""

from __future__ import annotations

from typing import Any

from pharos.index.base import Index, ResourceInfo, ResourceRef, Statistics
from pharos.model.errors import ErrorCode, PharosError, unknown_resource
from pharos.model.ids import is_public_id
from pharos.model.levels import Level
from pharos.model.timeutil import iso_from_epoch

MEGABYTE = 1024 * 1024


class ResourceService:
    def __init__(self, index: Index):
        self._index = index

    def resolve(self, level: Level, public_id: str) -> ResourceRef:
        """The resource with this ID at this level; 404 otherwise."""
        ref = self._index.lookup(public_id) if is_public_id(public_id) else None
        if ref is None or ref.level is not level:
            raise unknown_resource(f"{level.title.lower()} {public_id}")
        return ref

    def list_ids(self, level: Level, since: int, limit: int | None) -> list[str]:
        return self._index.list_public_ids(level, since, limit)

    def list_expanded(self, level: Level, since: int, limit: int | None) -> list[dict[str, Any]]:
        return [resource_json(info) for info in self._index.list_resources(level, since, limit)]

    def get(self, level: Level, public_id: str) -> dict[str, Any]:
        return resource_json(self._index.resource_info(self.resolve(level, public_id)))

    def info(self, ref: ResourceRef) -> ResourceInfo:
        return self._index.resource_info(ref)

    def descendants(self, ref: ResourceRef, level: Level) -> list[ResourceRef]:
        if level < ref.level:
            raise PharosError(
                ErrorCode.BAD_REQUEST, f"{level.title} is not below {ref.level.title}"
            )
        return self._index.descendants(ref, level)

    def descendants_json(self, ref: ResourceRef, level: Level) -> list[dict[str, Any]]:
        refs = self.descendants(ref, level)
        return [resource_json(info) for info in self._index.resources_info(refs)]

    def ancestor(self, ref: ResourceRef, level: Level) -> ResourceRef:
        if level > ref.level:
            raise PharosError(
                ErrorCode.BAD_REQUEST, f"{level.title} is not above {ref.level.title}"
            )
        return self._index.ancestor(ref, level)

    def ancestor_json(self, ref: ResourceRef, level: Level) -> dict[str, Any]:
        return resource_json(self._index.resource_info(self.ancestor(ref, level)))

    def main_tags(self, ref: ResourceRef) -> dict[str, str]:
        return self._index.main_tags(ref)

    def statistics_json(self) -> dict[str, Any]:
        stats = self._index.statistics()
        return {
            "CountInstances": stats.instances,
            "CountPatients": stats.patients,
            "CountSeries": stats.series,
            "CountStudies": stats.studies,
            "TotalDiskSize": str(stats.disk_size),
            "TotalDiskSizeMB": stats.disk_size // MEGABYTE,
            "TotalUncompressedSize": str(stats.uncompressed_size),
            "TotalUncompressedSizeMB": stats.uncompressed_size // MEGABYTE,
        }

    def resource_statistics_json(self, ref: ResourceRef) -> dict[str, Any]:
        return resource_statistics_json(ref.level, self._index.resource_statistics(ref))


def resource_json(info: ResourceInfo) -> dict[str, Any]:
    """A resource as Orthanc 1.10 shows it (GET /{level}/{id}), with 1.12's "Labels"."""
    level = info.ref.level
    result: dict[str, Any] = {"ID": info.ref.public_id, "Type": level.title}
    if level.parent_key is not None:
        result[level.parent_key] = info.parent_public_id
    if level.children_key is not None:
        result[level.children_key] = info.children
    result["MainDicomTags"] = info.tags
    if level is Level.STUDY:
        result["PatientMainDicomTags"] = info.patient_tags or {}
    if level is Level.SERIES:
        result["ExpectedNumberOfInstances"] = info.expected_instances
        result["Status"] = info.series_status or "Unknown"
    if level is Level.INSTANCE:
        result["FileSize"] = info.file_size
        result["FileUuid"] = info.file_uuid
        result["IndexInSeries"] = info.index_in_series
    else:
        result["IsStable"] = info.stable
        result["LastUpdate"] = iso_from_epoch(info.updated_at)
    result["Labels"] = info.labels
    return result


def resource_statistics_json(level: Level, stats: Statistics) -> dict[str, Any]:
    result: dict[str, Any] = {
        "DiskSize": str(stats.disk_size),
        "DiskSizeMB": stats.disk_size // MEGABYTE,
        "UncompressedSize": str(stats.uncompressed_size),
        "UncompressedSizeMB": stats.uncompressed_size // MEGABYTE,
        "DicomDiskSize": str(stats.dicom_disk_size),
        "DicomDiskSizeMB": stats.dicom_disk_size // MEGABYTE,
        "DicomUncompressedSize": str(stats.dicom_uncompressed_size),
        "DicomUncompressedSizeMB": stats.dicom_uncompressed_size // MEGABYTE,
    }
    if level is Level.PATIENT:
        result["CountStudies"] = stats.studies
    if level <= Level.STUDY:
        result["CountSeries"] = stats.series
    if level <= Level.SERIES:
        result["CountInstances"] = stats.instances
    return result
