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

import struct
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from pharos.dicom.charset import TextDecoder
from pharos.dicom.dictionary import (
    BINARY_VRS,
    INVALID_VR,
    KNOWN_VRS,
    NUMBER_VRS,
    PIXEL_DATA,
    SPECIFIC_CHARACTER_SET,
    STRING_VRS,
    UNKNOWN_TAG_NAME,
    dictionary_vr,
    format_tag,
    normalise_vr,
    tag_name,
)
from pharos.dicom.values import cstring, number_value, text_of, text_value

__all__ = [
    "MAXIMUM_TAG_LENGTH",
    "TagFormat",
    "convert_format",
    "dataset_to_json",
    "format_from_query",
    "header_to_json",
    "main_tags_to_json",
]

# ORTHANC_MAXIMUM_TAG_LENGTH: longer values are reported as "TooLong" (not configurable in 1.10)
MAXIMUM_TAG_LENGTH = 256
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


def _element_vr(element: DataElement | RawDataElement, tag: int, creator: str | None) -> str:
    vr = element.VR
    if not vr:
        return dictionary_vr(tag, creator)
    vr = normalise_vr(str(vr))
    return vr if vr in KNOWN_VRS else INVALID_VR


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


# --- leaf values ---------------------------------------------------------------------------

_STRING, _NULL, _TOO_LONG, _SEQUENCE = "String", "Null", "TooLong", "Sequence"


def _as_list(value: Any) -> list[Any]:
    """A converted pydicom value as a list of values (MultiValue, list or a single value)."""
    if isinstance(value, str | bytes | int | float):
        return [value]
    try:
        return list(value)
    except TypeError:
        return [value]


def _numbers(
    element: DataElement | RawDataElement, vr: str, item: Dataset, limit: int
) -> str | None:
    """A number element's value (see values.number_value), also when pydicom has already
    converted it."""
    fmt = NUMBER_VRS[vr][2]
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
    return number_value(raw, vr, _little_endian(element, item), limit)


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
        text: TextDecoder,
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
                vr = INVALID_VR
            if not self.include_binary and vr in BINARY_VRS:
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
            if vr not in STRING_VRS and vr not in NUMBER_VRS and vr != "AT":
                return _NULL, None  # binary: never needed, so never read
            converted = item[tag]  # deferred read: let pydicom fetch the value
            element = converted if isinstance(converted, DataElement) else element
        limit = 0 if tag in self.ignore else self.max_length
        text: str | None
        if vr in STRING_VRS:
            text = self._string(element, vr)
        elif vr in NUMBER_VRS:
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
                text = text_of(value).rstrip("\x00" if vr == "UI" else " ")
                nul = text.find("\x00")
                return text if nul < 0 else text[:nul]
        return text_value(raw or b"", vr, self.text)

    def _unknown(
        self, element: DataElement | RawDataElement, tag: int, item: Dataset
    ) -> str | None:
        """UN holding a tag the dictionary knows as text or numbers (CP 246): decoded with
        the dictionary's VR, as pydicom does and as the index stores it (values.py). Orthanc
        1.10 shows such values as Null."""
        raw = _raw_bytes(element)
        if raw is None and isinstance(element, DataElement):
            value = element.value
            raw = bytes(value) if isinstance(value, bytes | bytearray) else None
        if raw is None:
            return None
        creator = None
        if (tag >> 16) & 1 and (tag & 0xFFFF) >= 0x1000:
            creator = _private_creator(item, tag, {})
        vr = dictionary_vr(tag, creator)
        if vr in STRING_VRS:
            return text_value(raw, vr, self.text)
        if vr in NUMBER_VRS:
            return number_value(raw, vr, _little_endian(element, item))
        return None


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
                creator = cstring(raw, b" ").decode("latin-1")
            elif isinstance(element, DataElement):
                text = text_of(element.value).rstrip(" ")
                nul = text.find("\x00")
                creator = text if nul < 0 else text[:nul]
    except Exception:
        creator = None
    cache[creator_tag] = creator or None
    return cache[creator_tag]


def _charset_terms(dataset: Dataset) -> list[str] | None:
    """The terms of (0008,0005), or None when the data set has none."""
    element = dataset.get_item(SPECIFIC_CHARACTER_SET, keep_deferred=True)
    if element is None or isinstance(element, Dataset):
        return None
    raw = _raw_bytes(element)
    if raw is not None:
        return cstring(raw, b" ").decode("latin-1").split("\\")
    value = element.value if isinstance(element, DataElement) else None
    if value is None:
        return [""]
    if isinstance(value, bytes):
        return cstring(value, b" ").decode("latin-1").split("\\")
    if isinstance(value, str):
        return value.split("\\")
    try:
        return [str(term) for term in value]
    except TypeError:
        return [str(value)]


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
        TextDecoder.for_terms(_charset_terms(dataset), default_encoding),
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
        TextDecoder(None, False),
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
