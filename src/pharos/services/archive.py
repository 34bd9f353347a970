"""Archives and media: resources as a ZIP file (Orthanc's `/archive`, `/media`,
`/tools/create-archive`, `/tools/create-media`).

The ZIP is streamed (zipstream-ng): each stored file is read in chunks and written to the
ZIP as it is read, never the whole archive in memory or on disk. Files are STORED (DICOM
pixel data hardly deflates; Orthanc deflates at level 6, trading much CPU for a few
percent), with ZIP64 records where sizes or offsets pass 4 GB. A media archive ends with its
DICOMDIR, built from the header of each file as it went by.

An instance deleted while its archive is made is left out (as Orthanc does); a transfer
syntax a file cannot be transcoded to keeps that file as stored (as Orthanc does too).
"""

from __future__ import annotations

import io
import logging
import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pydicom
from pydicom.dataset import Dataset
from zipstream import ZIP_STORED, ZipStream

from pharos.dicom.dicomdir import DicomDirBuilder
from pharos.dicom.transcode import TranscodingError, check_target, transcode_file
from pharos.index.base import Attachment, Index, ResourceRef
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.jobs import parse_priority
from pharos.model.levels import Level
from pharos.services.archive_layout import ArchiveEntry, ArchiveLayout
from pharos.services.files import FileService
from pharos.services.options import ServiceOptions
from pharos.services.remote_requests import json_object, optional_bool, optional_string
from pharos.storage.base import StorageArea
from pharos.storage.compression import Compression

log = logging.getLogger(__name__)

CHUNK = 1 << 20  # bytes read from the storage area at a time
_SEND = 1 << 16  # smaller pieces of the ZIP are gathered up to this before being sent
_HEADER_DEFER = 1 << 16  # header elements larger than this are not read (media records)
ZIP_MIME = "application/zip"
_FILENAME = re.compile(r"[^A-Za-z0-9._ -]")


@dataclass(frozen=True, slots=True)
class ArchiveRequest:
    """What to put in an archive, and how."""

    resources: tuple[str, ...]
    media: bool = False  # IMAGES/IMxxx + DICOMDIR instead of the readable folder tree
    extended: bool = False  # extended DICOMDIR records
    transcode: str | None = None  # transfer syntax UID
    filename: str | None = None  # Content-Disposition of the answer
    asynchronous: bool = False  # as a job, whose output is the ZIP
    priority: int = 0
    description: str = "REST API"

    def to_json(self) -> dict[str, Any]:
        return {
            "Resources": list(self.resources),
            "Media": self.media,
            "Extended": self.extended,
            "Transcode": self.transcode,
            "Filename": self.filename,
            "Priority": self.priority,
            "Description": self.description,
        }

    @staticmethod
    def from_json(value: Mapping[str, Any]) -> ArchiveRequest:
        return ArchiveRequest(
            resources=tuple(str(item) for item in value["Resources"]),
            media=bool(value["Media"]),
            extended=bool(value["Extended"]),
            transcode=value.get("Transcode"),
            filename=value.get("Filename"),
            asynchronous=True,
            priority=int(value.get("Priority", 0)),
            description=str(value.get("Description", "REST API")),
        )


@dataclass(frozen=True, slots=True)
class ArchivePlan:
    request: ArchiveRequest
    entries: list[ArchiveEntry]

    @property
    def uncompressed_size(self) -> int:
        return sum(entry.attachment.uncompressed_size for entry in self.entries)


class ArchiveProgress:
    """Counts what a ZIP stream has written so far (read by the archive job)."""

    def __init__(self) -> None:
        self.entries = 0  # files of the plan done (written or skipped), then the DICOMDIR
        self.written = 0  # bytes of ZIP produced

    def entry_done(self) -> None:
        self.entries += 1


# -- reading requests -------------------------------------------------------------------------


