"""Metadata, attachments, labels and protection of resources (Orthanc's semantics).

Built-in metadata and the system attachments ("dicom") are read-only, as in Orthanc: only
numbers 1024 to 65535 (named in `UserMetadata` / `UserContentType`, or given as numbers)
can be written. Attachment files are written durably before the index transaction that
references them, and the files they replace are removed after its commit.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from pharos.index.base import Attachment, Index, ResourceRef
from pharos.index.base_annotations import (
    ExpectedRevision,
    MetadataValue,
    is_user_type,
)
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.dicomweb_retrieve import METADATA_CONTENT_TYPE
from pharos.services.files import FileService
from pharos.services.options import ServiceOptions
from pharos.services.thumbnails import THUMBNAIL_CONTENT_TYPE as THUMBNAIL
from pharos.storage.base import StorageArea
from pharos.storage.compression import Compression, compress

# Internal caches (thumbnails, DICOMweb metadata): not Orthanc attachments.
_INTERNAL = frozenset({THUMBNAIL, METADATA_CONTENT_TYPE})

log = logging.getLogger(__name__)

DICOM_AS_JSON = 2  # Orthanc's FileContentType_DicomAsJson: the only system one deletable
_BUILTIN_METADATA = {
    1: "IndexInSeries",
    2: "ReceptionDate",
    3: "RemoteAET",
    4: "ExpectedNumberOfInstances",
    5: "ModifiedFrom",
    6: "AnonymizedFrom",
    7: "LastUpdate",
    8: "Origin",
    9: "TransferSyntax",
    10: "SopClassUid",
    11: "RemoteIP",
    12: "CalledAET",
    13: "HttpUsername",
    14: "PixelDataOffset",
}
_SYSTEM_CONTENT_TYPES = {1: "dicom", DICOM_AS_JSON: "dicom-as-json", 3: "dicom-until-pixel-data"}
_SYSTEM_MIME_TYPES = {1: "application/dicom", DICOM_AS_JSON: "application/json; charset=utf-8"}
BINARY = "application/octet-stream"
_INTEGER = re.compile(r"^-?[0-9]+$")
_LABEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TRUE = {"1", "true"}
_FALSE = {"0", "false"}


@dataclass(frozen=True, slots=True)
class Written:
    """The outcome of a write, for the ETag of the answer."""

    revision: int
    md5: str


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class AnnotationService:
    def __init__(
        self, index: Index, storage: StorageArea, files: FileService, options: ServiceOptions
    ):
        self._index = index
        self._storage = storage
        self._files = files
        self._options = options
        # Checked at start-up, as Orthanc does: a bad declaration stops the server.
        self.names = AnnotationNames(options.user_metadata, options.user_content_types)

    # -- metadata ---------------------------------------------------------------------------

    def list_metadata(self, ref: ResourceRef, expand: bool, numeric: bool) -> Any:
        found = self._index.all_metadata(ref)
        if expand:
            return {
                str(n) if numeric else self.names.metadata_name(n): v.value
                for n, v in found.items()
            }
        return [n if numeric else self.names.metadata_name(n) for n in found]

    def get_metadata(self, ref: ResourceRef, name: str) -> MetadataValue:
        number = self.names.metadata_number(name)
        value = self._index.metadata_value(ref, number)
        if value is None:
            raise PharosError(
                ErrorCode.UNKNOWN_RESOURCE, f"No metadata {name!r} on {_describe(ref)}"
            )
        return value

    def set_metadata(
        self, ref: ResourceRef, name: str, body: bytes, if_match: ExpectedRevision | None
    ) -> Written:
        number = self._writable_metadata(name)
        value = _metadata_text(body)
        expected = if_match
        if expected is None and self._options.check_revisions:
            # Orthanc: with CheckRevisions, a metadata can be created without If-Match, but an
            # existing one cannot be replaced (this never matches an existing revision).
            expected = ExpectedRevision(-1, "")
        try:
            revision = self._index.set_metadata(ref, number, value, expected, log_change=True)
        except PharosError as exc:
            raise _missing_if_match(exc, if_match, f"metadata {name!r} exists") from None
        return Written(revision, md5_hex(value.encode("utf-8")))

    def delete_metadata(
        self, ref: ResourceRef, name: str, if_match: ExpectedRevision | None
    ) -> None:
        number = self._writable_metadata(name)
        self._require_if_match(if_match)
        if not self._index.delete_metadata(ref, number, if_match, log_change=True):
            raise PharosError(
                ErrorCode.UNKNOWN_RESOURCE, f"No metadata {name!r} on {_describe(ref)}"
            )

    def _writable_metadata(self, name: str) -> int:
        number = self.names.metadata_number(name)
        if not is_user_type(number):
            raise PharosError(
                ErrorCode.READ_ONLY,
                f"Metadata {name!r} is maintained by the server: only user metadata "
                "(numbered 1024 to 65535, see UserMetadata) can be set or deleted",
                http_status=403,
            )
        return number

    # -- attachments ------------------------------------------------------------------------

    def list_attachments(self, ref: ResourceRef, full: bool) -> Any:
        # Internal caches (the thumbnail) are not Orthanc attachments: not listed.
        found = [a for a in self._index.attachments(ref) if a.content_type not in _INTERNAL]
        if full:
            return {self.names.content_type_name(a.content_type): a.content_type for a in found}
        return [self.names.content_type_name(a.content_type) for a in found]

    def attachment(self, ref: ResourceRef, name: str) -> Attachment:
        content_type = self.names.content_type_number(name)
        found = self._index.attachment(ref, content_type)
        if found is None or content_type in _INTERNAL:
            raise PharosError(
                ErrorCode.UNKNOWN_RESOURCE, f"No attachment {name!r} on {_describe(ref)}"
            )
        return found

    def mime_type(self, content_type: int) -> str:
        return self.names.mime_type(content_type)

    def read(self, attachment: Attachment) -> bytes:
        """The attachment's content, uncompressed."""
        return self._files.read(attachment)

    def read_range(self, attachment: Attachment, start: int, end: int) -> bytes:
        """Bytes [start, end) of the uncompressed content; only the range is read from disk
        when the file is stored uncompressed."""
        if attachment.compression == Compression.NONE:
            return self._storage.read_range(attachment.uuid, start, end)
        return self._files.read(attachment)[start:end]

    def read_stored(self, attachment: Attachment) -> bytes:
        """The file as stored (compressed if it is)."""
        return self._storage.read(attachment.uuid)

    def put_attachment(
        self, ref: ResourceRef, name: str, data: bytes, if_match: ExpectedRevision | None
    ) -> Written:
        content_type = self.names.content_type_number(name)
        if not is_user_type(content_type):
            raise PharosError(
                ErrorCode.READ_ONLY,
                f"Attachment {name!r} is maintained by the server: only user attachments "
                "(numbered 1024 to 65535, see UserContentType) can be set",
                http_status=403,
            )
        expected = if_match
        if expected is None and self._options.check_revisions:
            expected = ExpectedRevision(-1, "")  # as for metadata: only creation is allowed
        target = Compression.ZLIB_WITH_SIZE if self._options.storage_compression else None
        try:
            revision = self._write_file(ref, content_type, data, target, expected)
        except PharosError as exc:
            raise _missing_if_match(exc, if_match, f"attachment {name!r} exists") from None
        return Written(revision, md5_hex(data))

    def delete_attachment(
        self, ref: ResourceRef, name: str, if_match: ExpectedRevision | None
    ) -> None:
        content_type = self.names.content_type_number(name)
        if not (is_user_type(content_type) or content_type == DICOM_AS_JSON):
            raise PharosError(
                ErrorCode.READ_ONLY,
                f"Attachment {name!r} cannot be deleted: only user attachments (numbered 1024 "
                "to 65535) can; delete the resource itself to remove its DICOM file",
                http_status=403,
            )
        self._require_if_match(if_match)
        removed = self._index.delete_attachment(
            ref, content_type, if_match, log_change=is_user_type(content_type)
        )
        if removed is None:
            raise PharosError(
                ErrorCode.UNKNOWN_RESOURCE, f"No attachment {name!r} on {_describe(ref)}"
            )
        self._remove_quietly(removed)

    def verify_md5(self, ref: ResourceRef, name: str) -> None:
        """Check the stored file against its MD5s; Orthanc's CorruptedFile error if it differs."""
        attachment = self.attachment(ref, name)
        if not attachment.compressed_md5 or not attachment.uncompressed_md5:
            raise PharosError(
                ErrorCode.BAD_REQUEST,
                f"Attachment {name!r} of {_describe(ref)} has no MD5 to verify "
                "(it was stored with StoreMD5ForAttachments set to false)",
            )
        stored = self._storage.read(attachment.uuid)
        if md5_hex(stored) != attachment.compressed_md5:
            raise _corrupted(name, ref, "stored file")
        compressed = attachment.compression != Compression.NONE
        if compressed and md5_hex(self._files.read(attachment)) != attachment.uncompressed_md5:
            raise _corrupted(name, ref, "uncompressed content")

    def set_compression(self, ref: ResourceRef, name: str, compressed: bool) -> None:
        """Store the attachment again, compressed or not (a new revision, as in Orthanc)."""
        attachment = self.attachment(ref, name)
        target = Compression.ZLIB_WITH_SIZE if compressed else Compression.NONE
        if attachment.compression == target:
            return
        data = self._files.read(attachment)
        # Never give a corrupted file a new, valid-looking MD5.
        if attachment.uncompressed_md5 and md5_hex(data) != attachment.uncompressed_md5:
            raise _corrupted(name, ref, "content")
        current = ExpectedRevision(attachment.revision, attachment.uncompressed_md5 or "")
        self._write_file(ref, attachment.content_type, data, target, current)

    def _write_file(
        self,
        ref: ResourceRef,
        content_type: int,
        data: bytes,
        compression: Compression | None,
        expected: ExpectedRevision | None,
    ) -> int:
        """Write a new file durably, then reference it in one index transaction; the file it
        replaces goes after the commit. Returns the new revision."""
        payload = compress(data) if compression == Compression.ZLIB_WITH_SIZE else data
        store_md5 = self._options.store_md5
        record = Attachment(
            content_type=content_type,
            uuid=str(uuid.uuid4()),
            compressed_size=len(payload),
            uncompressed_size=len(data),
            compression=int(compression or Compression.NONE),
            uncompressed_md5=md5_hex(data) if store_md5 else None,
            compressed_md5=None,
        )
        if store_md5:
            compressed_md5 = record.uncompressed_md5 if payload is data else md5_hex(payload)
            record = replace(record, compressed_md5=compressed_md5)
        self._storage.create(record.uuid, payload)
        try:
            update = self._index.set_attachment(
                ref, record, expected, log_change=is_user_type(content_type)
            )
        except PharosError:
            self._remove_quietly(record.uuid)  # refused inside the transaction: rolled back
            raise
        except BaseException:
            self._discard(record.uuid)
            raise
        if update.replaced_uuid is not None:
            self._remove_quietly(update.replaced_uuid)
        return update.revision

    def _require_if_match(self, if_match: ExpectedRevision | None) -> None:
        if if_match is None and self._options.check_revisions:
            raise PharosError(
                ErrorCode.REVISION, 'HTTP header "If-Match" is missing, as "CheckRevisions" is true'
            )

    def _remove_quietly(self, file_uuid: str) -> None:
        # The index no longer references it: a failure only leaves an orphan, which the
        # start-up clean-up removes.
        try:
            self._storage.remove(file_uuid)
        except Exception:
            log.exception("Could not remove file %s", file_uuid)

    def _discard(self, file_uuid: str) -> None:
        """After a failure that may have happened during the commit, remove the new file only
        if the index does not reference it; otherwise the start-up clean-up decides."""
        try:
            if file_uuid in self._index.unknown_files([file_uuid]):
                self._storage.remove(file_uuid)
        except Exception:
            log.warning("Kept file %s after a failed write; the next start-up checks it", file_uuid)

    # -- labels -----------------------------------------------------------------------------

    def labels(self, ref: ResourceRef) -> list[str]:
        return self._index.labels(ref)

    def has_label(self, ref: ResourceRef, label: str) -> None:
        """Raises 404 unless the resource has the label (Orthanc's GET .../labels/{label})."""
        if label not in self._index.labels(ref):
            raise PharosError(
                ErrorCode.UNKNOWN_RESOURCE, f"{_describe(ref).capitalize()} has no label {label!r}"
            )

    def add_label(self, ref: ResourceRef, label: str) -> None:
        self._index.add_label(ref, check_label(label))

    def remove_label(self, ref: ResourceRef, label: str) -> None:
        self._index.remove_label(ref, check_label(label))

    def all_labels(self) -> list[str]:
        return self._index.all_labels()

    # -- protection -------------------------------------------------------------------------

    def is_protected(self, ref: ResourceRef) -> bool:
        return self._index.is_protected(ref)

    def set_protected(self, ref: ResourceRef, body: bytes) -> None:
        if ref.level is not Level.PATIENT:
            raise PharosError(ErrorCode.BAD_REQUEST, "Only patients can be protected")
        text = body.decode("utf-8", errors="replace").strip().lower()
        if text in _TRUE:
            self._index.set_protected(ref, True)
        elif text in _FALSE:
            self._index.set_protected(ref, False)
        else:
            shown = text if len(text) <= 32 else text[:32] + "..."
            raise PharosError(
                ErrorCode.BAD_REQUEST,
                f'The body must be "1" (protect) or "0" (unprotect), or "true"/"false"; '
                f"found {shown!r}",
            )


