"""Orthanc's JSON renderings of DICOM tags, as pure functions over pydicom datasets.

These back `/instances/{id}/tags` (and `?simplify`, `?short`, `/simplified-tags`),
`/instances/{id}/header`, `/{level}/{id}/module`, `/studies/{id}/module-patient`,
`/{level}/{id}/shared-tags` and `/{level}/{id}/instances-tags`, with the output of Orthanc
1.10.1 (`FromDcmtkBridge::DatasetToJson`, `ConvertLeafElement`, `ToJson`,
`Toolbox::SimplifyDicomAsJson`, `OrthancRestResources.cpp`):

- Full format: `{"0010,0010": {"Name": "PatientName", "Type": "String", "Value": "Doe^John"}}`,
  with `"PrivateCreator"` on private data elements whose block is reserved in their item.
  `Type` is `String`, `Null` (binary, empty numbers, undecodable values), `TooLong` (more than
  256 UTF-8 bytes, unless the tag is in `ignore-length`) or `Sequence` (a list of objects).
- Short format: `{"0010,0010": "Doe^John"}`; simplified: `{"PatientName": "Doe^John"}`. In both,
  `Null`, `TooLong` (and `Binary`) values are `null` and sequences are lists of objects.

Values are read from the raw bytes of the file where pydicom has not converted them yet:
that is faster, and it is the only way to reproduce Orthanc's string handling (trailing
padding stripped, value cut at the first NUL, decoded with the dataset's character set).
Nothing here recurses over the depth of the dataset, and nothing raises on a malformed value.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydicom.charset import CODES_TO_ENCODINGS, python_encoding
from pydicom.datadict import dictionary_VR, get_entry, get_private_entry, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level

__all__ = [
    "MAXIMUM_TAG_LENGTH",
    "PIXEL_DATA",
    "UNKNOWN_TAG_NAME",
    "TagFormat",
    "convert_format",
    "dataset_to_json",
    "extract_module",
    "format_from_query",
    "format_tag",
    "header_to_json",
    "main_tags_to_json",
    "module_tags",
    "parse_ignore_length",
    "parse_tag",
    "shared_tags",
    "tag_name",
]

# ORTHANC_MAXIMUM_TAG_LENGTH: longer values are reported as "TooLong" (not configurable in 1.10)
MAXIMUM_TAG_LENGTH = 256
# DCMTK's DcmTag_ERROR_TagName, the name Orthanc gives to tags missing from the dictionary
UNKNOWN_TAG_NAME = "Unknown Tag & Data"

PIXEL_DATA = 0x7FE00010
SPECIFIC_CHARACTER_SET = 0x00080005
_UNDEFINED_LENGTH = 0xFFFFFFFF


class TagFormat(StrEnum):
    """Orthanc's `DicomToJsonFormat`; the values are the names of the POST options."""

    FULL = "Full"
    SHORT = "Short"
    SIMPLIFY = "Simplify"


def format_from_query(arguments: Iterable[str], default: TagFormat = TagFormat.FULL) -> TagFormat:
    """The format asked by GET arguments: `simplify` wins over `short`, then `full`.

    Orthanc only tests the presence of the argument (`?simplify=false` still simplifies).
    """
    present = set(arguments)
    if "simplify" in present:
        return TagFormat.SIMPLIFY
    if "short" in present:
        return TagFormat.SHORT
    if "full" in present:
        return TagFormat.FULL
    return default


# --- tags and their names ------------------------------------------------------------------

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


# --- value representations -----------------------------------------------------------------

# DCMTK's DcmByteString subclasses (`isaString()`): their value is text
# fmt: off
_STRING_VRS = frozenset({
    "AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
    "UR", "UT",
})
# fmt: on
# struct code, item size, formatter (boost::lexical_cast: max_digits10 for floats, 9 and 17)
_NUMBER_VRS: dict[str, tuple[str, int, Callable[[Any], str]]] = {
    "US": ("H", 2, str),
    "SS": ("h", 2, str),
    "UL": ("L", 4, str),
    "SL": ("l", 4, str),
    "FL": ("f", 4, lambda v: format(v, ".9g")),
    "FD": ("d", 8, lambda v: format(v, ".17g")),
}
# Orthanc's IsBinaryTag (DCMTK: OB, OW, UN, "ox", unknown VR); /header skips them
_INVALID_VR = "??"  # a VR code DCMTK does not know: binary, so Null
_BINARY_VRS = frozenset({"OB", "OW", "UN", _INVALID_VR})
_OTHER_VRS = {"AT", "OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UN", "UV"}
_KNOWN_VRS = _STRING_VRS | _NUMBER_VRS.keys() | _OTHER_VRS


