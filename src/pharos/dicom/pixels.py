"""Pixel data: the image geometry of a dataset, one frame decoded to numpy, one frame's raw bytes.

Decoding goes through pydicom 3's pixel API and its codec plugins (pylibjpeg-openjpeg for
JPEG 2000 and HTJ2K, pylibjpeg-rle, GDCM for JPEG and JPEG-LS); imagecodecs steps in for
the JPEG variants GDCM and Pillow refuse (12-bit JPEG extended). A frame is decoded alone,
never the whole multi-frame object. Color frames come out as RGB (YBR_FULL/_422 converted,
YBR_ICT/RCT undone by the JPEG 2000 codec, palettes applied); grayscale frames keep their
stored values.

A dataset without pixel data, or whose pixel data cannot be decoded, raises a `PharosError`
with HTTP status 415 (Orthanc's answer for an image it cannot decode), naming the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom import encaps
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_color_lut, pixel_array
from pydicom.uid import UID

from pharos.model.errors import ErrorCode, PharosError

log = logging.getLogger(__name__)

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
DEFLATED = "1.2.840.10008.1.2.1.99"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
_IMAGECODECS_SYNTAXES = {
    JPEG_BASELINE,
    "1.2.840.10008.1.2.4.51",
    "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70",
    "1.2.840.10008.1.2.4.80",
    "1.2.840.10008.1.2.4.81",
}
# OpenJPEG (pylibjpeg) decodes JPEG 2000 up to three times faster than GDCM, pydicom's first.
_PREFERRED_PLUGINS = {
    uid: "pylibjpeg"
    for uid in (
        "1.2.840.10008.1.2.4.90",
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.201",
        "1.2.840.10008.1.2.4.202",
        "1.2.840.10008.1.2.4.203",
    )
}
# Beyond this a frame is certainly a corrupt header, not an image worth allocating for.
MAX_FRAME_PIXELS = 1 << 28
PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


def image_error(details: str) -> PharosError:
    """The instance has no image Pharos can decode (Orthanc answers 415 too)."""
    return PharosError(ErrorCode.BAD_FILE_FORMAT, details, http_status=415)


def frame_out_of_range(index: int, frames: int) -> PharosError:
    return PharosError(
        ErrorCode.PARAMETER_OUT_OF_RANGE,
        f"Frame {index} does not exist: the instance has {frames} frame(s), numbered from 0",
    )


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """The Image Pixel module, with the defaults real files rely on filled in."""

    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    signed: bool
    photometric: str
    planar: int
    transfer_syntax: str

    @property
    def is_color(self) -> bool:
        return self.samples == 3 or self.photometric == "PALETTE COLOR"

    @property
    def encapsulated(self) -> bool:
        return UID(self.transfer_syntax).is_encapsulated

    @property
    def native_frame_bits(self) -> int:
        """Bits of one frame in a native Pixel Data element (YBR_FULL_422: 2 samples a pixel)."""
        samples = 2 if self.photometric == "YBR_FULL_422" else self.samples
        return self.rows * self.columns * samples * self.bits_allocated

    @property
    def native_frame_length(self) -> int:
        return (self.native_frame_bits + 7) // 8

    def decoding_options(self) -> dict[str, Any]:
        """What pydicom's decoders need, passed explicitly so that defaults apply."""
        options: dict[str, Any] = {
            "rows": self.rows,
            "columns": self.columns,
            "number_of_frames": self.frames,
            "samples_per_pixel": self.samples,
            "bits_allocated": self.bits_allocated,
            "bits_stored": self.bits_stored,
            "pixel_representation": int(self.signed),
            "photometric_interpretation": self.photometric,
        }
        if self.samples > 1:
            options["planar_configuration"] = self.planar
        return options


