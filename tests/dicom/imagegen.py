"""Image datasets for the pixel tests: known arrays stored in any transfer syntax."""

from __future__ import annotations

import io
from typing import Any

import imagecodecs
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, ExplicitVRLittleEndian

from tests.dicomgen import make_dataset, to_bytes


# Encoders per transfer syntax: array of one frame -> codestream (imagecodecs, independent of
# the decoders under test).
def _unsigned(array: np.ndarray) -> np.ndarray:
    """Lossless JPEG codecs take the two's complement bit pattern of signed pixels."""
    return array.view(np.uint16) if array.dtype == np.int16 else array


ENCODERS = {
    "1.2.840.10008.1.2.4.50": lambda a: imagecodecs.jpeg8_encode(a, level=95),
    "1.2.840.10008.1.2.4.51": lambda a: imagecodecs.jpeg8_encode(a, level=95, bitspersample=12),
    "1.2.840.10008.1.2.4.57": lambda a: imagecodecs.ljpeg_encode(_unsigned(a)),
    "1.2.840.10008.1.2.4.70": lambda a: imagecodecs.ljpeg_encode(_unsigned(a)),
    "1.2.840.10008.1.2.4.80": lambda a: imagecodecs.jpegls_encode(_unsigned(a)),
    "1.2.840.10008.1.2.4.90": lambda a: imagecodecs.jpeg2k_encode(
        a, codecformat="j2k", reversible=True, level=0
    ),
    "1.2.840.10008.1.2.4.201": lambda a: imagecodecs.htj2k_encode(a, reversible=True),
}
LOSSY = {"1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51"}


def image_dataset(
    frames: np.ndarray,
    *,
    syntax: str = ExplicitVRLittleEndian,
    bits_stored: int | None = None,
    photometric: str | None = None,
    planar: int = 0,
    encoded: list[bytes] | None = None,
    **tags: Any,
) -> Dataset:
    """A dataset holding `frames` ((frames,) rows, columns (, 3)), read back from bytes.

    Native syntaxes store the array; encapsulated ones store `encoded` or, by default, the
    frames encoded with imagecodecs; RLE goes through pydicom's own encoder."""
    multi = frames.ndim == 4 or (frames.ndim == 3 and frames.shape[-1] != 3)
    stack = frames if multi else frames[np.newaxis]
    color = stack.ndim == 4
    rows, columns = stack.shape[1:3]
    bits_allocated = stack.dtype.itemsize * 8
    ds = make_dataset(rows=rows, columns=columns, **tags)
    for keyword in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
        if keyword not in tags and keyword in ds:
            delattr(ds, keyword)
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = photometric or ("RGB" if color else "MONOCHROME2")
    if color:
        ds.PlanarConfiguration = planar
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored or bits_allocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if stack.dtype.kind == "i" else 0
    if multi:
        ds.NumberOfFrames = stack.shape[0]
    native = stack
    if color and planar == 1:
        native = np.ascontiguousarray(stack.transpose(0, 3, 1, 2))
    if syntax == "1.2.840.10008.1.2.2":
        native = native.astype(native.dtype.newbyteorder(">"))  # pydicom writes bytes as given
    ds.PixelData = native.tobytes()
    ds["PixelData"].VR = "OB" if bits_allocated == 8 else "OW"
    uid = UID(syntax)
    if uid == "1.2.840.10008.1.2.5":
        ds.compress(uid, encoding_plugin="pydicom")
    elif uid.is_encapsulated:
        codestreams = encoded or [ENCODERS[syntax](frame) for frame in stack]
        ds.PixelData = encapsulate(codestreams)
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.file_meta.TransferSyntaxUID = uid
    else:
        ds.file_meta.TransferSyntaxUID = uid
    return reread(ds)


def reread(ds: Dataset) -> Dataset:
    return pydicom.dcmread(io.BytesIO(to_bytes(ds)))


def stored_bytes(ds: Dataset) -> bytes:
    return to_bytes(ds)


def ramp(shape: tuple[int, ...], dtype: Any, low: int, high: int, seed: int = 0) -> np.ndarray:
    """Random values covering [low, high] (both ends present)."""
    rng = np.random.default_rng(seed)
    array = rng.integers(low, high + 1, size=shape, dtype=np.int64)
    flat = array.reshape(-1)
    flat[0], flat[-1] = low, high
    return array.astype(dtype)