def _normalise_vr(vr: str) -> str:
    """One VR for pydicom's ambiguous ones, as DCMTK picks them ('US or SS' is read as US)."""
    if " or " not in vr:
        return vr
    if "OB" in vr or "OW" in vr:
        return "OW"
    return vr.split(" or ", 1)[0]


@lru_cache(maxsize=16384)
def _dictionary_vr(tag: int, private_creator: str | None) -> str:
    """The VR of a tag read in implicit VR: from the dictionaries, 'UN' when unknown."""
    group, element = tag >> 16, tag & 0xFFFF
    if element == 0:
        return "UL"
    if group & 1:
        if 0x0010 <= element <= 0x00FF:
            return "LO"
        if private_creator:
            try:
                return _normalise_vr(get_private_entry(tag, private_creator)[0])
            except (KeyError, ValueError, TypeError):
                return "UN"
        return "UN"
    try:
        return _normalise_vr(dictionary_VR(tag))
    except (KeyError, ValueError):
        return "UN"


def _element_vr(element: DataElement | RawDataElement, tag: int, creator: str | None) -> str:
    vr = element.VR
    if not vr:
        return _dictionary_vr(tag, creator)
    vr = _normalise_vr(str(vr))
    return vr if vr in _KNOWN_VRS else _INVALID_VR


def _raw_bytes(element: DataElement | RawDataElement) -> bytes | None:
    """The undecoded value of an element pydicom has not converted yet (None otherwise)."""
    if isinstance(element, RawDataElement):
        value = element.value
        if isinstance(value, bytes):
            return value
        if isinstance(value, bytearray | memoryview):
            return bytes(value)
    return None


def _little_endian(element: DataElement | RawDataElement, item: Dataset) -> bool:
    if isinstance(element, RawDataElement):
        return bool(element.is_little_endian)
    little = item.original_encoding[1]
    return True if little is None else bool(little)


# --- character sets ------------------------------------------------------------------------

# Orthanc's `Encoding` names (configuration option "DefaultEncoding") -> Python codec; None is
# Orthanc's "Ascii", which keeps only printable ASCII and newlines (Toolbox::ConvertToAscii).
_ENCODINGS: dict[str, str | None] = {
    "ascii": None,
    "utf8": "utf-8",
    "latin1": "iso8859-1",
    "latin2": "iso8859-2",
    "latin3": "iso8859-3",
    "latin4": "iso8859-4",
    "latin5": "iso8859-9",
    "cyrillic": "iso8859-5",
    "windows1251": "cp1251",
    "arabic": "iso8859-6",
    "greek": "iso8859-7",
    "hebrew": "iso8859-8",
    "thai": "tis-620",
    "japanese": "shift_jis",
    "chinese": "gb18030",
    "japanesekanji": "iso2022_jp",
    "korean": "euc_kr",
    "simplifiedchinese": "gb2312",
}

# Specific Character Set defined terms Orthanc supports (GetDicomEncoding), as Encoding names
_CHARSET_TERMS: dict[str, str] = {
    "ISO_IR 6": "ascii",
    "ISO 2022 IR 6": "ascii",
    "ISO_IR 192": "utf8",
    "GB18030": "chinese",
    "GBK": "chinese",
    "ISO 2022 IR 149": "korean",
    "ISO 2022 IR 87": "japanesekanji",
    "ISO 2022 IR 58": "simplifiedchinese",
}
# fmt: off
for _number, _name in (
    ("100", "latin1"), ("101", "latin2"), ("109", "latin3"), ("110", "latin4"),
    ("148", "latin5"), ("144", "cyrillic"), ("127", "arabic"), ("126", "greek"),
    ("138", "hebrew"), ("166", "thai"), ("13", "japanese"),
):
    _CHARSET_TERMS[f"ISO_IR {_number}"] = _name
    _CHARSET_TERMS[f"ISO 2022 IR {_number}"] = _name
