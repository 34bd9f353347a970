"""Element values as the strings Orthanc shows and indexes, from the raw bytes of the file.

The same conversions serve the tag renderings (`orthanc_json.py`) and the main DICOM tags
indexed at ingest (`parse.py`), so that what is searched is exactly what is shown:
text is decoded with the data set's character set, trailing padding removed and the value cut
at the first NUL (DCMTK's getString); numbers are formatted as Orthanc's lexical_cast does.
"""

from __future__ import annotations

import struct
from typing import Any

from pydicom.multival import MultiValue

from pharos.dicom.charset import TextDecoder
from pharos.dicom.dictionary import NUMBER_VRS, STRING_VRS, dictionary_vr


def cstring(raw: bytes, padding: bytes) -> bytes:
    """What DCMTK's getString() gives: trailing padding removed, then cut at the first NUL."""
    raw = raw.rstrip(padding)
    nul = raw.find(b"\x00")
    return raw if nul < 0 else raw[:nul]


def text_value(raw: bytes, vr: str, decoder: TextDecoder) -> str:
    """A string VR's value (UI is padded with NUL, the others with spaces)."""
    if not raw:
        return ""
    return decoder.decode(cstring(raw, b"\x00" if vr == "UI" else b" "), vr)


def number_value(raw: bytes, vr: str, little_endian: bool, limit: int = 0) -> str | None:
    """ApplyDcmtkToCTypeConverter: all the values when the length is a multiple of the item
    size, else the first one; None (Null) when shorter than one item. With `limit`, a count
    of values that cannot fit is returned as the sentinel '\\0' (TooLong) unformatted."""
    code, size, fmt = NUMBER_VRS[vr]
    length = len(raw)
    if length < size:
        return None
    count = length // size if length > size and length % size == 0 else 1
    if limit and 2 * count - 1 > limit:
        return "\0"
    prefix = "<" if little_endian else ">"
    return "\\".join(map(fmt, struct.unpack_from(f"{prefix}{count}{code}", raw)))


def main_tag_value(
    tag: int, vr: str | None, raw: bytes, little_endian: bool, decoder: TextDecoder
) -> str | None:
    """A top-level element's value as indexed (and shown), or None if not a string or number.

    Implicit VR, and UN (CP 246: known tags sent as UN), take the dictionary's VR, as pydicom
    does. Orthanc 1.10 (DCMTK without UN conversion) sees no value in UN elements and so
    refuses files whose UIDs are sent as UN; Pharos stores them.
    """
    if not vr or vr == "UN":
        vr = dictionary_vr(tag, None)
    if vr in STRING_VRS:
        return text_value(raw, vr, decoder)
    if vr in NUMBER_VRS:
        return number_value(raw, vr, little_endian)
    return None


def text_of(value: Any) -> str:
    """A converted pydicom value back to the text DCMTK would hold (multi-values joined)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    if isinstance(value, list | tuple | MultiValue):
        return "\\".join(text_of(v) for v in value)
    return str(value)
