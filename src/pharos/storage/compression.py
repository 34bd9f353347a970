"""Orthanc's storage compression: zlib, prefixed by the uncompressed size (uint64, LE)."""

from __future__ import annotations

import struct
import zlib
from enum import IntEnum

from pharos.model.errors import ErrorCode, PharosError


class Compression(IntEnum):
    """Orthanc's `CompressionType` numbers."""

    NONE = 1
    ZLIB_WITH_SIZE = 2


def compress(data: bytes, level: int = 6) -> bytes:
    return struct.pack("<Q", len(data)) + zlib.compress(data, level)


def uncompress(data: bytes) -> bytes:
    if len(data) < 8:
        raise PharosError(ErrorCode.CORRUPTED_FILE, "Compressed attachment shorter than its header")
    (size,) = struct.unpack_from("<Q", data)
    try:
        result = zlib.decompress(memoryview(data)[8:])
    except zlib.error as exc:
        raise PharosError(
            ErrorCode.CORRUPTED_FILE, f"Corrupted compressed attachment: {exc}"
        ) from None
    if len(result) != size:
        raise PharosError(ErrorCode.CORRUPTED_FILE, "Compressed attachment has the wrong size")
    return result
