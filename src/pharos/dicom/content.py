"""Orthanc's raw navigation in a dataset (`/instances/{id}/content/...`) and its frame count.

`content(ds, path)` follows Orthanc 1.10's `ParsedDicomFile::SendPathValue`:

- `[]` lists the tags of the dataset as `"0008-0016"` strings;
- `[tag]` gives the raw value of a leaf (bytes, in the byte order of the transfer syntax),
  or the item indexes `"0"`, `"1"`, ... of a sequence;
- `[tag, index, ...]` walks into sequence items; a path of even length lists the tags of the
  item it reaches;
- at the top level, Pixel Data is special: `[7fe0-0010]` lists the blocks (one, `"0"`, for
  native pixel data; the items of the encapsulated sequence, the Basic Offset Table first,
  otherwise) and `[7fe0-0010, n]` gives the bytes of block n.

A path that leads nowhere raises PharosError(UNKNOWN_RESOURCE) (Orthanc answers a bare 404);
a component that is not a tag raises PharosError(UNKNOWN_DICOM_TAG), as Orthanc's ParseTag.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Sequence

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element

from pharos.dicom.dictionary import PIXEL_DATA, parse_tag
from pharos.model.errors import ErrorCode, PharosError

__all__ = ["content", "number_of_frames"]

NUMBER_OF_FRAMES = 0x00280008
_UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM = 0xE000FFFE  # (FFFE,E000) read as one little-endian uint32
_INDEX = re.compile(r"[0-9]+")
_INTEGER = re.compile(r"[+-]?[0-9]+")
# explicit VR elements with a 4-byte length field have a 12-byte header
_LONG_HEADER_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)

_NATIVE_TRANSFER_SYNTAXES = frozenset(
    {
        None,
        "1.2.840.10008.1.2",
        "1.2.840.10008.1.2.1",
        "1.2.840.10008.1.2.2",
        "1.2.840.10008.1.2.1.99",
    }
)

# Videos hold one frame whatever NumberOfFrames says (DicomFrameIndex::GetFramesCount); the
# ".1" fragmentable variants are later than Orthanc 1.10 but are videos just the same.
_VIDEO_TRANSFER_SYNTAXES = frozenset(
    f"1.2.840.10008.1.2.4.{n}{suffix}" for n in range(100, 109) for suffix in ("", ".1")
)


def content(
    dataset: Dataset, path: Sequence[str], *, transfer_syntax: str | None = None
) -> list[str] | bytes:
    """`GET /instances/{id}/content/{path}`: a JSON list (tags or indexes) or raw bytes.

    `path` is the URI split on '/' after `content`. `transfer_syntax` defaults to the one of
    the file meta information; it only tells whether the pixel data is encapsulated.
    """
    if 1 <= len(path) <= 2 and parse_tag(path[0]) == PIXEL_DATA:
        return _pixel_data(dataset, path[1] if len(path) == 2 else None, transfer_syntax)

    item = dataset
    for position in range(len(path) // 2):
        index = _index(path[2 * position + 1])
        tag = parse_tag(path[2 * position])
        items = _sequence(item, tag)
        if items is None or index >= len(items):
            raise _not_found(path)
        item = items[index]

    if len(path) % 2 == 0:
        return [f"{tag >> 16:04x}-{tag & 0xFFFF:04x}" for tag in sorted(item.keys())]

    tag = parse_tag(path[-1])
    items = _sequence(item, tag)
    if items is not None:
        return [str(i) for i in range(len(items))]
    element = item.get_item(tag, keep_deferred=True)
    if not isinstance(element, DataElement | RawDataElement):
        raise _not_found(path)
    value = _value_bytes(item, tag, element)
    if value is None:
        raise _not_found(path)
    return value


def number_of_frames(dataset: Dataset, *, transfer_syntax: str | None = None) -> int:
    """The frame count behind `/instances/{id}/frames` (which lists 0 .. count-1).

    1 without NumberOfFrames (or with an empty one) and for videos. A value that is not a
    non-negative integer raises PharosError(BAD_FILE_FORMAT), as in Orthanc; unlike Orthanc,
    leading spaces (legal in IS) are accepted.
    """
    syntax = transfer_syntax or _transfer_syntax(dataset)
    if syntax in _VIDEO_TRANSFER_SYNTAXES:
        return 1
    element = dataset.get_item(NUMBER_OF_FRAMES, keep_deferred=True)
    if not isinstance(element, DataElement | RawDataElement):
        return 1
    raw = _value_bytes(dataset, NUMBER_OF_FRAMES, element)
    text = (raw or b"").split(b"\x00", 1)[0].decode("latin-1").strip(" ")
    if not text:
        return 1
    if _INTEGER.fullmatch(text) is None or not 0 <= int(text) <= 0x7FFFFFFF:
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT, f"Invalid NumberOfFrames (0028,0008): {text[:64]!r}"
        )
    return int(text)


def _not_found(path: Sequence[str]) -> PharosError:
    return PharosError(ErrorCode.UNKNOWN_RESOURCE, "No such DICOM element: /" + "/".join(path))


def _index(text: str) -> int:
    if _INDEX.fullmatch(text) is None:
        raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Not an item index: {text[:64]!r}")
    return int(text)


def _transfer_syntax(dataset: Dataset) -> str | None:
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return str(syntax).rstrip("\x00 ") if syntax else None


def _sequence(item: Dataset, tag: int) -> list[Dataset] | None:
    """The items of a sequence element of `item`, None if absent or not a sequence."""
    element = item.get_item(tag, keep_deferred=True)
    if not isinstance(element, DataElement | RawDataElement):
        return None
    if isinstance(element, RawDataElement):
        if not _may_be_sequence(element, tag):
            return None
        try:
            converted = item[tag]
        except Exception:
            return None
        if not isinstance(converted, DataElement):
            return None
        element = converted
    if element.VR != "SQ":
        return None
    value = element.value
    return [child for child in value if isinstance(child, Dataset)] if value else []


def _may_be_sequence(element: RawDataElement, tag: int) -> bool:
    """Whether converting this raw element could give a sequence (avoids converting leaves)."""
    if element.length == _UNDEFINED_LENGTH:
        return element.VR in ("SQ", "UN", None)
    if element.VR is not None:
        return element.VR == "SQ"
    if (tag >> 16) & 1:
        return True  # implicit VR private tag: only pydicom's private dictionary knows
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return False


def _value_bytes(item: Dataset, tag: int, element: DataElement | RawDataElement) -> bytes | None:
    """The value as stored in the file: raw bytes, or re-encoded if pydicom converted it."""
    if isinstance(element, RawDataElement):
        if isinstance(element.value, bytes | bytearray | memoryview):
            return bytes(element.value)
        try:
            converted = item[tag]  # deferred read
        except Exception:
            return None
        if not isinstance(converted, DataElement):
            return None
        element = converted
    value = element.value
    if value is None:
        return b""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    implicit, little = item.original_encoding
    buffer = DicomBytesIO()
    buffer.is_little_endian = True if little is None else bool(little)
    buffer.is_implicit_VR = bool(implicit)
    try:
        write_data_element(buffer, element, getattr(item, "_character_set", None))
    except Exception:
        return None
    header = 8 if implicit or element.VR not in _LONG_HEADER_VRS else 12
    return buffer.getvalue()[header:]


def _pixel_data(
    dataset: Dataset, block: str | None, transfer_syntax: str | None
) -> list[str] | bytes:
    """AnswerPixelData: the blocks of Pixel Data, or the bytes of one."""
    path = ["7fe0-0010"] + ([] if block is None else [block])
    element = dataset.get_item(PIXEL_DATA, keep_deferred=True)
    if not isinstance(element, DataElement | RawDataElement):
        raise _not_found(path)
    raw = _value_bytes(dataset, PIXEL_DATA, element)
    if raw is None:
        raise _not_found(path)
    syntax = transfer_syntax or _transfer_syntax(dataset)
    fragments = _fragments(raw) if _is_encapsulated(element, raw, syntax) else None
    count = 1 if fragments is None else len(fragments)
    if block is None:
        return [str(i) for i in range(count)]
    index = _index(block)
    if index >= count:
        raise _not_found(path)
    return raw if fragments is None else fragments[index]


def _is_encapsulated(
    element: DataElement | RawDataElement, raw: bytes, transfer_syntax: str | None
) -> bool:
    if isinstance(element, RawDataElement):
        undefined = element.length == _UNDEFINED_LENGTH
    else:
        undefined = bool(element.is_undefined_length)
    # a dataset built in memory has no length yet: its bytes tell (item tag first)
    return undefined or (
        transfer_syntax not in _NATIVE_TRANSFER_SYNTAXES and raw[:4] == b"\xfe\xff\x00\xe0"
    )


def _fragments(raw: bytes) -> list[bytes]:
    """The items of an encapsulated pixel data value (Basic Offset Table first). Items are
    always little endian; parsing stops at the delimiter or at the first malformed item."""
    fragments: list[bytes] = []
    offset, end = 0, len(raw)
    while offset + 8 <= end:
        tag, length = struct.unpack_from("<LL", raw, offset)
        if tag != _ITEM or length == _UNDEFINED_LENGTH:
            break
        fragments.append(raw[offset + 8 : offset + 8 + length])
        offset += 8 + length
    return fragments
