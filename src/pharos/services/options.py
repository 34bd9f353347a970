"""The run-time options the services read (from the configuration, some changeable live)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pharos.dicom.extra_tags import ExtraMainTags


@dataclass(slots=True)
class ServiceOptions:
    overwrite_instances: bool = False
    storage_compression: bool = False
    store_md5: bool = True
    # Mutable at run time (PUT /tools/default-encoding); a str assignment is atomic.
    default_encoding: str = "Latin1"
    stable_age: float = 60.0
    # Search (/tools/find): Orthanc's options of the same names.
    case_sensitive_pn: bool = False
    storage_access_on_find: str = "Always"
    limit_find_results: int = 0
    limit_find_instances: int = 0
    # Orthanc 1.11's ExtraMainDicomTags: indexed at ingest (and by /reconstruct).
    extra_main_tags: ExtraMainTags = field(default_factory=ExtraMainTags)
    # Annotations: the `UserMetadata` and `UserContentType` sections as configured.
    user_metadata: dict[str, Any] = field(default_factory=dict)
    user_content_types: dict[str, Any] = field(default_factory=dict)
    check_revisions: bool = False
    # Transcoding: IngestTranscoding ("" = off) and its companions, and the quality of lossy
    # targets (DicomLossyTranscodingQuality; ?transcode= and ingest alike).
    ingest_transcoding: str = ""
    ingest_transcoding_of_uncompressed: bool = True
    ingest_transcoding_of_compressed: bool = True
    lossy_quality: int = 90