def transfer_syntax_of(ds: Dataset) -> str:
    """The dataset's transfer syntax; files without meta information were read as implicit."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        return str(meta.TransferSyntaxUID)
    if getattr(ds, "is_little_endian", True) is False:
        return "1.2.840.10008.1.2.2"
    if getattr(ds, "is_implicit_VR", True) is False:
        return "1.2.840.10008.1.2.1"
    return IMPLICIT_VR_LITTLE_ENDIAN


def has_pixel_data(ds: Dataset) -> bool:
    return any(
        keyword in ds and ds[keyword].value not in (None, b"") for keyword in PIXEL_DATA_KEYWORDS
    )


def image_info(ds: Dataset) -> ImageInfo:
    """Checks that `ds` holds an image and describes it; raises `image_error` otherwise."""
    if not has_pixel_data(ds):
        raise image_error("The instance has no pixel data (7fe0,0010)")
    try:
        rows = int(ds.get("Rows") or 0)
        columns = int(ds.get("Columns") or 0)
        samples = int(ds.get("SamplesPerPixel") or 1)
        bits_allocated = int(ds.get("BitsAllocated") or 0)
        bits_stored = int(ds.get("BitsStored") or bits_allocated)
        signed = int(ds.get("PixelRepresentation") or 0) == 1
        frames = int(ds.get("NumberOfFrames") or 1)
        planar = int(ds.get("PlanarConfiguration") or 0)
    except (TypeError, ValueError) as exc:
        raise image_error(f"Invalid Image Pixel module: {exc}") from None
    photometric = str(ds.get("PhotometricInterpretation") or "").strip().upper()
    if not photometric:
        photometric = "MONOCHROME2" if samples == 1 else "RGB"
    if rows <= 0 or columns <= 0:
        raise image_error(f"Invalid image size: {columns}x{rows}")
    if rows * columns > MAX_FRAME_PIXELS:
        raise image_error(f"Image too large to decode: {columns}x{rows}")
    if samples not in (1, 3):
        raise image_error(f"Unsupported samples per pixel: {samples}")
    if bits_allocated not in (1, 8, 16, 32, 64):
        raise image_error(f"Unsupported bits allocated: {bits_allocated}")
    if not 0 < bits_stored <= bits_allocated:
        bits_stored = bits_allocated
    if frames < 1:
        frames = 1
    return ImageInfo(
        rows=rows,
        columns=columns,
        frames=frames,
        samples=samples,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        signed=signed,
        photometric=photometric,
        planar=planar,
        transfer_syntax=transfer_syntax_of(ds),
    )


def decode_frame(ds: Dataset, index: int = 0, info: ImageInfo | None = None) -> np.ndarray:
    """Frame `index` of `ds`: (rows, columns) for grayscale, (rows, columns, 3) RGB for color.

    Grayscale keeps the stored values and their dtype (uint8/int8/uint16/int16/uint32/int32,
    or float for float pixel data); palette color becomes RGB (uint8, or uint16 for 16-bit
    palettes)."""
    info = info or image_info(ds)
    if not 0 <= index < info.frames:
        raise frame_out_of_range(index, info.frames)
    _check_native_length(ds, info)
    _ensure_transfer_syntax(ds, info)
    if info.bits_allocated == 1 and not info.encapsulated:
        # Bit-packed frames need not start on a byte boundary: cut the bit stream ourselves.
        bits = np.unpackbits(np.frombuffer(raw_frame(ds, index, info), np.uint8), bitorder="little")
        return bits[: info.rows * info.columns].reshape(info.rows, info.columns)
    options = info.decoding_options()
    try:
        preferred = _PREFERRED_PLUGINS.get(info.transfer_syntax, "")
        try:
            array = pixel_array(ds, index=index, decoding_plugin=preferred, **options)
        except Exception:
            if not preferred:
                raise
            array = pixel_array(ds, index=index, **options)  # every plugin, in pydicom's order
    except Exception as exc:
        array = _fallback_decode(ds, index, info, exc)
    if not array.dtype.isnative:  # big endian files decode to big-endian arrays
        array = array.astype(array.dtype.newbyteorder("="))
    if info.photometric == "PALETTE COLOR":
        try:
            array = apply_color_lut(array, ds)
        except Exception as exc:
            raise image_error(f"Invalid palette color lookup table: {exc}") from None
    if info.samples == 1 and info.photometric != "PALETTE COLOR" and array.ndim != 2:
        array = array.reshape(info.rows, info.columns)
    return array


def iter_frames(ds: Dataset, info: ImageInfo | None = None) -> Any:
    """Every frame in turn (one decoded at a time)."""
    info = info or image_info(ds)
    for index in range(info.frames):
        yield decode_frame(ds, index, info)


def raw_frame(ds: Dataset, index: int, info: ImageInfo | None = None) -> bytes:
    """Frame `index` as stored: its fragments for encapsulated syntaxes, its bytes otherwise."""
    info = info or image_info(ds)
    if not 0 <= index < info.frames:
        raise frame_out_of_range(index, info.frames)
    data = bytes(ds.PixelData) if "PixelData" in ds else b""
    if not data:
        raise image_error("The instance has no pixel data (7fe0,0010) to extract frames from")
    if info.encapsulated:
        try:
            return encaps.get_frame(data, index, number_of_frames=info.frames)
        except Exception as exc:
            raise image_error(
                f"Cannot find frame {index} in the encapsulated data: {exc}"
            ) from None
    frame_bits = info.native_frame_bits
    if frame_bits % 8:
        # 1-bit frames need not start on a byte boundary: cut the bit stream, then repack.
        bits = np.unpackbits(np.frombuffer(data, np.uint8), bitorder="little")
        if (index + 1) * frame_bits > bits.size:
            raise image_error(
                f"Pixel data too short: frame {index} ends past its {len(data)} bytes"
            )
        chunk = bits[index * frame_bits : (index + 1) * frame_bits]
        return np.packbits(chunk, bitorder="little").tobytes()
    length = info.native_frame_length
    start = index * length
    if start + length > len(data):
        raise image_error(f"Pixel data too short: frame {index} ends past its {len(data)} bytes")
    return data[start : start + length]


def raw_frame_media_type(transfer_syntax: str) -> str:
    """Orthanc's content type of `/frames/{n}/raw`: the codec's file type where it has one."""
    if transfer_syntax == JPEG_BASELINE:
        return "image/jpeg"
    if transfer_syntax in ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"):
        return "image/jp2"
    return "application/octet-stream"


def _ensure_transfer_syntax(ds: Dataset, info: ImageInfo) -> None:
    """pydicom's decoders read the syntax from the meta information, which old files lack."""
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = UID(info.transfer_syntax)