# fmt: on

_ASCII_DROP = bytes([*range(0, 10), *range(11, 32), *range(127, 256)])
_ISO2022_ESCAPE = re.compile(
    "\x8e\x1bN|\x8f\x1bO|\x1b[\x20-\x2f]+[\x30-\x7f]|\x1b[nowNO|}~]|[\x0e\x0f]"
)
_ISO2022_CONTROLS = re.compile(b"[\x0e\x0f\x1b]")
_C_SPACES = " \t\n\v\f\r"  # isspace() of the C locale, used by Toolbox::StripSpaces


def _codec(encoding: str) -> str | None:
    try:
        return _ENCODINGS[encoding.replace("-", "").replace("_", "").lower()]
    except KeyError:
        raise ValueError(f"unknown Orthanc encoding: {encoding!r}") from None


class _Text:
    """Decodes string values to str as Orthanc does (Toolbox::ConvertToUtf8)."""

    __slots__ = ("ascii_fast_path", "code_extensions", "codec", "iso2022")

    def __init__(
        self, codec: str | None, code_extensions: bool, iso2022: list[str] | None = None
    ) -> None:
        self.codec = codec
        self.code_extensions = code_extensions
        # Python codecs of the terms of (0008,0005) when it has several, see _decode_iso2022
        self.iso2022 = iso2022
        # ASCII bytes mean the same in every supported codec except the stateful ISO 2022 one
        self.ascii_fast_path = codec != "iso2022_jp"

    @classmethod
    def for_dataset(cls, dataset: Dataset, default_encoding: str) -> _Text:
        """FromDcmtkBridge::DetectEncoding: the first non-empty term of (0008,0005) decides;
        an unsupported term means ASCII, no (0008,0005) means the default encoding; more than
        one value means ISO 2022 code extensions."""
        default = _codec(default_encoding)
        terms = _charset_terms(dataset)
        if terms is None:
            return cls(default, False)
        terms = [term.strip(_C_SPACES).upper() for term in terms]
        extensions = len(terms) > 1
        iso2022 = None
        if extensions and all(term in python_encoding for term in terms):
            iso2022 = [python_encoding[term or "ISO_IR 6"] for term in terms]
        for term in terms:
            if term:
                name = _CHARSET_TERMS.get(term)
                return cls(None if name is None else _ENCODINGS[name], extensions, iso2022)
        return cls(default, extensions, iso2022)

    def decode(self, raw: bytes, vr: str) -> str:
        if self.iso2022 is not None and b"\x1b" in raw:
            return _decode_iso2022(raw, self.iso2022, vr)
        if self.codec is None:
            return raw.translate(None, _ASCII_DROP).decode("ascii")
        if (
            self.ascii_fast_path
            and raw.isascii()
            and not (self.code_extensions and _ISO2022_CONTROLS.search(raw))
        ):
            return raw.decode("ascii")
        # boost::locale's "skip" policy drops undecodable bytes, like errors="ignore"
        text = raw.decode(self.codec, errors="ignore")
        if self.code_extensions:
            text = _ISO2022_ESCAPE.sub("", text)  # Toolbox::RemoveIso2022EscapeSequences
        return text


# What resets the character set to the first one after an escape sequence (PS3.5 6.1.2.5.3)
_PN_DELIMITERS = frozenset(b"^=\\")
_TEXT_DELIMITERS = frozenset(b"\r\n\t\f\\")
_ISO2022_FRAGMENT = re.compile(b"(^[^\x1b]+|\x1b[^\x1b]*)")
_STATEFUL_CODECS = frozenset({"iso2022_jp", "iso2022_jp_2"})


