"""What `/system` reports: Orthanc's fields, and Pharos's own name and version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pharos import ORTHANC_API_COMPATIBILITY, ORTHANC_API_VERSION, __version__

# Orthanc's database schema version that the Orthanc API reports; clients only display it.
ORTHANC_DATABASE_VERSION = 6


@dataclass(frozen=True, slots=True)
class SystemInfo:
    name: str
    dicom_aet: str
    dicom_port: int
    http_port: int
    remote_access_allowed: bool
    authentication_enabled: bool
    check_revisions: bool
    storage_compression: bool
    overwrite_instances: bool
    database_backend: str | None  # None for the embedded SQLite (Orthanc: no plugin)
    index_description: str
    storage_description: str
    storage_backend: str | None = None  # a plugin's StorageBackend; None for the folder

    def to_json(self) -> dict[str, Any]:
        return {
            "ApiVersion": ORTHANC_API_VERSION,
            "Version": ORTHANC_API_COMPATIBILITY,
            "Name": self.name,
            "DicomAet": self.dicom_aet,
            "DicomPort": self.dicom_port,
            "HttpPort": self.http_port,
            "DatabaseVersion": ORTHANC_DATABASE_VERSION,
            "DatabaseBackendPlugin": self.database_backend,
            "StorageAreaPlugin": self.storage_backend,
            "PluginsEnabled": True,  # Python plugins and Lua (pharos.plugins)
            "IsHttpServerSecure": not (
                self.remote_access_allowed and not self.authentication_enabled
            ),
            "CheckRevisions": self.check_revisions,
            "StorageCompression": self.storage_compression,
            "OverwriteInstances": self.overwrite_instances,
            "Capabilities": {
                "HasLabels": True,
                "HasExtendedChanges": False,
                "HasExtendedFind": False,
            },
            "PharosName": "Pharos",
            "PharosVersion": __version__,
            "PharosIndex": self.index_description,
            "PharosStorage": self.storage_description,
        }
