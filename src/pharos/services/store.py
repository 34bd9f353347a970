"""Store instances: one path for REST uploads, DICOM C-STORE and STOW-RS.

Parse once, write the received bytes as they are (never re-encoded) durably, then index in
one transaction. Success is reported only after the commit; a failure leaves no index row.
"""

from __future__ import annotations

import hashlib
import io
import logging
import posixpath
import time
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from pharos.dicom.parse import ParsedInstance, parse_instance
from pharos.index.base import (
    DICOM_CONTENT_TYPE,
    Attachment,
    Index,
    NewInstance,
    Reception,
    StoreStatus,
)
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.ids import ResourceIds
from pharos.model.levels import Level
from pharos.services.options import ServiceOptions
from pharos.storage.base import StorageArea
from pharos.storage.compression import Compression, compress

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StoreResult:
    ids: ResourceIds
    status: StoreStatus

    def to_json(self) -> dict[str, str]:
        """Orthanc's answer to an upload."""
        return {
            "ID": self.ids.instance,
            "ParentPatient": self.ids.patient,
            "ParentSeries": self.ids.series,
            "ParentStudy": self.ids.study,
            "Path": Level.INSTANCE.path(self.ids.instance),
            "Status": self.status.value,
        }


@dataclass(frozen=True, slots=True)
class ArchiveMemberFailure:
    """A file of an uploaded archive that was not stored, and why."""

    filename: str
    error: PharosError

    def to_json(self) -> dict[str, str]:
        return {
            "Filename": self.filename,
            "Status": "Failure",
            "Message": self.error.code.description,
            "Details": self.error.details or "",
        }


def is_zip(data: bytes) -> bool:
    return data[:4] in (b"PK\x03\x04", b"PK\x05\x06")


class StoreService:
    def __init__(self, index: Index, storage: StorageArea, options: ServiceOptions):
        self._index = index
        self._storage = storage
        self._options = options

    def store(self, data: bytes, reception: Reception) -> StoreResult:
        parsed = parse_instance(data, self._options.default_encoding)
        return self.store_parsed(data, parsed, reception)

    def store_parsed(
        self, data: bytes, parsed: ParsedInstance, reception: Reception
    ) -> StoreResult:
        overwrite = self._options.overwrite_instances
        # Cheap pre-check: a resent instance costs no write. The transaction still decides.
        if not overwrite and self._index.lookup(parsed.ids.instance) is not None:
            return StoreResult(parsed.ids, StoreStatus.ALREADY_STORED)

        attachment = self._write_file(data)
        new = NewInstance(
            ids=parsed.ids,
            tags=parsed.tags,
            attachment=attachment,
            reception=reception,
            transfer_syntax=parsed.transfer_syntax_uid,
            sop_class_uid=parsed.sop_class_uid,
            pixel_data_offset=parsed.structure.pixel_data_offset,
            expected_instances=parsed.expected_instances,
            index_in_series=parsed.index_in_series,
            now=time.time(),
        )
        try:
            outcome = self._index.store_instance(new, overwrite)
        except Exception:
            self._discard(attachment.uuid)
            raise
        if outcome.status is StoreStatus.ALREADY_STORED:
            self._storage.remove(attachment.uuid)
        for replaced in outcome.replaced_files:
            self._storage.remove(replaced)
        return StoreResult(parsed.ids, outcome.status)

    def store_archive(
        self, data: bytes, reception: Reception
    ) -> list[StoreResult | ArchiveMemberFailure]:
        """Every DICOM file of a zip archive (Orthanc 1.8.2+); DICOMDIR index files are skipped."""
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except (zipfile.BadZipFile, OSError) as exc:
            raise PharosError(ErrorCode.BAD_FILE_FORMAT, f"Invalid zip archive: {exc}") from None
        results: list[StoreResult | ArchiveMemberFailure] = []
        with archive:
            for member in archive.infolist():
                if member.is_dir() or member.file_size == 0:
                    continue
                if posixpath.basename(member.filename).upper() == "DICOMDIR":
                    continue
                try:
                    content = archive.read(member)
                    results.append(self.store(content, reception))
                except PharosError as exc:
                    if exc.code is not ErrorCode.BAD_FILE_FORMAT:
                        raise
                    log.warning("Not stored from the zip archive: %s: %s", member.filename, exc)
                    results.append(ArchiveMemberFailure(member.filename, exc))
                except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as exc:
                    error = PharosError(ErrorCode.BAD_FILE_FORMAT, f"Unreadable zip member: {exc}")
                    results.append(ArchiveMemberFailure(member.filename, error))
        return results

    def _write_file(self, data: bytes) -> Attachment:
        file_uuid = str(uuid.uuid4())
        md5: Callable[[bytes], str | None] = (
            (lambda b: hashlib.md5(b).hexdigest()) if self._options.store_md5 else (lambda b: None)
        )
        uncompressed_md5 = md5(data)
        if self._options.storage_compression:
            payload = compress(data)
            compression = Compression.ZLIB_WITH_SIZE
            compressed_md5 = md5(payload)
        else:
            payload = data
            compression = Compression.NONE
            compressed_md5 = uncompressed_md5
        self._storage.create(file_uuid, payload)
        return Attachment(
            content_type=DICOM_CONTENT_TYPE,
            uuid=file_uuid,
            compressed_size=len(payload),
            uncompressed_size=len(data),
            compression=int(compression),
            uncompressed_md5=uncompressed_md5,
            compressed_md5=compressed_md5,
        )

    def _discard(self, file_uuid: str) -> None:
        """Remove a file whose indexing failed, unless a commit whose outcome we did not see
        made it referenced (a connection lost during COMMIT). If in doubt, keep it: the
        orphan clean-up at the next start removes it for sure."""
        try:
            if file_uuid in self._index.unknown_files([file_uuid]):
                self._storage.remove(file_uuid)
        except Exception:
            log.warning("Kept file %s after a failed store; the next start-up checks it", file_uuid)
