"""Element values as the strings Orthanc shows and indexes (`MainDicomTags`).

Values are decoded from the raw bytes of the file: exact (no reformatting of numbers),
lenient with invalid content, and far cheaper than a full parse.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from pydicom.charset import decode_bytes
from pydicom.datadict import dictionary_VR

# VRs whose bytes are in the dataset's character set; the others are ASCII.
_CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_TEXT_VRS = _CHARSET_VRS | frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"})
_NUMBER_FORMATS = {
    "US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d", "SV": "q", "UV": "Q",
}  # fmt: skip
# Where ISO 2022 escape sequences reset (PS3.5 6.1.2.5.3): value and component delimiters.
_DELIMITERS = {"PN": {0x5C, 0x3D, 0x5E}, "LT": {0x0A, 0x0C, 0x0D}, "ST": {0x0A, 0x0C, 0x0D}}
_VALUE_DELIMITER = {0x5C}


def effective_vr(tag: int, vr: str | None) -> str:
    """The element's VR; for implicit VR or UN (CP 246: known tags sent as UN), the
    dictionary's, as pydicom does."""
    if vr and vr != "UN":
        return vr
    try:
        return str(dictionary_VR(tag)).split(" or ")[0]
    except KeyError:
        return "UN"


def raw_text(
    tag: int, vr: str | None, raw: bytes, little_endian: bool, codecs: Sequence[str]
) -> str | None:
    """The value as Orthanc's string form, or None for binary and sequence values.

    Multiple values are joined with a backslash, as in the file; trailing padding is removed.
    """
    vr = effective_vr(tag, vr)
    if vr in _TEXT_VRS:
        if vr in _CHARSET_VRS:
            text = decode_bytes(raw, codecs, _DELIMITERS.get(vr, _VALUE_DELIMITER))
        else:
            text = raw.decode("latin-1")
        return text.rstrip(" \x00")
    fmt = _NUMBER_FORMATS.get(vr)
    if fmt is None:
        return None
    size = struct.calcsize(fmt)
    count = len(raw) // size
    order = "<" if little_endian else ">"
    numbers = struct.unpack(f"{order}{count}{fmt}", raw[: count * size])
    return "\\".join(_number_text(n) for n in numbers)


def _number_text(number: float) -> str:
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return str(number)