def _decode_iso2022(raw: bytes, codecs: list[str], vr: str) -> str:
    """ISO 2022 code extensions decoded as pydicom does, for values with escape sequences.

    Orthanc 1.10 decodes the whole value with the first supported term and then deletes the
    escape sequences, which garbles e.g. 'ISO 2022 IR 13\\ISO 2022 IR 87' (SCSH32); here each
    escape sequence switches to its character set, as the standard says. Undecodable bytes are
    dropped, as Orthanc does, and nothing warns.
    """
    delimiters = _PN_DELIMITERS if vr == "PN" else _TEXT_DELIMITERS
    first = codecs[0]
    parts: list[str] = []
    for fragment in _ISO2022_FRAGMENT.findall(raw):
        if not fragment.startswith(b"\x1b"):
            parts.append(fragment.decode(first, errors="ignore"))
            continue
        size = 4 if fragment.startswith((b"\x1b$(", b"\x1b$)")) else 3
        codec = CODES_TO_ENCODINGS.get(fragment[:size])
        if codec is None:  # unknown escape: drop it, keep the first character set
            parts.append(_ISO2022_ESCAPE.sub("", fragment.decode(first, errors="ignore")))
        elif codec in _STATEFUL_CODECS:
            parts.append(fragment.decode(codec, errors="ignore"))
        else:
            body = fragment[size:]
            cut = next((i for i, byte in enumerate(body) if byte in delimiters), len(body))
            parts.append(body[:cut].decode(codec, errors="ignore"))
            parts.append(body[cut:].decode(first, errors="ignore"))
    return "".join(parts)


def _charset_terms(dataset: Dataset) -> list[str] | None:
    element = dataset.get_item(SPECIFIC_CHARACTER_SET, keep_deferred=True)
    if element is None or isinstance(element, Dataset):
        return None
    raw = _raw_bytes(element)
    if raw is not None:
        return _cstring(raw, b" ").decode("latin-1").split("\\")
    value = element.value if isinstance(element, DataElement) else None
    if value is None:
        return [""]
    if isinstance(value, bytes):
        return _cstring(value, b" ").decode("latin-1").split("\\")
    if isinstance(value, str):
        return value.split("\\")
    try:
        return [str(term) for term in value]
    except TypeError:
        return [str(value)]


def _cstring(raw: bytes, padding: bytes) -> bytes:
    """What DCMTK's getString() gives: trailing padding removed, then cut at the first NUL."""
    raw = raw.rstrip(padding)
    nul = raw.find(b"\x00")
    return raw if nul < 0 else raw[:nul]


# --- leaf values ---------------------------------------------------------------------------

_STRING, _NULL, _TOO_LONG, _SEQUENCE = "String", "Null", "TooLong", "Sequence"


_ASCII_TEXT = b"\n" + bytes(range(32, 127))


def _is_ascii_text(raw: bytes) -> bool:
    """Toolbox::IsAsciiString: no NUL, nothing above 127, no control character but '\\n'."""
    return not raw.translate(None, _ASCII_TEXT)


