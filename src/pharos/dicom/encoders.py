"""Pixel data encoders: native little endian pixel data to the compressed transfer syntaxes
Orthanc (DCMTK) offers, frame by frame.

pydicom's own encoders serve RLE, JPEG-LS (pyjpegls) and JPEG 2000 (pylibjpeg-openjpeg);
JPEG baseline, extended (12-bit) and lossless are encoded here with libjpeg-turbo
(imagecodecs), which pydicom has no encoder for; so are JPEG 2000 images too small for
pydicom's encoder. Lossy targets take a quality (1-100, Orthanc's
`DicomLossyTranscodingQuality`) and are marked as DCMTK marks them (see `mark_lossy`).
"""

from __future__ import annotations

from typing import Any

import imagecodecs
import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.pixels import convert_color_space, get_decoder
from pydicom.uid import (
    JPEG2000,
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    generate_uid,
)

LOSSLESS_TARGETS = frozenset(
    {RLELossless, JPEGLSLossless, JPEG2000Lossless, JPEGLosslessSV1, JPEGLossless}
)
LOSSY_TARGETS = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLSNearLossless, JPEG2000})
DEFAULT_QUALITY = 90
# DCMTK's default maximum deviation for JPEG-LS near-lossless (dcmcjpls --max-deviation).
NEAR_LOSSLESS_ERROR = 2
# (0028,2114) Lossy Image Compression Method, by target (PS3.3 C.7.6.1.1.5.1).
_LOSSY_METHODS = {
    JPEGBaseline8Bit: "ISO_10918_1",
    JPEGExtended12Bit: "ISO_10918_1",
    JPEGLSNearLossless: "ISO_14495_1",
    JPEG2000: "ISO_15444_1",
}
_JPEG_TARGETS = frozenset({JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1})
_MONOCHROME = ("MONOCHROME1", "MONOCHROME2")
# OpenJPEG's encoder through pydicom always makes 6 resolution levels, which need 2^5 pixels:
# smaller images go through imagecodecs' OpenJPEG with fewer levels.
_J2K_MINIMUM_SIDE = 32


class EncodingError(ValueError):
    """The image cannot be held by the target transfer syntax (the reason in the message)."""


def encode(dataset: Dataset, target: UID, quality: int = DEFAULT_QUALITY) -> None:
    """Encode, in place, the native little endian, colour-by-pixel pixel data of `dataset`
    (every frame) in `target`, and set its transfer syntax. Lossy targets only mark the
    compression (see `mark_lossy`); the caller decides about a new SOP Instance UID."""
    if not 1 <= quality <= 100:
        raise EncodingError(f"The lossy quality must be between 1 and 100, not {quality}")
    uncompressed = len(dataset.PixelData)
    small = min(int(dataset.Rows), int(dataset.Columns)) < _J2K_MINIMUM_SIDE
    if target in _JPEG_TARGETS:
        _encode_jpeg(dataset, target, quality)
    elif target in (JPEG2000, JPEG2000Lossless) and small:
        _encode_small_j2k(dataset, target, quality)
    else:
        options: dict[str, Any] = {}
        if target == RLELossless:
            # Never GDCM's: it aborts the whole process on pixel data padded to an even
            # length (an exception it throws through C).
            options["encoding_plugin"] = "pylibjpeg" if _has_rle_plugin() else "pydicom"
        elif target == JPEGLSNearLossless:
            if int(dataset.get("PixelRepresentation", 0)) == 1:
                # Near-lossless errors wrap around at the sign bit of the stored pattern.
                raise EncodingError("JPEG-LS near-lossless holds unsigned samples only")
            options["jls_error"] = NEAR_LOSSLESS_ERROR
        elif target == JPEG2000:
            options["j2k_cr"] = [_j2k_ratio(quality)]
        try:
            dataset.compress(target, generate_instance_uid=False, **options)
        except Exception as exc:  # pydicom raises several kinds for what a codec refuses
            raise EncodingError(str(exc)) from None
    if target in LOSSY_TARGETS:
        ratio = uncompressed / max(1, _encapsulated_size(dataset))
        mark_lossy(dataset, target, ratio, quality)