def archive_request(
    body: bytes | None,
    query: Mapping[str, str],
    resources: list[str] | None,
    *,
    media: bool,
    extended: bool = False,
    description: str = "REST API",
) -> ArchiveRequest:
    """The request of a route: its JSON body (POST; `Resources` unless the route names the
    resource), then `?transcode=`, `?filename=` and, for media, `?extended`."""
    fields: dict[str, Any] = {}
    if body is not None:
        fields = json_object(body, empty_ok=True)
    if resources is None:
        if "Resources" not in fields:
            raise PharosError(ErrorCode.BAD_FILE_FORMAT, 'Missing field in JSON: "Resources"')
        listed = fields["Resources"]
        if not isinstance(listed, list) or not all(isinstance(i, str) for i in listed):
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT, '"Resources" must be a JSON array of strings'
            )
        if not listed:
            raise PharosError(ErrorCode.BAD_FILE_FORMAT, '"Resources" must not be empty')
        resources = [item.strip() for item in listed]
    asynchronous = optional_bool(fields, "Asynchronous", False)
    if not optional_bool(fields, "Synchronous", True):
        asynchronous = True
    if media:
        extended = optional_bool(fields, "Extended", extended)
        if "extended" in query:
            extended = query["extended"].strip().lower() not in ("0", "false", "no", "off")
    transcode = optional_string(fields, "Transcode") or query.get("transcode") or None
    if transcode is not None:
        try:
            transcode = str(check_target(transcode))
        except TranscodingError as exc:
            raise PharosError(ErrorCode.BAD_REQUEST, str(exc)) from None
    filename = optional_string(fields, "Filename") or query.get("filename") or None
    if filename is not None:
        filename = _FILENAME.sub("_", filename).strip() or None
    return ArchiveRequest(
        resources=tuple(resources),
        media=media,
        extended=extended,
        transcode=transcode,
        filename=filename,
        asynchronous=asynchronous,
        priority=parse_priority(fields.get("Priority")),
        description=description,
    )


# -- the service ------------------------------------------------------------------------------


class ArchiveService:
    def __init__(
        self,
        index: Index,
        storage: StorageArea,
        files: FileService,
        options: ServiceOptions,
    ):
        self._layout = ArchiveLayout(index)
        self._storage = storage
        self._files = files
        self._options = options

    def resolve(self, request: ArchiveRequest) -> list[ResourceRef]:
        """The resources of the request; 404 when one is unknown."""
        return self._layout.resolve(list(request.resources))

    def plan(self, request: ArchiveRequest) -> ArchivePlan:
        """The files of the archive; 404 when a resource is unknown."""
        refs = self._layout.resolve(list(request.resources))
        return ArchivePlan(request, self._layout.entries(refs, request.media))

    def filename(self, request: ArchiveRequest, default: str) -> str:
        name = request.filename or default
        return name if name.lower().endswith(".zip") else name + ".zip"

    def stream(
        self, plan: ArchivePlan, progress: ArchiveProgress | None = None, gather: bool = True
    ) -> Iterator[bytes]:
        """The ZIP, in pieces of at least 64 KiB (but the last) unless not `gather`ed."""
        pieces = self._zip(plan, progress or ArchiveProgress())
        return _gathered(pieces) if gather else pieces

    def _zip(self, plan: ArchivePlan, progress: ArchiveProgress) -> Iterator[bytes]:
        request = plan.request
        zipped = ZipStream(compress_type=ZIP_STORED)
        dicomdir = DicomDirBuilder(extended=request.extended) if request.media else None
        for entry in plan.entries:
            content = self._content(entry, request.transcode, request.media)
            if content is None:
                progress.entry_done()
                continue
            chunks, size, header = content
            zipped.add(chunks, entry.path, size=size)
            for piece in zipped.file():
                progress.written += len(piece)
                yield piece
            if dicomdir is not None and header is not None:
                dicomdir.add(entry.path.split("/"), header)
            progress.entry_done()
        if dicomdir is not None:
            zipped.add(dicomdir.encode(), "DICOMDIR")
            for piece in zipped.file():
                progress.written += len(piece)
                yield piece
            progress.entry_done()
        for piece in zipped.footer():
            progress.written += len(piece)
            yield piece

    def _content(
        self, entry: ArchiveEntry, transcode: str | None, media: bool
    ) -> tuple[Iterator[bytes], int, Dataset | None] | None:
        """The chunks of a file, its size and (media) its header; None when the file is gone
        (the instance was deleted since the plan). Read before the file's entry starts, so
        that a file gone leaves no half entry."""
        attachment = entry.attachment
        try:
            if transcode is not None:
                data = self._transcoded(entry, transcode)
                header = _header(io.BytesIO(data)) if media else None
                return iter((data,)), len(data), header
            header = self._header(entry) if media else None
            chunks = self._chunks(attachment)
            first = next(chunks, b"")
        except PharosError as exc:
            if exc.code is not ErrorCode.INEXISTENT_FILE:
                raise
            log.warning("Archive: instance %s was deleted meanwhile", entry.instance.public_id)
            return None
        return _prepend(first, chunks), attachment.uncompressed_size, header

    def _transcoded(self, entry: ArchiveEntry, transfer_syntax: str) -> bytes:
        data = self._files.read(entry.attachment)
        try:
            return transcode_file(data, transfer_syntax, quality=self._options.lossy_quality)
        except TranscodingError as exc:
            log.info("Archive: %s kept as stored: %s", entry.instance.public_id, exc)
            return data

    def _chunks(self, attachment: Attachment) -> Iterator[bytes]:
        uuid = attachment.uuid
        if attachment.compression == Compression.ZLIB_WITH_SIZE:
            yield from self._uncompressed_chunks(attachment)
            return
        position = 0
        while position < attachment.compressed_size:
            data = self._storage.read_range(uuid, position, position + CHUNK)
            if not data:
                raise PharosError(ErrorCode.CORRUPTED_FILE, f"Stored file {uuid} is truncated")
            position += len(data)
            yield data

    def _uncompressed_chunks(self, attachment: Attachment) -> Iterator[bytes]:
        """Storage compression (a uint64 size, then zlib), inflated chunk by chunk."""
        uuid = attachment.uuid
        head = self._storage.read_range(uuid, 0, 8)
        if len(head) < 8:
            raise PharosError(ErrorCode.CORRUPTED_FILE, f"Stored file {uuid} is truncated")
        inflater = zlib.decompressobj()
        position, produced = 8, 0
        (expected,) = struct.unpack("<Q", head)
        try:
            while position < attachment.compressed_size:
                data = self._storage.read_range(uuid, position, position + CHUNK)
                if not data:
                    break
                position += len(data)
                out = inflater.decompress(data)
                produced += len(out)
                if out:
                    yield out
            tail = inflater.flush()
        except zlib.error as exc:
            raise PharosError(ErrorCode.CORRUPTED_FILE, f"Corrupted file {uuid}: {exc}") from None
        produced += len(tail)
        if tail:
            yield tail
        if produced != expected:
            raise PharosError(ErrorCode.CORRUPTED_FILE, f"Stored file {uuid} has the wrong size")

    def _header(self, entry: ArchiveEntry) -> Dataset:
        """The header of a stored file, read from the storage area up to its pixel data."""
        attachment = entry.attachment
        if attachment.compression == Compression.ZLIB_WITH_SIZE:
            return _header(io.BytesIO(self._files.read(attachment)))
        raw = _StoredFile(self._storage, attachment.uuid, attachment.compressed_size)
        return _header(io.BufferedReader(raw, buffer_size=1 << 16))