def _as_list(value: Any) -> list[Any]:
    """A converted pydicom value as a list of values (MultiValue, list or a single value)."""
    if isinstance(value, str | bytes | int | float):
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def _value_to_text(value: Any) -> str:
    """A converted pydicom value back to the text DCMTK would hold (multi-values joined)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    if isinstance(value, list | tuple | MultiValue):
        return "\\".join(_value_to_text(v) for v in value)
    return str(value)


def _numbers(
    element: DataElement | RawDataElement, vr: str, item: Dataset, limit: int
) -> str | None:
    """ApplyDcmtkToCTypeConverter: all the values when the length is a multiple of the item
    size, else the first one; nothing (Null) when shorter than one item. With `limit`, a
    count of values that cannot fit is returned as the sentinel '\\0' (TooLong) unformatted."""
    code, size, fmt = _NUMBER_VRS[vr]
    raw = _raw_bytes(element)
    values: tuple[Any, ...] | list[Any]
    if raw is None and isinstance(element, DataElement):
        value = element.value
        if isinstance(value, bytes | bytearray):
            raw = bytes(value)
        elif value is None or value == "":
            return None
        else:
            values = _as_list(value)
            if not values:
                return None
            if limit and 2 * len(values) - 1 > limit:
                return "\0"
            if vr == "FL":  # what a float32 in the file would hold
                values = [struct.unpack("<f", struct.pack("<f", float(v)))[0] for v in values]
            elif vr == "FD":
                values = [float(v) for v in values]
            else:
                values = [int(v) for v in values]
            return "\\".join(map(fmt, values))
    if raw is None:
        return None
    length = len(raw)
    if length < size:
        return None
    count = length // size if length > size and length % size == 0 else 1
    if limit and 2 * count - 1 > limit:
        return "\0"
    prefix = "<" if _little_endian(element, item) else ">"
    return "\\".join(map(fmt, struct.unpack_from(f"{prefix}{count}{code}", raw)))


def _attribute_tag(element: DataElement | RawDataElement, item: Dataset) -> str | None:
    """AT: only the first value, as 'gggg,eeee'."""
    raw = _raw_bytes(element)
    if raw is None and isinstance(element, DataElement):
        value = element.value
        if isinstance(value, bytes | bytearray):
            raw = bytes(value)
        else:
            values = [] if value is None or value == "" else _as_list(value)
            return format_tag(int(values[0]) & 0xFFFFFFFF) if values else None
    if raw is None or len(raw) < 4:
        return None
    fmt = "<HH" if _little_endian(element, item) else ">HH"
    group, elem = struct.unpack_from(fmt, raw)
    return format_tag((group << 16) | elem)


class _Renderer:
    """One rendering of one dataset; the options are those of Orthanc's DicomToJsonFlags."""

    __slots__ = (
        "fmt",
        "ignore",
        "include_binary",
        "include_private",
        "include_unknown",
        "max_length",
        "stop_after_pixel_data",
        "text",
    )

    def __init__(
        self,
        fmt: TagFormat,
        text: _Text,
        *,
        ignore: frozenset[int] = frozenset(),
        max_length: int = MAXIMUM_TAG_LENGTH,
        stop_after_pixel_data: bool = True,
        include_binary: bool = True,
        include_private: bool = True,
        include_unknown: bool = True,
    ) -> None:
        self.fmt = fmt
        self.text = text
        self.ignore = ignore
        self.max_length = max_length
        self.stop_after_pixel_data = stop_after_pixel_data
        self.include_binary = include_binary
        self.include_private = include_private
        self.include_unknown = include_unknown

    def run(self, dataset: Dataset) -> dict[str, Any]:
        # Depth-first with an explicit stack: each item's dict is created (and linked to its
        # parent) before the item is visited, so no Python recursion over nested sequences.
        root: dict[str, Any] = {}
        stack: list[tuple[Dataset, dict[str, Any], bool]] = [(dataset, root, True)]
        while stack:
            item, out, is_root = stack.pop()
            pending = self._render_item(item, out, is_root)
            if self.fmt is TagFormat.SIMPLIFY:
                _sort_in_place(out)
            stack.extend(reversed(pending))
        return root

    def _render_item(
        self, item: Dataset, out: dict[str, Any], is_root: bool
    ) -> list[tuple[Dataset, dict[str, Any], bool]]:
        pending: list[tuple[Dataset, dict[str, Any], bool]] = []
        creators: dict[int, str | None] = {}
        stop = is_root and self.stop_after_pixel_data
        for tag in sorted(map(int, item.keys())):  # plain ints compare faster than BaseTag
            if stop and tag > PIXEL_DATA:
                break  # Orthanc >= 1.9.1 does not report the tags after the pixel data
            try:
                element = item.get_item(tag, keep_deferred=True)
            except Exception:
                continue
            if not isinstance(element, DataElement | RawDataElement):
                continue
            group = tag >> 16
            creator = None
            if group & 1:
                if not self.include_private:
                    continue
                if group > 0x0007 and (tag & 0xFFFF) >= 0x1000:
                    creator = _private_creator(item, tag, creators)
            name = tag_name(tag, creator)
            if not self.include_unknown and name == UNKNOWN_TAG_NAME:
                continue
            try:
                vr = _element_vr(element, tag, creator)
            except Exception:
                vr = _INVALID_VR
            if not self.include_binary and vr in _BINARY_VRS:
                continue

            if vr == "SQ" or (
                isinstance(element, RawDataElement)
                and element.length == _UNDEFINED_LENGTH
                and tag != PIXEL_DATA
            ):
                items = _sequence_items(item, tag, element)
                if items is not None:
                    children: list[dict[str, Any]] = [{} for _ in items]
                    self._put(out, tag, name, None, _SEQUENCE, children)
                    pending.extend(
                        (child, child_out, False)
                        for child, child_out in zip(items, children, strict=True)
                    )
                    continue
                if vr == "SQ":
                    self._put(out, tag, name, None, _NULL, None)
                    continue
            try:
                kind, value = self._leaf(item, tag, element, vr)
            except Exception:  # whatever the file holds, a bad value is reported as Null
                kind, value = _NULL, None
            self._put(out, tag, name, creator, kind, value)
        return pending

    def _put(
        self,
        out: dict[str, Any],
        tag: int,
        name: str,
        creator: str | None,
        kind: str,
        value: Any,
    ) -> None:
        if self.fmt is TagFormat.FULL:
            node: dict[str, Any] = {"Name": name}
            if creator is not None:
                node["PrivateCreator"] = creator
            node["Type"] = kind
            node["Value"] = value
            out[format_tag(tag)] = node
        elif self.fmt is TagFormat.SHORT:
            out[format_tag(tag)] = value
        else:
            # same key for several tags (e.g. unknown private ones): the last one wins, as in
            # SimplifyDicomAsJson, which walks the keys in order
            out[name] = value

    def _leaf(
        self, item: Dataset, tag: int, element: DataElement | RawDataElement, vr: str
    ) -> tuple[str, str | None]:
        if isinstance(element, RawDataElement) and element.value is None and element.length:
            if vr not in _STRING_VRS and vr not in _NUMBER_VRS and vr != "AT":
                return _NULL, None  # binary: never needed, so never read
            converted = item[tag]  # deferred read: let pydicom fetch the value
            element = converted if isinstance(converted, DataElement) else element
        limit = 0 if tag in self.ignore else self.max_length
        text: str | None
        if vr in _STRING_VRS:
            text = self._string(element, vr)
        elif vr in _NUMBER_VRS:
            text = _numbers(element, vr, item, limit)
            if text == "\0":
                return _TOO_LONG, None
        elif vr == "AT":
            text = _attribute_tag(element, item)
        elif vr == "UN":
            text = self._unknown(element, tag, item)
        else:  # OB, OW, OF, OD, OL, OV, SV, UV: binary, which Orthanc turns into Null
            text = None
        if text is None:
            return _NULL, None
        if (
            limit
            and len(text) > limit // 4
            and (len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit)
        ):
            return _TOO_LONG, None
        return _STRING, text

    def _string(self, element: DataElement | RawDataElement, vr: str) -> str:
        raw = _raw_bytes(element)
        if raw is None and isinstance(element, DataElement):
            value = element.value
            if isinstance(value, bytes | bytearray):
                raw = bytes(value)
            else:
                text = _value_to_text(value).rstrip("\x00" if vr == "UI" else " ")
                nul = text.find("\x00")
                return text if nul < 0 else text[:nul]
        if not raw:
            return ""
        return self.text.decode(_cstring(raw, b"\x00" if vr == "UI" else b" "), vr)

    def _unknown(
        self, element: DataElement | RawDataElement, tag: int, item: Dataset
    ) -> str | None:
        """UN holding a tag the dictionary knows as text (CP 246): the raw bytes if ASCII."""
        raw = _raw_bytes(element)
        if raw is None and isinstance(element, DataElement):
            value = element.value
            raw = bytes(value) if isinstance(value, bytes | bytearray) else None
        if raw is None:
            return None
        creator = None
        if (tag >> 16) & 1 and (tag & 0xFFFF) >= 0x1000:
            creator = _private_creator(item, tag, {})
        if _dictionary_vr(tag, creator) not in _STRING_VRS or not _is_ascii_text(raw):
            return None
        return raw.decode("ascii")


