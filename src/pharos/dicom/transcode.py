"""Transcoding: the same instance in another transfer syntax, for a peer that does not accept
the stored one.

Every uncompressed target (implicit and explicit VR little endian, explicit VR big endian,
deflated) is reachable from any source pydicom can decompress with the codec plugins installed;
compressed targets are those pydicom can encode losslessly with them (RLE Lossless always,
JPEG-LS and JPEG 2000 lossless when their encoders are installed). Lossy targets are refused:
quality is a decision the sender must take, not a side effect of a peer's preferences.
"""

from __future__ import annotations

import copy

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

UNCOMPRESSED_TARGETS = frozenset(
    {
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    }
)
# Lossless compressed syntaxes pydicom 3 can encode (given an encoder plugin for the last two).
COMPRESSED_TARGETS = frozenset({RLELossless, JPEGLSLossless, JPEG2000Lossless})

# Byte size of the words of the "other" VRs, whose values pydicom keeps as raw bytes: they
# must be swapped by hand when the byte order changes.
_WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


class TranscodingError(ValueError):
    """The dataset cannot be converted to the transfer syntax asked for."""


def transcode(dataset: Dataset, transfer_syntax_uid: str) -> Dataset:
    """A copy of `dataset` in `transfer_syntax_uid` (its file meta says so, and its pixel data
    is encoded accordingly). Raises TranscodingError when that cannot be done."""
    target = UID(transfer_syntax_uid)
    if target not in UNCOMPRESSED_TARGETS and target not in COMPRESSED_TARGETS:
        raise TranscodingError(f"Cannot transcode to {_name(target)}: encoding not supported")
    result = copy.deepcopy(dataset)
    if not hasattr(result, "file_meta"):
        result.file_meta = FileMetaDataset()
    source = _source_syntax(result)
    if source == target:
        return result
    if source.is_encapsulated:
        _decompress(result, source)
    elif not source.is_little_endian:
        _swap_words(result)
    # Now native and little endian (whatever source.is_implicit_VR says: pydicom re-encodes
    # the VRs when writing).
    result.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    _set_encoding(result, False, True)
    if target in COMPRESSED_TARGETS:
        _compress(result, target)
        return result
    if not target.is_little_endian:
        _swap_words(result)
    result.file_meta.TransferSyntaxUID = target
    _set_encoding(result, target.is_implicit_VR, target.is_little_endian)
    return result


def _set_encoding(dataset: Dataset, implicit: bool, little: bool) -> None:
    """Declare the new encoding on the dataset and on every sequence item. Iterating also
    parses the raw elements: pydicom (3.0) would otherwise copy the items' raw bytes as read,
    in the old encoding, into a stream of the new one (pynetdicom's `encode` does that)."""
    dataset.set_original_encoding(implicit, little, dataset.original_character_set)
    for element in dataset:
        if element.VR == "SQ":
            for item in element.value:
                _set_encoding(item, implicit, little)


def can_transcode(source: str, target: str) -> bool:
    """Whether `transcode` may succeed from `source` to `target` (the codecs decide in the
    end: a JPEG-LS source needs a decoder, a JPEG-LS target an encoder)."""
    target_uid = UID(target)
    if UID(source) == target_uid:
        return True
    return target_uid in UNCOMPRESSED_TARGETS or target_uid in COMPRESSED_TARGETS


def _source_syntax(dataset: Dataset) -> UID:
    syntax = dataset.file_meta.get("TransferSyntaxUID")
    if syntax:
        return UID(syntax)
    implicit, little = dataset.original_encoding
    if implicit is None or little is None:
        raise TranscodingError("The dataset has no transfer syntax (no file meta, not read)")
    if little:
        return ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    return ExplicitVRBigEndian


def _decompress(dataset: Dataset, source: UID) -> None:
    if "PixelData" not in dataset:
        # No image (an encapsulated PDF says nothing of its own encoding): only the syntax.
        return
    try:
        dataset.decompress(generate_instance_uid=False)
    except Exception as exc:  # pydicom raises several kinds for a missing or failing codec
        raise TranscodingError(f"Cannot decompress {_name(source)}: {exc}") from None


def _compress(dataset: Dataset, target: UID) -> None:
    if "PixelData" not in dataset:
        dataset.file_meta.TransferSyntaxUID = target
        return
    if int(dataset.get("SamplesPerPixel", 1)) > 1 and dataset.get("PlanarConfiguration") == 1:
        # pydicom's encoders read interleaved samples: re-order color-by-plane pixels first.
        try:
            pixels = dataset.pixel_array
        except Exception as exc:
            raise TranscodingError(f"Cannot read the pixel data: {exc}") from None
        dataset.PixelData = pixels.tobytes()
        dataset.PlanarConfiguration = 0
    try:
        dataset.compress(target, generate_instance_uid=False)
    except Exception as exc:
        raise TranscodingError(f"Cannot compress to {_name(target)}: {exc}") from None


def _swap_words(dataset: Dataset) -> None:
    """Swap the byte order of the raw words of OW, OF, OL, OD and OV values, in nested
    sequences too (pydicom does it for the other VRs when writing)."""

    def swap(ds: Dataset, element: DataElement) -> None:
        size = _WORD_SIZES.get(element.VR)
        if element.tag == 0x7FE00010 and size is None:  # "OB or OW" from an implicit VR file
            size = 2 if int(ds.get("BitsAllocated", 8)) > 8 else None
            if size is not None:
                element.VR = "OW"
        if size is None or not isinstance(element.value, bytes | bytearray):
            return
        value = bytes(element.value)
        usable = len(value) - len(value) % size
        words = np.frombuffer(value[:usable], dtype=f"u{size}").byteswap()
        element.value = words.tobytes() + value[usable:]

    dataset.walk(swap)


def _name(uid: UID) -> str:
    return f"{uid.name} ({uid})" if uid.is_valid and uid.name != uid else str(uid)