def describe(level: Level, public_id: str) -> str:
    return f"REST API: {level.title.lower()} {public_id}"


def with_resources(request: ArchiveRequest, resources: list[str]) -> ArchiveRequest:
    return replace(request, resources=tuple(resources))


def _header(stream: io.IOBase) -> Dataset:
    try:
        return pydicom.dcmread(
            stream, stop_before_pixels=True, defer_size=_HEADER_DEFER, force=True
        )
    except PharosError:
        raise  # e.g. the file is gone
    except Exception as exc:  # checked at ingest: the stored file is damaged
        raise PharosError(ErrorCode.CORRUPTED_FILE, f"Unreadable stored file: {exc}") from None


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    if first:
        yield first
    yield from rest


def _gathered(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Small pieces (ZIP headers) joined to their neighbours: fewer, larger sends."""
    pending: list[bytes] = []
    size = 0
    for piece in pieces:
        if len(piece) >= _SEND:
            if pending:
                yield b"".join(pending)
                pending, size = [], 0
            yield piece
            continue
        pending.append(piece)
        size += len(piece)
        if size >= _SEND:
            yield b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


class _StoredFile(io.RawIOBase):
    """A stored (uncompressed) file as a seekable read-only stream over `read_range`."""

    def __init__(self, storage: StorageArea, uuid: str, size: int):
        self._storage = storage
        self._uuid = uuid
        self._size = size
        self._position = 0

    @property
    def name(self) -> str:
        # pydicom notes where deferred values are: never read back here (only small keys).
        return self._uuid

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        end = min(self._size, self._position + len(view))
        if end <= self._position:
            return 0
        data = self._storage.read_range(self._uuid, self._position, end)
        view[: len(data)] = data
        self._position += len(data)
        return len(data)
