"""Image file encoders for rendered frames: PNG (8/16-bit), JPEG, PAM; and Accept negotiation.

PNG is written here rather than through Pillow: one vectorised "Up" filter and zlib's fastest
level take half Pillow's time for a 512x512 preview at about the same size (Orthanc spends most
of a preview in zlib).
"""

from __future__ import annotations

import io
import struct
import zlib
from enum import Enum

import numpy as np
from PIL import Image

from pharos.model.errors import ErrorCode, PharosError

PNG_LEVEL = 1  # zlib's fastest: previews are transient, bandwidth is rarely the bottleneck
DEFAULT_JPEG_QUALITY = 90


class ImageFormat(Enum):
    PNG = "image/png"
    JPEG = "image/jpeg"
    PAM = "image/x-portable-arbitrarymap"

    @property
    def media_type(self) -> str:
        return self.value


def negotiate(accept: str | None) -> ImageFormat:
    """Orthanc's choice: the first acceptable of the Accept header's types, PNG by default."""
    if not accept or not accept.strip():
        return ImageFormat.PNG
    for part in accept.split(","):
        media = part.split(";", 1)[0].strip().lower()
        if media in ("image/png", "image/*", "*/*", "*"):
            return ImageFormat.PNG
        if media in ("image/jpeg", "image/jpg"):
            return ImageFormat.JPEG
        if media == ImageFormat.PAM.value:
            return ImageFormat.PAM
    raise PharosError(
        ErrorCode.NOT_ACCEPTABLE,
        f"Cannot answer {accept!r}: images are image/png, image/jpeg or {ImageFormat.PAM.value}",
    )


def unsupported_placeholder(size: int = 128) -> np.ndarray:
    """A gray square crossed out: what `returnUnsupportedImage` shows for an undecodable image."""
    image = np.full((size, size), 64, np.uint8)
    image[[0, -1], :] = image[:, [0, -1]] = 160
    diagonal = np.arange(size)
    for offset in (-1, 0, 1):
        shifted = np.clip(diagonal + offset, 0, size - 1)
        image[diagonal, shifted] = image[diagonal, size - 1 - shifted] = 200
    return image


def encode(image: np.ndarray, fmt: ImageFormat, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    if fmt is ImageFormat.PNG:
        return encode_png(image)
    if fmt is ImageFormat.JPEG:
        return encode_jpeg(image, quality)
    return encode_pam(image)


def _samples(image: np.ndarray) -> int:
    if image.ndim == 2:
        return 1
    if image.ndim == 3 and image.shape[2] in (1, 3):
        return int(image.shape[2])
    raise ValueError(f"Not an image: shape {image.shape}")


def _big_endian_bytes(image: np.ndarray) -> tuple[np.ndarray, int]:
    """The pixels as big-endian bytes, one row per line, and the bit depth."""
    if image.dtype == np.uint8:
        depth = 8
        data = image
    elif image.dtype in (np.uint16, np.int16):
        depth = 16
        data = image.view(np.uint16).astype(">u2")
    else:
        raise ValueError(f"Cannot encode {image.dtype} pixels")
    height = image.shape[0]
    return np.ascontiguousarray(data).view(np.uint8).reshape(height, -1), depth


def encode_png(image: np.ndarray, level: int = PNG_LEVEL) -> bytes:
    """Grayscale (8 or 16 bits; int16 as two's complement) or RGB (8 bits) PNG."""
    samples = _samples(image)
    rows, depth = _big_endian_bytes(image)
    height, width = image.shape[:2]
    if samples == 3 and depth != 8:
        raise ValueError("RGB PNG is 8-bit only here")
    color_type = 0 if samples == 1 else 2
    filtered = np.empty((height, rows.shape[1] + 1), np.uint8)
    # "Up" filter (type 2): each byte minus the byte above; the first row unfiltered (type 0).
    filtered[:, 0] = 2
    filtered[0, 0] = 0
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return b"".join(
        (
            b"\x89PNG\r\n\x1a\n",
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(filtered.tobytes(), level)),
            _chunk(b"IEND", b""),
        )
    )


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def encode_jpeg(image: np.ndarray, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    """8-bit grayscale or RGB JPEG (JPEG holds 8-bit samples only)."""
    if image.dtype != np.uint8:
        raise PharosError(
            ErrorCode.NOT_ACCEPTABLE,
            "JPEG holds 8-bit images only: ask for image/png or "
            f"{ImageFormat.PAM.value} for {image.dtype} pixels",
        )
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def encode_pam(image: np.ndarray) -> bytes:
    """Netpbm PAM (what Orthanc sends for `image/x-portable-arbitrarymap`), big-endian."""
    samples = _samples(image)
    rows, depth = _big_endian_bytes(image)
    height, width = image.shape[:2]
    tuple_type = "GRAYSCALE" if samples == 1 else "RGB"
    header = (
        f"P7\nWIDTH {width}\nHEIGHT {height}\nDEPTH {samples}\n"
        f"MAXVAL {(1 << depth) - 1}\nTUPLTYPE {tuple_type}\nENDHDR\n"
    )
    return header.encode("ascii") + rows.tobytes()


def numpy_file(array: np.ndarray, compress: bool) -> bytes:
    """`.npy`, or `.npz` (zip, one `arr_0.npy`) with `compress`, as `numpy.load` reads them."""
    buffer = io.BytesIO()
    if compress:
        np.savez_compressed(buffer, array)
    else:
        np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()