def mark_lossy(dataset: Dataset, target: UID, ratio: float, quality: int) -> None:
    """What DCMTK records after a lossy compression: Lossy Image Compression "01", the
    ratio and method appended to those of earlier compressions, a derived Image Type and a
    Derivation Description."""
    dataset.LossyImageCompression = "01"
    ratios = _values(dataset.get("LossyImageCompressionRatio"))
    dataset.LossyImageCompressionRatio = [*ratios, f"{ratio:.6g}"[:16]]
    methods = _values(dataset.get("LossyImageCompressionMethod"))
    dataset.LossyImageCompressionMethod = [*methods, _LOSSY_METHODS[target]]
    image_type = _values(dataset.get("ImageType"))
    if image_type:
        dataset.ImageType = ["DERIVED", *image_type[1:]]
    detail = f"quality {quality}" if target != JPEGLSNearLossless else "near 2"
    text = f"Lossy compression with {target.name}, {detail}, compression ratio {ratio:.2f}"
    previous = str(dataset.get("DerivationDescription", "") or "")
    dataset.DerivationDescription = (f"{previous} [{text}]" if previous else text)[:1024]


def give_new_instance_uid(dataset: Dataset) -> None:
    """A new SOP Instance UID after a lossy compression (as DCMTK does), with the old one in
    the Source Image Sequence ("Lossy compressed predecessor")."""
    old_uid = str(dataset.get("SOPInstanceUID", "") or "")
    sop_class = str(dataset.get("SOPClassUID", "") or "")
    new_uid = generate_uid()
    dataset.SOPInstanceUID = new_uid
    if hasattr(dataset, "file_meta"):
        dataset.file_meta.MediaStorageSOPInstanceUID = new_uid
    if not old_uid or not sop_class:
        return
    reference = Dataset()
    reference.ReferencedSOPClassUID = sop_class
    reference.ReferencedSOPInstanceUID = old_uid
    purpose = Dataset()
    purpose.CodeValue = "121320"
    purpose.CodingSchemeDesignator = "DCM"
    purpose.CodeMeaning = "Uncompressed predecessor"
    reference.PurposeOfReferenceCodeSequence = [purpose]
    sources = list(dataset.get("SourceImageSequence", []))
    dataset.SourceImageSequence = [*sources, reference]


def _encode_jpeg(dataset: Dataset, target: UID, quality: int) -> None:
    samples = int(dataset.get("SamplesPerPixel", 1))
    bits_allocated = int(dataset.BitsAllocated)
    bits_stored = int(dataset.get("BitsStored", bits_allocated))
    signed = int(dataset.get("PixelRepresentation", 0)) == 1
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if samples not in (1, 3):
        raise EncodingError(f"JPEG holds 1 or 3 samples per pixel, not {samples}")
    frames = _frames(dataset)
    if target in (JPEGBaseline8Bit, JPEGExtended12Bit):
        # Process 1 (baseline): 8-bit samples; process 2 and 4 (extended): 8 or 12-bit ones.
        # Unsigned only; grey, or colour at 8 bits (YCbCr 4:2:2, as DCMTK writes it).
        extended = target == JPEGExtended12Bit
        name = "JPEG extended" if extended else "JPEG baseline"
        if extended and bits_stored > 12:
            raise EncodingError(f"JPEG extended holds 8 or 12-bit samples, not {bits_stored}-bit")
        if not extended and bits_allocated != 8:
            raise EncodingError(
                f"JPEG baseline holds 8-bit samples only, not {bits_stored}-bit ones"
            )
        if signed:
            raise EncodingError(f"{name} holds unsigned samples only")
        if photometric not in (*_MONOCHROME, "RGB", "YBR_FULL"):
            raise EncodingError(f"{name} cannot hold a {photometric} image")
        twelve = bits_stored > 8
        color = samples == 3
        if color and twelve:
            raise EncodingError(f"{name} holds colour images of 8-bit samples only")
        encoded: list[bytes | bytearray] = []
        for frame in frames:
            if photometric == "YBR_FULL":
                frame = convert_color_space(frame, "YBR_FULL", "RGB")
            encoded.append(
                imagecodecs.jpeg8_encode(
                    np.ascontiguousarray(frame, dtype=np.uint16 if twelve else np.uint8),
                    level=quality,
                    colorspace="RGB" if color else "GRAYSCALE",
                    outcolorspace="YCbCr" if color else "GRAYSCALE",
                    subsampling="422" if color else None,
                    bitspersample=12 if twelve else None,
                )
            )
        if color:
            dataset.PhotometricInterpretation = "YBR_FULL_422"
    else:
        # Process 14 (selection value 1 for SV1): every precision from 2 to 16 bits. Signed
        # samples are stored as their two's complement bit pattern, as DCMTK stores them.
        if not 2 <= bits_stored <= 16:
            raise EncodingError(f"JPEG lossless holds 2 to 16-bit samples, not {bits_stored}")
        mask = (1 << bits_stored) - 1
        dtype = np.uint8 if bits_stored <= 8 else np.uint16
        space = "GRAYSCALE" if samples == 1 else "RGB"  # no colour transform: lossless
        encoded = []
        for frame in frames:
            unsigned = frame.view(frame.dtype.str.replace("i", "u")) & mask
            encoded.append(
                imagecodecs.jpeg8_encode(
                    np.ascontiguousarray(unsigned, dtype=dtype),
                    lossless=True,
                    predictor=1,
                    bitspersample=bits_stored,
                    colorspace=space,
                    outcolorspace=space,
                )
            )
    _set_encapsulated(dataset, encoded, target)