def _private_creator(item: Dataset, tag: int, cache: dict[int, str | None]) -> str | None:
    """The creator reserving the block of a private data element, in the same item."""
    creator_tag = (tag & 0xFFFF0000) | ((tag >> 8) & 0xFF)
    if creator_tag in cache:
        return cache[creator_tag]
    creator: str | None = None
    try:
        element = item.get_item(creator_tag, keep_deferred=True)
        if isinstance(element, DataElement | RawDataElement):
            raw = _raw_bytes(element)
            if raw is not None:
                creator = _cstring(raw, b" ").decode("latin-1")
            elif isinstance(element, DataElement):
                text = _value_to_text(element.value).rstrip(" ")
                nul = text.find("\x00")
                creator = text if nul < 0 else text[:nul]
    except Exception:
        creator = None
    cache[creator_tag] = creator or None
    return cache[creator_tag]


def _sequence_items(
    item: Dataset, tag: int, element: DataElement | RawDataElement
) -> list[Dataset] | None:
    """The items of a sequence (pydicom parses one level at a time), None if unreadable."""
    try:
        if isinstance(element, RawDataElement):
            converted = item[tag]
            if not isinstance(converted, DataElement) or converted.VR != "SQ":
                return None
            value = converted.value
        else:
            value = element.value
        if value is None:
            return []
        return [child for child in value if isinstance(child, Dataset)]
    except Exception:
        return None


