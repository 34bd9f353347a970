"""WADO-RS frames and bulk data (PS3.18 10.4.1.1.4-5, 8.7.3): the pixel data of chosen frames,
as stored or in the transfer syntax the client asks for, and the value of a binary attribute
named by the BulkDataURI of the instance's metadata.

A frame is answered from the stored file when its syntax is the one asked for (no decoding:
fragments of an encapsulated syntax, bytes of a native one); otherwise the instance is
transcoded once for all the frames of the request. A lossy syntax is produced only when the
client names it (image/jpeg, or a lossy transfer-syntax parameter), with the instance's UID
kept: frames are pixels, not a new instance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from pharos.dicom.pixels import image_info, raw_frame
from pharos.dicom.transcode import TranscodingError, check_target, transcode
from pharos.dicom.transfer_syntaxes import (
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
)
from pharos.index.base import ResourceRef
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.files import FileService

AS_STORED = "*"
OCTET_STREAM = "application/octet-stream"
# PS3.18 Table 8.7.3-2: the media types of frames, their transfer syntaxes, the first being
# the default one.
FRAME_MEDIA_TYPES: dict[str, tuple[str, ...]] = {
    OCTET_STREAM: (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN),
    "image/jpeg": (
        "1.2.840.10008.1.2.4.50",
        "1.2.840.10008.1.2.4.51",
        "1.2.840.10008.1.2.4.57",
        "1.2.840.10008.1.2.4.70",
    ),
    "image/jls": ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
    "image/jp2": ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"),
    "image/jpx": ("1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93"),
    "image/dicom-rle": ("1.2.840.10008.1.2.5",),
    "image/jph": (
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203",
    ),
}
_LITTLE_ENDIAN = frozenset({EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN})


def media_type_of(transfer_syntax: str) -> str:
    """The frame media type of a transfer syntax (octet-stream for native and unknown ones)."""
    for media, syntaxes in FRAME_MEDIA_TYPES.items():
        if transfer_syntax in syntaxes:
            return media
    return OCTET_STREAM


@dataclass(frozen=True, slots=True)
class Frames:
    """Frames of one instance, all in `transfer_syntax`, whose media type is `media_type`."""

    frames: list[bytes]
    transfer_syntax: str
    media_type: str


class DicomWebFrames:
    def __init__(self, files: FileService):
        self._files = files

    def frames(self, ref: ResourceRef, numbers: list[int], syntaxes: tuple[str, ...]) -> Frames:
        """Frames `numbers` (from 1) of an instance, in the first of `syntaxes` (transfer
        syntax UIDs of FRAME_MEDIA_TYPES, or AS_STORED) they can be converted to. 400 for a
        frame it does not have; 406 if no syntax can be produced."""
        dataset = self._files.read_dataset(ref, with_pixels=True)
        info = image_info(dataset)
        for number in numbers:
            if not 1 <= number <= info.frames:
                raise PharosError(
                    ErrorCode.BAD_REQUEST,
                    f"The instance has {info.frames} frame(s): no frame {number}",
                    http_status=400,
                )
        stored = info.transfer_syntax
        refused: list[str] = []
        for syntax in syntaxes:
            target = stored if syntax == AS_STORED else syntax
            if stored == target or {stored, target} <= _LITTLE_ENDIAN:
                # Native little endian bytes are the same whichever VR encoding the file uses.
                data = [raw_frame(dataset, number - 1, info) for number in numbers]
                return Frames(data, target, media_type_of(target))
            try:
                converted = _transcoded(dataset, target)
            except PharosError as exc:
                refused.append(exc.details or str(exc))
                continue
            converted_info = image_info(converted)
            data = [raw_frame(converted, number - 1, converted_info) for number in numbers]
            return Frames(data, target, media_type_of(target))
        details = "; ".join(refused) or "no transfer syntax to convert the frames to"
        raise PharosError(ErrorCode.NOT_ACCEPTABLE, details, http_status=406)

    def bulk(self, ref: ResourceRef, path: list[str]) -> bytes:
        """The value of the binary attribute at `path` (tag, then item number from 1 and tag
        for each level of sequence: the path of a BulkDataURI). 404 if there is none."""
        with_pixels = bool(path) and path[0].upper() in ("7FE00010", "7FE00008", "7FE00009")
        dataset = self._files.read_dataset(ref, with_pixels=with_pixels)
        node: Dataset = dataset
        for position in range(0, len(path), 2):
            tag = _tag(path[position])
            element = node.get(tag)
            if element is None:
                raise _missing(path)
            if position + 1 == len(path):
                if element.VR not in ("OB", "OW", "OF", "OD", "OL", "OV", "UN"):
                    raise _missing(path)
                value = bytes(element.value) if element.value is not None else b""
                return _little_endian(value, element.VR, dataset)
            if element.VR != "SQ":
                raise _missing(path)
            item = path[position + 1]
            if not item.isascii() or not item.isdigit() or not 1 <= int(item) <= len(element.value):
                raise _missing(path)
            node = element.value[int(item) - 1]
        raise _missing(path)


# Bytes per word of the binary VRs whose words a big endian file stores swapped.
_WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


def _little_endian(value: bytes, vr: str, dataset: Dataset) -> bytes:
    """A binary value in little endian, as bulk data is served (PS3.18 8.7.3.2: the default
    Explicit VR Little Endian), from a file in Explicit VR Big Endian too."""
    size = _WORD_SIZES.get(vr)
    _implicit, little = dataset.original_encoding
    if size is None or little is not False or len(value) < size:
        return value
    whole = len(value) - len(value) % size
    words = np.frombuffer(value, dtype=f">u{size}", count=whole // size)
    return words.astype(f"<u{size}").tobytes() + value[whole:]


def _transcoded(dataset: Dataset, target: str) -> Dataset:
    try:
        check_target(target)
        return transcode(dataset, target, allow_lossy=True, keep_instance_uid=True)
    except TranscodingError as exc:
        raise PharosError(ErrorCode.NOT_ACCEPTABLE, str(exc), http_status=406) from None
    except PharosError:
        raise
    except Exception as exc:  # a codec refusing these pixels (bit depth, photometric...)
        raise PharosError(
            ErrorCode.NOT_ACCEPTABLE,
            f"Cannot convert the frames to {UID(target).name}: {exc}",
            http_status=406,
        ) from None


def _tag(text: str) -> int:
    if len(text) != 8 or not all(c in "0123456789abcdefABCDEF" for c in text):
        raise PharosError(
            ErrorCode.BAD_REQUEST,
            f"Invalid bulk data path: {text!r} is not a tag (8 hexadecimal digits)",
            http_status=400,
        )
    return int(text, 16)


def _missing(path: list[str]) -> PharosError:
    return PharosError(
        ErrorCode.UNKNOWN_RESOURCE, f"No bulk data at {'/'.join(path)} in this instance"
    )