class AnnotationConfigError(ValueError):
    """A bad `UserMetadata` or `UserContentType` declaration (Orthanc refuses to start too)."""


class AnnotationNames:
    """Orthanc's names of metadata and attachments, with the user-declared ones: names and
    numbers both designate an item in URIs (`/metadata/Sample` or `/metadata/1024`)."""

    def __init__(self, user_metadata: Mapping[str, Any], user_content_types: Mapping[str, Any]):
        self._metadata: dict[int, str] = dict(_BUILTIN_METADATA)
        self._content_types: dict[int, str] = dict(_SYSTEM_CONTENT_TYPES)
        self._mime_types: dict[int, str] = {}
        for name, value in user_metadata.items():
            _register(
                self._metadata, "UserMetadata", name, _user_number("UserMetadata", name, value)
            )
        for name, value in user_content_types.items():
            mime = BINARY
            if isinstance(value, list):
                if len(value) != 2 or not isinstance(value[1], str):
                    raise AnnotationConfigError(
                        f"UserContentType: {name!r} must be a number or [number, MIME type], "
                        f"found {value!r}"
                    )
                value, mime = value
            number = _user_number("UserContentType", name, value)
            _register(self._content_types, "UserContentType", name, number)
            self._mime_types[number] = mime
        self._metadata_numbers = {name: number for number, name in self._metadata.items()}
        self._content_type_numbers = {name: n for n, name in self._content_types.items()}

    def metadata_name(self, number: int) -> str:
        return self._metadata.get(number, str(number))

    def metadata_number(self, name: str) -> int:
        return _parse(name, self._metadata_numbers, "metadata")

    def content_type_name(self, number: int) -> str:
        return self._content_types.get(number, str(number))

    def content_type_number(self, name: str) -> int:
        return _parse(name, self._content_type_numbers, "attachment")

    def mime_type(self, content_type: int) -> str:
        found = self._mime_types.get(content_type) or _SYSTEM_MIME_TYPES.get(content_type)
        return found or BINARY


