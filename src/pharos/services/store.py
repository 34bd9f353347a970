"""Store instances: one path for REST uploads, DICOM C-STORE and STOW-RS.

Parse once, write the received bytes as they are (never re-encoded, unless IngestTranscoding
asks for another transfer syntax) durably, then index in one transaction. Success is reported
only after the commit; a failure leaves no index row.
"""

from __future__ import annotations

import hashlib
import io
import logging
import posixpath
import time
import uuid
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from pharos.dicom.encoders import LOSSY_TARGETS
from pharos.dicom.parse import ParsedInstance, parse_instance
from pharos.dicom.transcode import TranscodingError, transcode_file
from pharos.dicom.transfer_syntaxes import UNCOMPRESSED
from pharos.index.base import (
    DICOM_CONTENT_TYPE,
    Attachment,
    Index,
    NewInstance,
    Reception,
    ResourceRef,
    StoreStatus,
)
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.ids import ResourceIds
from pharos.model.levels import Level
from pharos.model.timeutil import now_iso
from pharos.plugins.manager import PluginManager
from pharos.plugins.types import origin_dict
from pharos.services.options import ServiceOptions
from pharos.storage.base import StorageArea
from pharos.storage.compression import Compression, compress

log = logging.getLogger(__name__)

# File writes in flight at once (each mostly waits on fsync).
IO_THREADS = 16
# Syntaxes IngestTranscoding leaves alone (as Orthanc 1.8.2+): videos, and the special ones.
NOT_TRANSCODED = frozenset(
    {
        *(f"1.2.840.10008.1.2.4.{n}" for n in range(100, 109)),  # MPEG-2, MPEG-4, HEVC
        "1.2.840.10008.1.2.6.1",  # RFC 2557 MIME encapsulation
        "1.2.840.10008.1.2.6.2",  # XML encoding
    }
)
# Zip members are inflated in memory: a bound against archives that inflate without end.
MAX_ARCHIVE_MEMBER = 2 << 30


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
    def __init__(
        self,
        index: Index,
        storage: StorageArea,
        options: ServiceOptions,
        plugins: PluginManager | None = None,
    ):
        self._index = index
        self._storage = storage
        self._options = options
        self._plugins = plugins or PluginManager()
        self._io = ThreadPoolExecutor(max_workers=IO_THREADS, thread_name_prefix="pharos-store")

    def store(self, data: bytes, reception: Reception) -> StoreResult:
        options = self._options
        parsed = parse_instance(data, options.default_encoding, options.extra_main_tags)
        # Plugins' filters, before anything is written; their listeners after the commit.
        plugins = self._plugins
        if plugins.has("pharos_incoming_instance_filter"):
            origin = _origin(reception)
            refusal = plugins.filter_instance(data, origin, options.default_encoding)
            if refusal is not None:
                log.warning("Instance %s not stored: %s", parsed.ids.instance, refusal.reason)
                raise PharosError(ErrorCode.FORBIDDEN_ACCESS, refusal.message("Instance"))
        result = self._store_parsed_or_transcoded(data, parsed, reception)
        if result.status is StoreStatus.SUCCESS and plugins.has("pharos_on_stored_instance"):
            plugins.notify_stored(
                result.ids.instance,
                data,
                _metadata(reception, parsed),
                _origin(reception),
                options.default_encoding,
            )
        return result

    def _store_parsed_or_transcoded(
        self, data: bytes, parsed: ParsedInstance, reception: Reception
    ) -> StoreResult:
        options = self._options
        if options.ingest_transcoding and self._needs_transcoding(parsed):
            # Same identity after a lossless transcoding: a resent instance costs no encoding.
            resent = (
                options.ingest_transcoding not in LOSSY_TARGETS
                and not options.overwrite_instances
                and self._index.lookup(parsed.ids.instance) is not None
            )
            if not resent:
                data, parsed = self._ingest_transcoded(data, parsed)
        return self.store_parsed(data, parsed, reception)

    def ingest_transcoded(self, data: bytes) -> bytes:
        """`data` as IngestTranscoding wants it stored, for files already stored (reconstruct):
        identity kept, `data` itself when nothing is to be done or transcoding fails."""
        options = self._options
        if not options.ingest_transcoding:
            return data
        parsed = parse_instance(data, options.default_encoding, options.extra_main_tags)
        if not self._needs_transcoding(parsed):
            return data
        return self._ingest_transcoded(data, parsed, keep_instance_uid=True)[0]

    def rewrite(self, ref: ResourceRef, data: bytes) -> ParsedInstance:
        """ReconstructFiles (Orthanc 1.11+): write the stored file `data` of instance `ref`
        again, as a new file (IngestTranscoding and StorageCompression applied as they are
        configured now), keeping the instance's identity. The index points at the new file
        only once it is durable; the old file is removed after that commit. The new file,
        parsed."""
        options = self._options
        new_data = self.ingest_transcoded(data)
        parsed = parse_instance(new_data, options.default_encoding, options.extra_main_tags)
        if parsed.ids.instance != ref.public_id:  # never: transcoding kept the UIDs
            raise PharosError(
                ErrorCode.INTERNAL_ERROR, f"Re-written file of {ref.public_id} changed identity"
            )
        file_uuid = str(uuid.uuid4())
        if options.storage_compression:
            payload, compression = compress(new_data), Compression.ZLIB_WITH_SIZE
        else:
            payload, compression = new_data, Compression.NONE
        self._storage.create(file_uuid, payload)  # durable on return
        attachment = self._attachment(file_uuid, new_data, payload, compression)
        try:
            replaced = self._index.replace_instance_file(
                ref, attachment, parsed.transfer_syntax_uid, parsed.structure.pixel_data_offset
            )
        except BaseException:
            done: Future[None] = Future()
            done.set_result(None)
            self._discard(done, file_uuid)
            raise
        if replaced is not None and replaced != file_uuid:
            self._storage.remove(replaced)
        return parsed

    def _needs_transcoding(self, parsed: ParsedInstance) -> bool:
        """Orthanc's rule: not already in the syntax, and its kind (uncompressed or not) is
        enabled; videos and other syntaxes without pixels to re-encode are left alone."""
        options = self._options
        syntax = parsed.transfer_syntax_uid
        if not syntax or syntax == options.ingest_transcoding or syntax in NOT_TRANSCODED:
            return False
        if syntax in UNCOMPRESSED:
            return options.ingest_transcoding_of_uncompressed
        return options.ingest_transcoding_of_compressed

    def _ingest_transcoded(
        self, data: bytes, parsed: ParsedInstance, keep_instance_uid: bool = False
    ) -> tuple[bytes, ParsedInstance]:
        """The instance in the IngestTranscoding syntax, parsed; as received (with a warning)
        when it cannot be transcoded, as Orthanc does."""
        options = self._options
        target = options.ingest_transcoding
        try:
            transcoded = transcode_file(
                data, target, quality=options.lossy_quality, keep_instance_uid=keep_instance_uid
            )
            reparsed = parse_instance(transcoded, options.default_encoding, options.extra_main_tags)
        except (TranscodingError, PharosError) as exc:
            log.warning(
                "Cannot transcode instance %s to %s, stored as received (%s): %s",
                parsed.ids.instance,
                target,
                parsed.transfer_syntax_uid,
                exc,
            )
            return data, parsed
        return transcoded, reparsed

    def store_parsed(
        self, data: bytes, parsed: ParsedInstance, reception: Reception
    ) -> StoreResult:
        overwrite = self._options.overwrite_instances
        # Cheap pre-check: a resent instance costs no write. The transaction still decides.
        if not overwrite and self._index.lookup(parsed.ids.instance) is not None:
            return StoreResult(parsed.ids, StoreStatus.ALREADY_STORED)

        # The file is written and fsynced on an I/O thread while this one hashes it and the
        # index runs its statements; the transaction waits for the file just before COMMIT.
        file_uuid = str(uuid.uuid4())
        if self._options.storage_compression:
            payload, compression = compress(data), Compression.ZLIB_WITH_SIZE
        else:
            payload, compression = data, Compression.NONE
        written = self._io.submit(self._storage.create, file_uuid, payload)
        try:
            new = NewInstance(
                ids=parsed.ids,
                tags=parsed.tags,
                attachment=self._attachment(file_uuid, data, payload, compression),
                reception=reception,
                transfer_syntax=parsed.transfer_syntax_uid,
                sop_class_uid=parsed.sop_class_uid,
                pixel_data_offset=parsed.structure.pixel_data_offset,
                expected_instances=parsed.expected_instances,
                index_in_series=parsed.index_in_series,
                now=time.time(),
            )
            outcome = self._index.store_instance(new, overwrite, before_commit=written.result)
        except BaseException:
            self._discard(written, file_uuid)
            raise
        if outcome.status is StoreStatus.ALREADY_STORED:
            self._discard(written, file_uuid)
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
                if member.file_size > MAX_ARCHIVE_MEMBER:
                    too_large = PharosError(
                        ErrorCode.BAD_FILE_FORMAT,
                        f"Zip member of {member.file_size} bytes (more than {MAX_ARCHIVE_MEMBER})",
                    )
                    results.append(ArchiveMemberFailure(member.filename, too_large))
                    continue
                try:
                    content = archive.read(member)
                    results.append(self.store(content, reception))
                except PharosError as exc:
                    # Unreadable, or refused by a plugin: that file only.
                    if exc.code not in (ErrorCode.BAD_FILE_FORMAT, ErrorCode.FORBIDDEN_ACCESS):
                        raise
                    log.warning("Not stored from the zip archive: %s: %s", member.filename, exc)
                    results.append(ArchiveMemberFailure(member.filename, exc))
                except (zipfile.BadZipFile, OSError, RuntimeError, ValueError) as exc:
                    error = PharosError(ErrorCode.BAD_FILE_FORMAT, f"Unreadable zip member: {exc}")
                    results.append(ArchiveMemberFailure(member.filename, error))
        return results

    def _attachment(
        self, file_uuid: str, data: bytes, payload: bytes, compression: Compression
    ) -> Attachment:
        store_md5 = self._options.store_md5
        md5 = hashlib.md5(data).hexdigest() if store_md5 else None
        if payload is data:
            compressed_md5 = md5
        else:
            compressed_md5 = hashlib.md5(payload).hexdigest() if store_md5 else None
        return Attachment(
            content_type=DICOM_CONTENT_TYPE,
            uuid=file_uuid,
            compressed_size=len(payload),
            uncompressed_size=len(data),
            compression=int(compression),
            uncompressed_md5=md5,
            compressed_md5=compressed_md5,
        )

    def _discard(self, written: Future[None], file_uuid: str) -> None:
        """Remove a written file that the index does not reference. If indexing failed in a
        way that leaves the outcome unknown (a connection lost during COMMIT), keep it: the
        orphan clean-up at the next start removes it if it is not referenced."""
        try:
            written.result()
        except Exception:
            return  # nothing was written (create cleans up after itself)
        try:
            if file_uuid in self._index.unknown_files([file_uuid]):
                self._storage.remove(file_uuid)
        except Exception:
            log.warning("Kept file %s after a failed store; the next start-up checks it", file_uuid)

    def close(self) -> None:
        self._io.shutdown(wait=True)


def _origin(reception: Reception) -> dict[str, str]:
    return origin_dict(
        reception.origin,
        reception.remote_ip,
        reception.remote_aet,
        reception.called_aet,
        reception.http_username,
    )


def _metadata(reception: Reception, parsed: ParsedInstance) -> dict[str, str]:
    """The instance metadata the index records, for OnStoredInstance listeners."""
    metadata = {
        "ReceptionDate": now_iso(utc=False),
        "Origin": reception.origin,
        "RemoteAET": reception.remote_aet,
        "TransferSyntax": parsed.transfer_syntax_uid,
    }
    optional = {
        "SopClassUid": parsed.sop_class_uid,
        "RemoteIP": reception.remote_ip,
        "CalledAET": reception.called_aet,
        "HttpUsername": reception.http_username,
        "IndexInSeries": None if parsed.index_in_series is None else str(parsed.index_in_series),
    }
    metadata.update({key: value for key, value in optional.items() if value})
    return metadata