def _check_native_length(ds: Dataset, info: ImageInfo) -> None:
    if info.encapsulated or "PixelData" not in ds:
        return
    expected = (info.native_frame_bits * info.frames + 7) // 8
    actual = len(ds.PixelData)
    if actual < expected:
        raise image_error(
            f"Pixel data too short: {actual} bytes for {info.frames} frame(s) of "
            f"{info.columns}x{info.rows} {info.photometric} at {info.bits_allocated} bits "
            f"({expected} bytes expected)"
        )


def _fallback_decode(ds: Dataset, index: int, info: ImageInfo, error: Exception) -> np.ndarray:
    """imagecodecs for the JPEG variants pydicom's plugins refuse; otherwise a clear error."""
    if info.transfer_syntax in _IMAGECODECS_SYNTAXES:
        try:
            return _imagecodecs_decode(raw_frame(ds, index, info), info)
        except PharosError:
            raise
        except Exception as exc:
            log.debug("imagecodecs failed as well: %s", exc)
    reason = " ".join(str(error).split())
    raise image_error(
        f"Cannot decode the pixel data (transfer syntax {info.transfer_syntax}): {reason}"
    ) from None


def _imagecodecs_decode(frame: bytes, info: ImageInfo) -> np.ndarray:
    import imagecodecs

    if info.transfer_syntax in ("1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"):
        array = imagecodecs.jpegls_decode(frame)
    else:
        array = imagecodecs.jpeg8_decode(frame)
    expected = (info.rows, info.columns) if info.samples == 1 else (info.rows, info.columns, 3)
    array = np.asarray(array).reshape(expected)
    if info.samples == 1 and info.signed:
        # The codec returns the unsigned bit pattern: sign-extend from BitsStored.
        shift = 32 - info.bits_stored
        array = ((array.astype(np.int32) << shift) >> shift).astype(
            np.int16 if info.bits_allocated <= 16 else np.int32
        )
    elif info.samples == 1:
        array = array.astype(np.uint8 if info.bits_allocated <= 8 else np.uint16, copy=False)
    return array
