"""The annotations part of the index interface: metadata, attachments, labels, protection.

`Index` in base.py combines this protocol with the others. Numbers are Orthanc's
(`MetadataType`, `FileContentType`), so that clients sending numbers see the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from pharos.index.base import Attachment, ResourceRef

# Orthanc's MetadataType numbers of the built-in metadata (1.10: up to PixelDataOffset).
INDEX_IN_SERIES = 1
RECEPTION_DATE = 2
REMOTE_AET = 3
EXPECTED_NUMBER_OF_INSTANCES = 4
MODIFIED_FROM = 5
ANONYMIZED_FROM = 6
LAST_UPDATE = 7
ORIGIN = 8
TRANSFER_SYNTAX = 9
SOP_CLASS_UID = 10
REMOTE_IP = 11
CALLED_AET = 12
HTTP_USERNAME = 13
PIXEL_DATA_OFFSET = 14

# User metadata and user attachments share Orthanc's range of numbers.
USER_FIRST = 1024
USER_LAST = 65535


def is_user_type(number: int) -> bool:
    return USER_FIRST <= number <= USER_LAST


@dataclass(frozen=True, slots=True)
class MetadataValue:
    value: str
    revision: int = 0  # built-in metadata are never rewritten: always 0


@dataclass(frozen=True, slots=True)
class ExpectedRevision:
    """What the client believes the current version is (the ETag it sends in If-Match):
    a revision and an MD5 (of the metadata value, or of the uncompressed attachment).

    Orthanc semantics: it is checked only against an existing item; setting an item that
    does not exist yet ignores it and starts at revision 0."""

    revision: int
    md5: str

    def matches(self, revision: int, md5: str | None) -> bool:
        return self.revision == revision and self.md5 == (md5 or "")


@dataclass(frozen=True, slots=True)
class AttachmentUpdate:
    revision: int  # the new revision
    replaced_uuid: str | None  # the file of the previous version, to remove after the commit


class AnnotationIndex(Protocol):
    # Metadata: built-in ones (from the resource's own columns) and stored ones (any number).
    def all_metadata(self, ref: ResourceRef) -> dict[int, MetadataValue]:
        """Every metadata of the resource, by number, in increasing order."""
        ...

    def metadata_value(self, ref: ResourceRef, number: int) -> MetadataValue | None: ...

    def set_metadata(
        self,
        ref: ResourceRef,
        number: int,
        value: str,
        expected: ExpectedRevision | None,
        log_change: bool,
    ) -> int:
        """Create or replace a stored metadata in one transaction; the new revision.
        Raises Orthanc's Revision error if `expected` does not match the existing one."""
        ...

    def delete_metadata(
        self, ref: ResourceRef, number: int, expected: ExpectedRevision | None, log_change: bool
    ) -> bool:
        """False if there was no such metadata."""
        ...

    # Attachments (the DICOM file is content type 1).
    def attachments(self, ref: ResourceRef) -> list[Attachment]:
        """The attachments of the resource, by content type."""
        ...

    def set_attachment(
        self,
        ref: ResourceRef,
        attachment: Attachment,
        expected: ExpectedRevision | None,
        log_change: bool,
    ) -> AttachmentUpdate:
        """Create or replace an attachment whose file is already durable."""
        ...

    def replace_instance_file(
        self,
        ref: ResourceRef,
        attachment: Attachment,
        transfer_syntax: str,
        pixel_data_offset: int | None,
    ) -> str | None:
        """Point an instance at a re-written DICOM file (already durable), with its transfer
        syntax and pixel data offset, in one transaction; the UUID of the previous file."""
        ...

    def delete_attachment(
        self,
        ref: ResourceRef,
        content_type: int,
        expected: ExpectedRevision | None,
        log_change: bool,
    ) -> str | None:
        """The UUID of the removed file (to remove after the commit), None if there was none."""
        ...

    # Labels (Orthanc 1.12).
    def labels(self, ref: ResourceRef) -> list[str]: ...

    def add_label(self, ref: ResourceRef, label: str) -> None: ...

    def remove_label(self, ref: ResourceRef, label: str) -> None: ...

    def all_labels(self) -> list[str]: ...

    # Protection against recycling (patients).
    def is_protected(self, ref: ResourceRef) -> bool: ...

    def set_protected(self, ref: ResourceRef, protected: bool) -> None: ...
