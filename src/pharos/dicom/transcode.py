"""Transcoding: the same instance in another transfer syntax, for a peer that does not accept
the stored one, for `/instances/{id}/file?transcode=`, and for `IngestTranscoding`.

Every uncompressed target (implicit and explicit VR little endian, explicit VR big endian,
deflated) is reachable from any source pydicom can decompress with the codec plugins installed;
the compressed targets are those of `encoders`: RLE, JPEG lossless (process 14 and its SV1),
JPEG-LS lossless and JPEG 2000 lossless, and, only when the caller allows it, the lossy JPEG
baseline and extended, JPEG-LS near-lossless and JPEG 2000. Quality is a decision the sender
takes, never a side effect of a peer's preferences: `can_transcode` answers for the lossless
targets only.
"""

from __future__ import annotations

import copy
import io

import numpy as np
import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from pharos.dicom.encoders import (
    DEFAULT_QUALITY,
    LOSSLESS_TARGETS,
    LOSSY_TARGETS,
    EncodingError,
    encode,
    give_new_instance_uid,
)
from pharos.dicom.pixels import decode_frame, image_info

UNCOMPRESSED_TARGETS = frozenset(
    {
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        DeflatedExplicitVRLittleEndian,
    }
)
# Lossless compressed syntaxes: the only compressed ones chosen without being asked for.
COMPRESSED_TARGETS = LOSSLESS_TARGETS

# Byte size of the words of the "other" VRs, whose values pydicom keeps as raw bytes: they
# must be swapped by hand when the byte order changes.
_WORD_SIZES = {"OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}


class TranscodingError(ValueError):
    """The dataset cannot be converted to the transfer syntax asked for."""


def transcode(
    dataset: Dataset,
    transfer_syntax_uid: str,
    *,
    allow_lossy: bool = False,
    quality: int = DEFAULT_QUALITY,
    keep_instance_uid: bool = False,
    in_place: bool = False,
) -> Dataset:
    """A copy of `dataset` (or `dataset` itself, changed, with `in_place`) in
    `transfer_syntax_uid` (its file meta says so, and its pixel data is encoded accordingly).
    Raises TranscodingError when that cannot be done (`dataset` may then be half-changed if
    `in_place`).

    A lossy target needs `allow_lossy`; it encodes at `quality` (1-100) and, as DCMTK, gives
    the result a new SOP Instance UID unless `keep_instance_uid`."""
    target = UID(transfer_syntax_uid)
    if target in LOSSY_TARGETS and not allow_lossy:
        raise TranscodingError(f"Cannot transcode to {_name(target)}: lossy, not asked for")
    known = UNCOMPRESSED_TARGETS | COMPRESSED_TARGETS | LOSSY_TARGETS
    if target not in known:
        raise TranscodingError(f"Cannot transcode to {_name(target)}: encoding not supported")
    result = dataset if in_place else copy.deepcopy(dataset)
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
    if target in COMPRESSED_TARGETS or target in LOSSY_TARGETS:
        _compress(result, target, quality)
        if target in LOSSY_TARGETS and "PixelData" in result and not keep_instance_uid:
            give_new_instance_uid(result)
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


def check_target(transfer_syntax_uid: str) -> UID:
    """`transfer_syntax_uid` as a target chosen by a user (`?transcode=`, `IngestTranscoding`):
    lossy ones included. Raises TranscodingError naming what is wrong with it."""
    target = UID(transfer_syntax_uid.strip())
    if target in UNCOMPRESSED_TARGETS or target in COMPRESSED_TARGETS or target in LOSSY_TARGETS:
        return target
    if not target.is_transfer_syntax:
        raise TranscodingError(f"Unknown transfer syntax: {transfer_syntax_uid!r}")
    raise TranscodingError(f"Cannot transcode to {_name(target)}: encoding not supported")


def transcode_file(
    data: bytes,
    transfer_syntax_uid: str,
    *,
    quality: int = DEFAULT_QUALITY,
    keep_instance_uid: bool = False,
) -> bytes:
    """The DICOM file `data` in `transfer_syntax_uid`, lossy targets included (a user chose
    it): `data` itself when it is in that syntax already. Raises TranscodingError."""
    target = check_target(transfer_syntax_uid)
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:
        raise TranscodingError(f"Cannot read the DICOM file: {exc}") from None
    meta = getattr(dataset, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID") == target:
        return data
    result = transcode(
        dataset,
        target,
        allow_lossy=True,
        quality=quality,
        keep_instance_uid=keep_instance_uid,
        in_place=True,  # parsed here, for this call only
    )
    buffer = io.BytesIO()
    try:
        result.save_as(buffer, enforce_file_format=True)
    except Exception as exc:
        raise TranscodingError(f"Cannot write the transcoded file: {exc}") from None
    return buffer.getvalue()


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
        return
    except Exception as exc:  # pydicom raises several kinds for a missing or failing codec
        error = exc
    # pydicom stops at its first plugin's failure: try each one (pyjpegls fails on signed
    # multi-frame JPEG-LS where GDCM succeeds, for one).
    try:
        plugins = get_decoder(source).available_plugins
    except NotImplementedError:  # pydicom has no decoder at all for this syntax
        plugins = ()
    for plugin in plugins:
        try:
            dataset.decompress(generate_instance_uid=False, decoding_plugin=plugin)
            return
        except Exception:
            continue
    if not _decode_natively(dataset):
        raise TranscodingError(f"Cannot decompress {_name(source)}: {error}") from None


def _decode_natively(dataset: Dataset) -> bool:
    """Decompress with Pharos's own decoding, which falls back on imagecodecs for what
    pydicom's plugins refuse (12-bit JPEG extended, for one). False if it cannot either."""
    if str(dataset.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
        return False  # decode_frame applies the palette: not the stored values
    try:
        info = image_info(dataset)
        stack = np.stack([decode_frame(dataset, index, info) for index in range(info.frames)])
    except Exception:
        return False
    if stack.dtype.itemsize * 8 != int(dataset.BitsAllocated):
        return False
    dataset.PixelData = np.ascontiguousarray(stack, stack.dtype.newbyteorder("<")).tobytes()
    element = dataset["PixelData"]
    element.VR = "OB" if stack.dtype.itemsize == 1 else "OW"
    element.is_undefined_length = False
    if stack.ndim == 4:  # colour: decoded to RGB, by pixel
        dataset.PhotometricInterpretation = "RGB"
        dataset.PlanarConfiguration = 0
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return True


def _compress(dataset: Dataset, target: UID, quality: int) -> None:
    if "PixelData" not in dataset:
        dataset.file_meta.TransferSyntaxUID = target
        return
    if int(dataset.get("SamplesPerPixel", 1)) > 1 and dataset.get("PlanarConfiguration") == 1:
        # pydicom's encoders read interleaved samples: re-order color-by-plane pixels first.
        try:  # raw: the colour space as it is (no YBR to RGB conversion)
            pixels, _ = get_decoder(ExplicitVRLittleEndian).as_array(dataset, raw=True)
        except Exception as exc:
            raise TranscodingError(f"Cannot read the pixel data: {exc}") from None
        dataset.PixelData = pixels.tobytes()
        dataset.PlanarConfiguration = 0
    try:
        encode(dataset, target, quality)
    except EncodingError as exc:
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
