"""The DICOM dictionary as Orthanc shows it: tag names, tag syntax, value representations.

Orthanc takes names and VRs from DCMTK's dictionary; Pharos takes them from pydicom's, with the
few rules that make the names come out as Orthanc writes them (see `tag_name`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydicom.datadict import dictionary_VR as pydicom_dictionary_vr
from pydicom.datadict import get_entry, get_private_entry, tag_for_keyword

from pharos.model.errors import ErrorCode, PharosError

# DCMTK's DcmTag_ERROR_TagName, the name Orthanc gives to tags missing from the dictionary
UNKNOWN_TAG_NAME = "Unknown Tag & Data"
PIXEL_DATA = 0x7FE00010
SPECIFIC_CHARACTER_SET = 0x00080005


_HEX_TAG = re.compile(r"([0-9A-Fa-f]{4})[-,]?([0-9A-Fa-f]{4})")
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")


@lru_cache(maxsize=16384)
def format_tag(tag: int) -> str:
    """'0010,0010': the key of Orthanc's full and short formats (lowercase hexadecimal)."""
    return f"{tag >> 16:04x},{tag & 0xFFFF:04x}"


def parse_tag(text: str) -> int:
    """A tag as Orthanc's `FromDcmtkBridge::ParseTag` accepts it.

    '0010,0010', '0010-0010', '00100010' or a dictionary name ('PatientName', also with
    DCMTK's 'RETIRED_' prefix). Raises PharosError(UNKNOWN_DICOM_TAG) otherwise.
    """
    match = _HEX_TAG.fullmatch(text)
    if match is not None and len(text) in (8, 9):
        return (int(match.group(1), 16) << 16) | int(match.group(2), 16)
    keyword = text[8:] if text.startswith("RETIRED_") else text
    tag = tag_for_keyword(keyword) if keyword.isidentifier() else None
    if tag is None:
        raise PharosError(ErrorCode.UNKNOWN_DICOM_TAG, f'Unknown DICOM tag: "{text}"')
    return tag


def parse_ignore_length(argument: str | None) -> frozenset[int]:
    """The tags of the `ignore-length` GET argument (comma-separated, as in Orthanc >= 1.3.1).

    Orthanc splits on commas, so '0010,0010' is two tokens for it and fails; here two
    consecutive 4-digit tokens are read as one tag, and empty tokens are ignored.
    """
    if not argument:
        return frozenset()
    tokens = [token.strip() for token in argument.split(",")]
    tags: set[int] = set()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if (
            i + 1 < len(tokens)
            and _HEX4.fullmatch(token) is not None
            and _HEX4.fullmatch(tokens[i + 1]) is not None
        ):
            tags.add((int(token, 16) << 16) | int(tokens[i + 1], 16))
            i += 2
            continue
        if token:
            tags.add(parse_tag(token))
        i += 1
    return frozenset(tags)


# The names Orthanc forces whatever DCMTK's dictionary says (DicomTag::GetMainTagsName); only
# OtherPatientIDs differs from what the rule below gives, as it is retired in the dictionary.
_PATCHED_NAMES = {0x00101000: "OtherPatientIDs"}
_WORD = re.compile(r"[0-9A-Za-z]+")


@lru_cache(maxsize=65536)
def tag_name(tag: int, private_creator: str | None = None) -> str:
    """The `Name` Orthanc gives to a tag, i.e. its name in DCMTK's dictionary.

    Public tags: the DICOM keyword, prefixed with 'RETIRED_' when retired (as DCMTK >= 3.6.4
    does). Group lengths: 'FileMetaInformationGroupLength', 'CommandGroupLength',
    'GenericGroupLength', 'PrivateGroupLength'. Private creators: 'PrivateCreator'. Private data
    elements: the name in pydicom's private dictionary for that creator, in CamelCase (DCMTK
    has its own private dictionary, whose names mostly agree). Anything else: UNKNOWN_TAG_NAME.
    """
    patched = _PATCHED_NAMES.get(tag)
    if patched is not None:
        return patched
    group, element = tag >> 16, tag & 0xFFFF
    if group & 1:
        illegal = group <= 0x0007  # groups 1, 3, 5 and 7 cannot hold private tags
        if element == 0:
            return "IllegalGroupLength" if illegal else "PrivateGroupLength"
        if 0x0010 <= element <= 0x00FF:
            return "IllegalPrivateCreator" if illegal else "PrivateCreator"
        if private_creator:
            try:
                description = get_private_entry(tag, private_creator)[2]
            except (KeyError, ValueError, TypeError):
                return UNKNOWN_TAG_NAME
            words = _WORD.findall(description)
            if words:
                return "".join(word[:1].upper() + word[1:] for word in words)
        return UNKNOWN_TAG_NAME
    try:
        entry = get_entry(tag)
    except (KeyError, ValueError):
        return "GenericGroupLength" if element == 0 else UNKNOWN_TAG_NAME
    keyword = entry[4]
    if not keyword:
        return UNKNOWN_TAG_NAME
    return "RETIRED_" + keyword if entry[3] else keyword


# DCMTK's DcmByteString subclasses (`isaString()`): their value is text
# fmt: off
STRING_VRS = frozenset({
    "AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
    "UR", "UT",
})
# fmt: on
# struct code, item size, formatter (boost::lexical_cast: max_digits10 for floats, 9 and 17)
NUMBER_VRS: dict[str, tuple[str, int, Callable[[Any], str]]] = {
    "US": ("H", 2, str),
    "SS": ("h", 2, str),
    "UL": ("L", 4, str),
    "SL": ("l", 4, str),
    "FL": ("f", 4, lambda v: format(v, ".9g")),
    "FD": ("d", 8, lambda v: format(v, ".17g")),
}
# Orthanc's IsBinaryTag (DCMTK: OB, OW, UN, "ox", unknown VR); /header skips them
INVALID_VR = "??"  # a VR code DCMTK does not know: binary, so Null
BINARY_VRS = frozenset({"OB", "OW", "UN", INVALID_VR})
_OTHER_VRS = {"AT", "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UN", "UV"}
KNOWN_VRS = STRING_VRS | NUMBER_VRS.keys() | _OTHER_VRS


def normalise_vr(vr: str) -> str:
    """One VR for pydicom's ambiguous ones, as DCMTK picks them ('US or SS' is read as US)."""
    if " or " not in vr:
        return vr
    if "OB" in vr or "OW" in vr:
        return "OW"
    return vr.split(" or ", 1)[0]


@lru_cache(maxsize=16384)
def dictionary_vr(tag: int, private_creator: str | None) -> str:
    """The VR of a tag read in implicit VR: from the dictionaries, 'UN' when unknown."""
    group, element = tag >> 16, tag & 0xFFFF
    if element == 0:
        return "UL"
    if group & 1:
        if 0x0010 <= element <= 0x00FF:
            return "LO"
        if private_creator:
            try:
                return normalise_vr(get_private_entry(tag, private_creator)[0])
            except (KeyError, ValueError, TypeError):
                return "UN"
        return "UN"
    try:
        return normalise_vr(pydicom_dictionary_vr(tag))
    except (KeyError, ValueError):
        return "UN"
