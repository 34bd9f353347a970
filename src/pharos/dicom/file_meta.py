"""The start of a DICOM file (PS3.10 7.1): 128-byte preamble, "DICM" and the file meta
information group, encoded directly.

A C-STORE request carries the data set without its file meta group; the file stored needs one.
pydicom builds it through a `Dataset` and its writer, which costs about 0.5 ms of Python per
instance received; these few elements in explicit VR little endian cost a few microseconds.
"""

from __future__ import annotations

import struct

PREAMBLE = b"\x00" * 128 + b"DICM"
_VERSION = b"\x00\x01"


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    """An element of group 0002: tag, VR, 2-byte length (4-byte after two reserved bytes
    for OB), value."""
    if vr == b"OB":
        return struct.pack("<HH2s2xI", 0x0002, element, vr, len(value)) + value
    return struct.pack("<HH2sH", 0x0002, element, vr, len(value)) + value


def uid_value(uid: str) -> bytes:
    """A UI value, padded to an even length with a NUL (PS3.5 6.2)."""
    value = uid.encode("ascii")
    return value + b"\x00" if len(value) % 2 else value


def text_value(text: str) -> bytes:
    """An ASCII text value, padded to an even length with a space (PS3.5 6.2)."""
    value = text.encode("ascii")
    return value + b" " if len(value) % 2 else value


def file_meta_header(
    sop_class_uid: str,
    sop_instance_uid: str,
    transfer_syntax_uid: str,
    implementation_class_uid: str,
    implementation_version_name: str | None = None,
) -> bytes:
    """Preamble, "DICM" and the file meta group of a file holding a data set of that SOP
    class and instance, encoded in that transfer syntax. UIDs must be ASCII (they are
    validated when received)."""
    elements = [
        _element(0x0001, b"OB", _VERSION),
        _element(0x0002, b"UI", uid_value(sop_class_uid)),
        _element(0x0003, b"UI", uid_value(sop_instance_uid)),
        _element(0x0010, b"UI", uid_value(transfer_syntax_uid)),
        _element(0x0012, b"UI", uid_value(implementation_class_uid)),
    ]
    if implementation_version_name:
        elements.append(_element(0x0013, b"SH", text_value(implementation_version_name)))
    body = b"".join(elements)
    length = struct.pack("<HH2sHI", 0x0002, 0x0000, b"UL", 4, len(body))
    return PREAMBLE + length + body
