"""Walk the paths given to `pharos import` into the files to send, without extracting anything.

Folders are walked recursively; zip and tar archives (plain, gzip, bzip2, xz), including
archives found in folders or inside other archives, are read member by member as streams, so
memory holds one file at a time, never a whole archive. What each file is, is decided from its
first bytes, never from its name alone: DICOM files carry "DICM" at offset 128 (or are a bare
data set, which `check_structure` accepts), archives their own magic numbers.

Every file met becomes exactly one `Entry`: a `DicomFile` to send, a `Skipped` file (not
DICOM, a DICOMDIR, empty) or an `Unreadable` one (I/O error, corrupt archive).
"""

from __future__ import annotations

import io
import lzma
import os
import posixpath
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from struct import Struct
from typing import IO, BinaryIO, TypeAlias, cast

from pharos.dicom.structure import check_structure
from pharos.model.errors import PharosError

# Enough for the "DICM" magic (128), a tar header (magic at 257) and a typical file meta group.
HEAD_SIZE = 1024
# Files are held in memory while they are sent; the server bounds zip members the same way.
MAX_FILE_SIZE = 2 << 30
# Archives within archives within ...: a bound against archives that contain themselves.
MAX_NESTING = 8
# A zip found inside another archive needs random access: kept in memory up to this size,
# beyond it in an anonymous temporary file (deleted on close).
SPOOL_IN_MEMORY = 64 << 20

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"  # the SOP class of DICOMDIR files
COMPRESSED_TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")
ARCHIVE_SUFFIXES = (".zip", ".tar", *COMPRESSED_TAR_SUFFIXES)
_COMPRESSION_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")  # gzip, bzip2, xz

# Errors that reading a broken archive or file can raise.
ARCHIVE_ERRORS = (
    OSError,
    EOFError,
    zipfile.BadZipFile,
    tarfile.TarError,
    zlib.error,
    lzma.LZMAError,
    RuntimeError,  # zipfile: encrypted member
    ValueError,
)


class SkipReason(Enum):
    NOT_DICOM = "not DICOM"
    DICOMDIR = "DICOMDIR"
    EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class DicomFile:
    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Skipped:
    name: str
    reason: SkipReason


@dataclass(frozen=True, slots=True)
class Unreadable:
    name: str
    reason: str


Entry: TypeAlias = DicomFile | Skipped | Unreadable


class Kind(Enum):
    EMPTY = "empty"
    DICOM = "DICOM"
    DICOMDIR = "DICOMDIR"
    ZIP = "zip"
    TAR = "tar"
    MAYBE_TAR = "compressed, perhaps a tar"
    MAYBE_DATASET = "perhaps a bare data set"
    OTHER = "other"


def member_name(archive: str, member: str) -> str:
    """How a file inside an archive is named in reports: `archive.zip!dir/file.dcm`."""
    return f"{archive}!{member}"


def iter_entries(paths: Iterable[str]) -> Iterator[Entry]:
    """Every file under `paths` (files or folders), archive members included, in order."""
    for path in paths:
        for file in walk_files(path):
            yield from _file_entries(file)


def walk_files(path: str) -> Iterator[str]:
    """The regular files at `path`: itself, or those of the folder, recursively and sorted.
    Symbolic links to files are followed; links to folders are not (no cycles)."""
    if not os.path.isdir(path):
        yield path
        return
    for root, folders, files in os.walk(path):
        folders.sort()
        for name in sorted(files):
            file = os.path.join(root, name)
            if os.path.isfile(file):  # not sockets, FIFOs or dangling links
                yield file


def sniff(filename: str, head: bytes) -> Kind:
    """What a file is, from its name (on disk or in its archive) and its first `HEAD_SIZE`
    bytes (all of them if fewer)."""
    if not head:
        return Kind.EMPTY
    is_dicomdir_name = posixpath.basename(filename.replace("\\", "/")).upper() == "DICOMDIR"
    if head[128:132] == b"DICM":
        if is_dicomdir_name or _media_storage_sop_class(head) == MEDIA_STORAGE_DIRECTORY:
            return Kind.DICOMDIR
        return Kind.DICOM
    if is_dicomdir_name:
        return Kind.DICOMDIR
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return Kind.ZIP
    if head[257:262] == b"ustar" or filename.lower().endswith(".tar"):
        return Kind.TAR
    if head.startswith(_COMPRESSION_MAGIC):
        return Kind.MAYBE_TAR
    if _may_start_a_dataset(head):
        return Kind.MAYBE_DATASET
    return Kind.OTHER