def _sort_in_place(out: dict[str, Any]) -> None:
    # JsonCpp objects are sorted maps: Orthanc's simplified keys come out in name order.
    # Sorted in place, since the parent already holds a reference to this dict.
    ordered = sorted(out.items())
    out.clear()
    out.update(ordered)


# --- the public renderings -----------------------------------------------------------------


def dataset_to_json(
    dataset: Dataset,
    fmt: TagFormat = TagFormat.FULL,
    *,
    ignore_length: Iterable[int] = (),
    default_encoding: str = "Latin1",
    max_length: int = MAXIMUM_TAG_LENGTH,
) -> dict[str, Any]:
    """`/instances/{id}/tags` (FULL by default), `?short`, `?simplify` and `/simplified-tags`.

    `ignore_length` lifts the length limit for those tags (GET argument `ignore-length`);
    `default_encoding` is Orthanc's "DefaultEncoding" option ("Latin1", "Utf8", ...), used
    when the dataset has no Specific Character Set. Top-level tags after Pixel Data are left
    out, and Pixel Data and every binary value are Null, as in Orthanc >= 1.9.1.
    """
    renderer = _Renderer(
        fmt,
        _Text.for_dataset(dataset, default_encoding),
        ignore=frozenset(ignore_length),
        max_length=max_length,
    )
    return renderer.run(dataset)


def header_to_json(file_meta: Dataset | None, fmt: TagFormat = TagFormat.FULL) -> dict[str, Any]:
    """`/instances/{id}/header`: the file meta information (group 0002).

    As in Orthanc (`ExtractHeaderAsJson`, flags None): binary elements such as
    FileMetaInformationVersion, private and unknown tags are left out, strings are read as
    ASCII and there is no length limit.
    """
    if file_meta is None:
        return {}
    renderer = _Renderer(
        fmt,
        _Text(None, False),
        max_length=0,
        stop_after_pixel_data=False,
        include_binary=False,
        include_private=False,
        include_unknown=False,
    )
    return renderer.run(file_meta)


def convert_format(full: Mapping[str, Any], fmt: TagFormat) -> dict[str, Any]:
    """A full-format JSON in another format (Toolbox::SimplifyDicomAsJson), for stored or
    combined JSON (shared-tags, module, instances-tags). FULL gives a shallow copy."""
    if fmt is TagFormat.FULL:
        return dict(full)
    root: dict[str, Any] = {}
    stack: list[tuple[Mapping[str, Any], dict[str, Any]]] = [(full, root)]
    while stack:
        source, target = stack.pop()
        for key in sorted(source):
            node = source[key]
            if not isinstance(node, Mapping):
                continue
            name = key
            if fmt is TagFormat.SIMPLIFY and isinstance(node.get("Name"), str):
                name = node["Name"]
            kind = node.get("Type")
            if kind == _STRING:
                value = node.get("Value")
                target[name] = value if isinstance(value, str) else ""
            elif kind == _SEQUENCE:
                children: list[dict[str, Any]] = []
                items = node.get("Value")
                for child in items if isinstance(items, list) else ():
                    child_out: dict[str, Any] = {}
                    children.append(child_out)
                    if isinstance(child, Mapping):
                        stack.append((child, child_out))
                target[name] = children
            else:  # Null, TooLong, Binary
                target[name] = None
        if fmt is TagFormat.SIMPLIFY:
            _sort_in_place(target)
    return root


