"""Element values as the strings Orthanc shows and indexes (`MainDicomTags`).

Values are decoded from the raw bytes: exact (no reformatting of numbers), lenient with
invalid content, and cheaper than pydicom's typed conversion.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from pydicom.charset import decode_bytes
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.multival import MultiValue

# VRs whose bytes are in the dataset's character set; the others are ASCII.
_CHARSET_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_TEXT_VRS = _CHARSET_VRS | frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI", "UR"})
_NUMBER_FORMATS = {
    "US": "H",
    "SS": "h",
    "UL": "I",
    "SL": "i",
    "FL": "f",
    "FD": "d",
    "SV": "q",
    "UV": "Q",
}
# Where ISO 2022 escape sequences reset (PS3.5 6.1.2.5.3): value and component delimiters.
_DELIMITERS = {"PN": {0x5C, 0x3D, 0x5E}, "LT": {0x0A, 0x0C, 0x0D}, "ST": {0x0A, 0x0C, 0x0D}}
_VALUE_DELIMITER = {0x5C}


def vr_of(elem: RawDataElement | DataElement) -> str:
    """The element's VR; for implicit VR or UN (CP 246: known tags sent as UN), the
    dictionary's, as pydicom does."""
    if elem.VR and elem.VR != "UN":
        return str(elem.VR)
    try:
        return str(dictionary_VR(elem.tag)).split(" or ")[0]
    except KeyError:
        return "UN"


def element_text(elem: RawDataElement | DataElement, codecs: Sequence[str]) -> str | None:
    """The value as Orthanc's string form, or None for binary and sequence values.

    Multiple values are joined with a backslash, as in the file; trailing padding is removed.
    """
    vr = vr_of(elem)
    if isinstance(elem, DataElement):
        return _converted_text(elem.value, vr)
    raw = elem.value
    if raw is None:
        return ""
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
    order = "<" if elem.is_little_endian else ">"
    numbers = struct.unpack(f"{order}{count}{fmt}", raw[: count * size])
    return "\\".join(_number_text(n) for n in numbers)


def _number_text(number: float) -> str:
    if isinstance(number, float) and number.is_integer():
        return str(int(number))
    return str(number)


def _converted_text(value: object, vr: str) -> str | None:
    if value is None:
        return ""
    if vr == "SQ" or isinstance(value, bytes | bytearray):
        return None
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(_converted_text(v, vr) or "" for v in value)
    if isinstance(value, float):
        return _number_text(value)
    return str(value).rstrip(" \x00")