def _encode_small_j2k(dataset: Dataset, target: UID, quality: int) -> None:
    """JPEG 2000 for images under 32 pixels a side (as many resolution levels as fit), the
    colour components as they are (no MCT: an RGB image stays RGB, as pydicom encodes it)."""
    side = min(int(dataset.Rows), int(dataset.Columns))
    bits_stored = int(dataset.get("BitsStored", dataset.BitsAllocated))
    lossless = target == JPEG2000Lossless
    encoded: list[bytes | bytearray] = []
    for frame in _frames(dataset):
        try:
            encoded.append(
                imagecodecs.jpeg2k_encode(
                    np.ascontiguousarray(frame),
                    level=None if lossless else _j2k_psnr(quality),
                    codecformat="j2k",
                    reversible=lossless,
                    bitspersample=bits_stored,
                    resolutions=max(1, min(6, side.bit_length())),
                    mct=False,
                )
            )
        except Exception as exc:
            raise EncodingError(str(exc)) from None
    _set_encapsulated(dataset, encoded, target)


def _frames(dataset: Dataset) -> list[np.ndarray]:
    """Each frame as an array (rows, columns[, samples]), colour-by-pixel, signed when the
    pixel representation says so."""
    try:
        pixels, _ = get_decoder(ExplicitVRLittleEndian).as_array(dataset, raw=True)
    except Exception as exc:
        raise EncodingError(f"Cannot read the pixel data: {exc}") from None
    count = int(dataset.get("NumberOfFrames", 1) or 1)
    if count == 1:
        return [pixels]
    return [pixels[index] for index in range(count)]


def _set_encapsulated(dataset: Dataset, frames: list[bytes | bytearray], target: UID) -> None:
    dataset.PixelData = encapsulate([bytes(frame) for frame in frames], has_bot=True)
    element = dataset["PixelData"]
    element.VR = "OB"
    element.is_undefined_length = True
    for offsets in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        if offsets in dataset:
            del dataset[offsets]
    if int(dataset.get("SamplesPerPixel", 1)) > 1:
        dataset.PlanarConfiguration = 0
    dataset.file_meta.TransferSyntaxUID = target
    dataset.set_original_encoding(False, True, dataset.original_character_set)


def _has_rle_plugin() -> bool:
    from pydicom.pixels.encoders import RLELosslessEncoder

    return "pylibjpeg" in RLELosslessEncoder.available_plugins


def _encapsulated_size(dataset: Dataset) -> int:
    return len(dataset.PixelData)


def _j2k_ratio(quality: int) -> float:
    """JPEG 2000 has no quality factor: a compression ratio from Orthanc's 1-100 scale (90,
    the default, gives 7:1; 50 gives 27:1; 1 gives 51.5:1)."""
    return 2.0 + (100 - quality) / 2.0


def _j2k_psnr(quality: int) -> int:
    """The target PSNR (dB) of a small lossy JPEG 2000 image: 57 at quality 90, 45 at 50."""
    return 30 + round(quality * 0.3)


def _values(value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return [str(value)]
    return [str(item) for item in value]