def is_bare_dataset(data: bytes) -> bool:
    try:
        check_structure(data)
    except PharosError:
        return False
    return True


def looks_like_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


# --- reading --------------------------------------------------------------------------------


def _file_entries(path: str) -> Iterator[Entry]:
    try:
        with open(path, "rb") as file:
            head = _read_up_to(file, HEAD_SIZE)
            yield from _entries(path, path, head, file, file, depth=0)
    except ARCHIVE_ERRORS as exc:
        yield Unreadable(path, _describe(exc))


def _entries(
    name: str,
    filename: str,
    head: bytes,
    rest: IO[bytes],
    seekable: BinaryIO | None,
    depth: int,
) -> Iterator[Entry]:
    """The entries of one file, reported as `name`: `filename` is its own name (on disk or in
    its archive), `head` its start, `rest` the stream after it, `seekable` the file itself when
    it allows random access (a file on disk)."""
    kind = sniff(filename, head)
    if kind is Kind.EMPTY:
        yield Skipped(name, SkipReason.EMPTY)
    elif kind is Kind.DICOMDIR:
        yield Skipped(name, SkipReason.DICOMDIR)
    elif kind is Kind.DICOM:
        yield DicomFile(name, head + _read_rest(rest, len(head)))
    elif kind is Kind.MAYBE_DATASET:
        data = head + _read_rest(rest, len(head))
        # A bare data set cannot announce itself: only a clean walk of the whole of it tells.
        if is_bare_dataset(data):
            yield DicomFile(name, data)
        else:
            yield Skipped(name, SkipReason.NOT_DICOM)
    elif kind is Kind.OTHER:
        yield Skipped(name, SkipReason.NOT_DICOM)
    elif depth >= MAX_NESTING:
        yield Unreadable(name, f"archives nested more than {MAX_NESTING} deep")
    elif kind is Kind.ZIP:
        if seekable is not None:
            seekable.seek(0)
            yield from _zip_entries(name, seekable, depth + 1)
        else:
            with _spool(head, rest) as spooled:
                yield from _zip_entries(name, spooled, depth + 1)
    else:
        known_tar = kind is Kind.TAR or filename.lower().endswith(COMPRESSED_TAR_SUFFIXES)
        yield from _tar_entries(name, _Chain(head, rest), known_tar, depth + 1)


def _zip_entries(name: str, file: BinaryIO, depth: int) -> Iterator[Entry]:
    try:
        archive = zipfile.ZipFile(file)
    except ARCHIVE_ERRORS as exc:
        yield Unreadable(name, f"unreadable zip archive: {_describe(exc)}")
        return
    with archive:
        for info in archive.infolist():
            if info.is_dir():
                continue
            member = member_name(name, info.filename)
            if info.file_size > MAX_FILE_SIZE:
                yield Unreadable(member, f"larger than {MAX_FILE_SIZE} bytes")
                continue
            try:
                with archive.open(info) as stream:
                    head = _read_up_to(stream, HEAD_SIZE)
                    yield from _entries(member, info.filename, head, stream, None, depth)
            except ARCHIVE_ERRORS as exc:
                yield Unreadable(member, _describe(exc))


def _tar_entries(name: str, stream: _Chain, known_tar: bool, depth: int) -> Iterator[Entry]:
    # Stream mode ("r|*"): one pass, no seeking, transparent decompression.
    members = 0
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as archive:
            for info in archive:
                # tarfile keeps every header it reads: forget them, or an archive of millions
                # of files would fill the memory (iteration in stream mode does not need them).
                archive.members.clear()  # type: ignore[attr-defined]
                if not info.isfile():
                    continue
                members += 1
                member = member_name(name, info.name)
                if info.size > MAX_FILE_SIZE:
                    yield Unreadable(member, f"larger than {MAX_FILE_SIZE} bytes")
                    continue
                extracted = archive.extractfile(info)
                if extracted is None:  # pragma: no cover - regular files always extract
                    continue
                head = _read_up_to(extracted, HEAD_SIZE)
                yield from _entries(member, info.name, head, extracted, None, depth)
    except ARCHIVE_ERRORS as exc:
        if members == 0 and not known_tar:
            # Compressed data that is not a tar archive (e.g. a lone `file.gz`).
            yield Skipped(name, SkipReason.NOT_DICOM)
        else:
            yield Unreadable(name, f"unreadable tar archive: {_describe(exc)}")