def _user_number(section: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise AnnotationConfigError(f"{section}: {name!r} must map to a number, found {value!r}")
    if not is_user_type(value):
        raise AnnotationConfigError(
            f"{section}: {name!r} has number {value}, outside the user range 1024 to 65535"
        )
    return value


def _register(names: dict[int, str], section: str, name: str, number: int) -> None:
    if not name or _INTEGER.match(name.strip()):
        raise AnnotationConfigError(f"{section}: {name!r} is not a valid name (not a number)")
    if number in names:
        raise AnnotationConfigError(
            f"{section}: {name!r} and {names[number]!r} both use number {number}"
        )
    if name in names.values():
        raise AnnotationConfigError(f"{section}: the name {name!r} is already in use")
    names[number] = name


def _parse(name: str, numbers: dict[str, int], what: str) -> int:
    """A name or a number, as Orthanc's EnumerationDictionary reads them."""
    if _INTEGER.match(name.strip()):
        number = int(name)
        if not -(2**31) <= number < 2**31:
            raise PharosError(
                ErrorCode.PARAMETER_OUT_OF_RANGE, f"{what} number out of range: {name}"
            )
        return number
    found = numbers.get(name)
    if found is None:
        raise PharosError(ErrorCode.INEXISTENT_ITEM, f"Unknown {what}: {name!r}")
    return found


def check_label(label: str) -> str:
    """Orthanc's label syntax: 1 to 64 ASCII letters, digits, '-' or '_'."""
    if not _LABEL.match(label):
        raise PharosError(
            ErrorCode.PARAMETER_OUT_OF_RANGE,
            "A label must be 1 to 64 characters among ASCII letters, digits, '-' and '_', "
            f"found {label!r}",
        )
    return label


def _metadata_text(body: bytes) -> str:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise PharosError(ErrorCode.BAD_REQUEST, "A metadata value must be UTF-8 text") from None
    if "\x00" in text:
        raise PharosError(ErrorCode.BAD_REQUEST, "A metadata value cannot contain NUL characters")
    return text


def _missing_if_match(
    exc: PharosError, if_match: ExpectedRevision | None, what: str
) -> PharosError:
    """Say why a write without If-Match was refused under CheckRevisions."""
    if exc.code is ErrorCode.REVISION and if_match is None:
        return PharosError(
            ErrorCode.REVISION,
            f'HTTP header "If-Match" is missing, as "CheckRevisions" is true and the {what}',
        )
    return exc


def _corrupted(name: str, ref: ResourceRef, part: str) -> PharosError:
    return PharosError(
        ErrorCode.CORRUPTED_FILE,
        f"The {part} of attachment {name!r} of {_describe(ref)} does not match its MD5",
    )


def _describe(ref: ResourceRef) -> str:
    return f"{ref.level.title.lower()} {ref.public_id}"