def main_tags_to_json(values: Mapping[int, str | None], fmt: TagFormat) -> dict[str, Any]:
    """A `{tag: value}` map of main DICOM tags in one of the formats (FromDcmtkBridge::ToJson).

    A None value is Null (`"Type": "Null"` in the full format). No private creator is known
    for these tags, so private ones are named as unknown.
    """
    out: dict[str, Any] = {}
    for tag in sorted(values):
        value = values[tag]
        if fmt is TagFormat.FULL:
            out[format_tag(tag)] = {
                "Name": tag_name(tag),
                "Type": _NULL if value is None else _STRING,
                "Value": value,
            }
        elif fmt is TagFormat.SHORT:
            out[format_tag(tag)] = value
        else:
            out[tag_name(tag)] = value
    if fmt is TagFormat.SIMPLIFY:
        _sort_in_place(out)
    return out


def shared_tags(instances: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """`/{level}/{id}/shared-tags` (full format): the top-level tags of type String whose value
    is the same in the full-format tags of every instance (ExtractSharedTags). Entries that
    are not JSON objects are skipped, as Orthanc skips instances deleted meanwhile."""
    shared: dict[str, Any] | None = None
    for tags in instances:
        if not isinstance(tags, Mapping):
            continue
        strings = {
            key: node
            for key, node in tags.items()
            if isinstance(node, Mapping) and node.get("Type") == _STRING
        }
        if shared is None:
            shared = dict(sorted(strings.items()))
            continue
        for key in list(shared):
            other = strings.get(key)
            if other is None or other.get("Value") != shared[key].get("Value"):
                del shared[key]
    return shared or {}


# DicomTag::AddTagsForModule (PS 3.3 2011 tables C.7-1, C.7-3, C.7-5 and C.12-1)
# fmt: off
_MODULE_TAGS: dict[Level, frozenset[int]] = {
    Level.PATIENT: frozenset({
        0x00100010, 0x00100020, 0x00100030, 0x00100040, 0x00081120, 0x00100032, 0x00101000,
        0x00101002, 0x00101001, 0x00102160, 0x00104000, 0x00102201, 0x00102202, 0x00102292,
        0x00102293, 0x00102294, 0x00102297, 0x00102298, 0x00102299, 0x00120062, 0x00120063,
        0x00120064, 0x00100021, 0x00100024,
    }),
    Level.STUDY: frozenset({
        0x0020000D, 0x00080020, 0x00080030, 0x00080090, 0x00080096, 0x00200010, 0x00080050,
        0x00080051, 0x00081030, 0x00081048, 0x00081049, 0x00081060, 0x00081062, 0x00321034,
        0x00081110, 0x00081032, 0x00401012,
    }),
    Level.SERIES: frozenset({
        0x00080060, 0x0020000E, 0x00200011, 0x00200060, 0x00080021, 0x00080031, 0x00081050,
        0x00081052, 0x00181030, 0x0008103E, 0x0008103F, 0x00081070, 0x00081072, 0x00081111,
        0x00081250, 0x00180015, 0x00185100, 0x00280108, 0x00290109, 0x00400275, 0x00102210,
        0x00400253, 0x00400244, 0x00400245, 0x00400254, 0x00400260, 0x00400280,
    }),
    Level.INSTANCE: frozenset({
        0x00080016, 0x00080018, 0x00080005, 0x00080012, 0x00080013, 0x00080014, 0x0008001A,
        0x0008001B, 0x00080110, 0x00080201, 0x0018A001, 0x00200013, 0x01000410, 0x01000420,
        0x01000424, 0x01000426, 0x04000500, 0x04000561, 0x0040A390, 0x00280303, 0x4FFE0001,
        0xFFFAFFFA,
    }),
}
# fmt: on


def module_tags(level: Level) -> frozenset[int]:
    """The tags of the DICOM module of a level, as Orthanc lists them (`/module`,
    `/studies/{id}/module-patient` uses Level.PATIENT). Note (0029,0109) is Orthanc's typo
    for Largest Pixel Value in Series (0028,0109); it is kept to give the same output."""
    return _MODULE_TAGS[level]


def extract_module(full: Mapping[str, Any], level: Level) -> dict[str, Any]:
    """`/{level}/{id}/module`: the full-format tags of one instance restricted to a module."""
    return {
        key: full[key]
        for key in (format_tag(tag) for tag in sorted(_MODULE_TAGS[level]))
        if key in full
    }