class _Chain(io.RawIOBase):
    """`head`, then the rest of the stream it was read from: tarfile reads from the start."""

    def __init__(self, head: bytes, rest: IO[bytes]):
        self._head = memoryview(head)
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._head:
            count = min(len(buffer), len(self._head))
            buffer[:count] = self._head[:count]
            self._head = self._head[count:]
            return count
        data = self._rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _spool(head: bytes, rest: IO[bytes]) -> BinaryIO:
    """A copy with random access (closed, and its temporary file gone, by the caller)."""
    spooled = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115
    try:
        spooled.write(head)
        shutil.copyfileobj(rest, spooled, 1 << 20)
        spooled.seek(0)
    except BaseException:
        spooled.close()
        raise
    return cast(BinaryIO, spooled)


def _read_up_to(stream: IO[bytes], size: int) -> bytes:
    """`size` bytes, fewer only at the end of the stream (some streams return short reads)."""
    chunks = []
    while size > 0:
        chunk = stream.read(size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_rest(stream: IO[bytes], already: int) -> bytes:
    data = _read_up_to(stream, MAX_FILE_SIZE - already + 1)
    if already + len(data) > MAX_FILE_SIZE:
        raise ValueError(f"larger than {MAX_FILE_SIZE} bytes")
    return data


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


# --- cheap checks on the first bytes ---------------------------------------------------------

_ELEMENT = Struct("<HH2s")
_SHORT_LENGTH = Struct("<H")
_LONG_LENGTH = Struct("<L")
_LONG_VRS = frozenset((b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN"))
_LONG_VRS |= frozenset((b"UR", b"UT", b"UV"))


def _media_storage_sop_class(head: bytes) -> str | None:
    """(0002,0002) of the file meta group (explicit VR little endian after "DICM"), if the
    head holds it."""
    pos = 132
    while pos + 8 <= len(head):
        group, element, vr = _ELEMENT.unpack_from(head, pos)
        if group != 0x0002:
            return None
        if vr in _LONG_VRS:
            if pos + 12 > len(head):
                return None
            (length,) = _LONG_LENGTH.unpack_from(head, pos + 8)
            pos += 12
        else:
            (length,) = _SHORT_LENGTH.unpack_from(head, pos + 6)
            pos += 8
        if element == 0x0002:
            if pos + length > len(head):
                return None
            return head[pos : pos + length].rstrip(b"\x00 ").decode("ascii", "replace")
        if length == 0xFFFFFFFF:
            return None
        pos += length
    return None


def _may_start_a_dataset(head: bytes) -> bool:
    """Whether a file without "DICM" may be a bare data set worth walking in full. Only data
    sets that the server can store matter, and those hold (0008,0016) and (0008,0018) with
    ascending tags: the first element is in the file meta group (0002) or in group 0008,
    little endian, or big endian in group 0008."""
    if len(head) < 8:
        return False
    little = head[0] | head[1] << 8
    return little in (0x0002, 0x0008) or head[:2] == b"\x00\x08"


# --- counting, for the progress bar ----------------------------------------------------------


def count_entries(paths: Iterable[str]) -> int | None:
    """How many entries `iter_entries(paths)` yields, when that is cheap to know: folders are
    listed, zip archives read from their central directory and plain tar archives by skipping
    from header to header. None for compressed tars and archives holding archives (counting
    them would mean reading them twice)."""
    total = 0
    for path in paths:
        for file in walk_files(path):
            count = _count_file(file)
            if count is None:
                return None
            total += count
    return total


def _count_file(path: str) -> int | None:
    try:
        with open(path, "rb") as file:
            kind = sniff(path, _read_up_to(file, HEAD_SIZE))
        if kind is Kind.ZIP:
            with zipfile.ZipFile(path) as archive:
                names = [info.filename for info in archive.infolist() if not info.is_dir()]
        elif kind is Kind.TAR:
            with tarfile.open(path, mode="r:") as tar:
                names = [info.name for info in tar if info.isfile()]
        elif kind is Kind.MAYBE_TAR:
            return None
        else:
            return 1
    except ARCHIVE_ERRORS:
        return 1  # reported as one unreadable file
    if any(looks_like_archive(name) for name in names):
        return None
    return len(names)
