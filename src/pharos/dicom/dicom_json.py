"""The DICOM JSON model (PS3.18 F.2): what DICOMweb (QIDO-RS, WADO-RS metadata, STOW-RS
responses) answers, built from pydicom datasets or from the index's text values.

Binary values up to `BULK_DATA_THRESHOLD` bytes are inlined (InlineBinary); larger ones are
given a BulkDataURI (WADO-RS metadata, served by the `/bulk/` route) or left out (QIDO-RS
answers; PS3.18 F.2.2 lets a server omit them). Native pixel data is always a BulkDataURI in
WADO-RS metadata (as Orthanc's plugin does); encapsulated pixel data is left out (its frames
are served by `/frames/`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from pydicom import Dataset
from pydicom.uid import UID

from pharos.dicom.dictionary import dictionary_vr

BULK_DATA_THRESHOLD = 1024  # bytes; larger binary values are bulk data
# Pixel Data, Float and Double Float Pixel Data: always bulk data, never in metadata.
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_OMITTED = "\x00omitted"  # what the bulk data handler returns: the element is then dropped
_INT_VRS = frozenset({"IS", "SL", "SS", "UL", "US", "SV", "UV"})
_FLOAT_VRS = frozenset({"DS", "FL", "FD"})
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
# Text VRs whose JSON value is the string itself.
_PLAIN_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)


def dataset_to_dicom_json(
    dataset: Dataset,
    bulk_data_threshold: int = BULK_DATA_THRESHOLD,
    bulk_data_uri: str | None = None,
) -> dict[str, Any]:
    """The DICOM JSON object of a dataset (file meta excluded): attributes sorted by tag, pixel
    data left out (given a BulkDataURI if native, with `bulk_data_uri`), invalid values (that
    pydicom cannot convert) left out rather than failing the whole answer. Binary values
    larger than `bulk_data_threshold` are left out, or, with `bulk_data_uri` (the instance's
    URI ending with a slash), given as a BulkDataURI
    `{bulk_data_uri}bulk/{tag}[/{item number}/{tag}...]` (Orthanc's DICOMweb plugin's form)."""
    kept = Dataset()
    pixels: dict[str, Any] = {}
    for element in dataset:
        if element.tag not in PIXEL_TAGS:
            kept.add(element)
        elif bulk_data_uri is not None and _native(dataset):
            # Native pixel data as bulk data (viewers load segmentations this way); the
            # frames of encapsulated pixel data are in /frames only.
            key = format_tag(element.tag)
            vr = element.VR
            if element.tag == 0x7FE00010:  # OB or OW: files read without pixels do not say
                vr = "OB" if _int(dataset.get("BitsAllocated"), 16) <= 8 else "OW"
            pixels[key] = {"vr": vr, "BulkDataURI": f"{bulk_data_uri}bulk/{key}"}
    result = kept.to_json_dict(
        bulk_data_threshold=bulk_data_threshold,
        bulk_data_element_handler=lambda _element: _OMITTED,
        suppress_invalid_tags=True,
    )
    out = _cleaned(result, None if bulk_data_uri is None else bulk_data_uri + "bulk/")
    if not pixels:
        return out
    return dict(sorted({**out, **pixels}.items()))


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _native(dataset: Dataset) -> bool:
    """Whether the pixel data is native (not encapsulated) in the file's transfer syntax."""
    meta = getattr(dataset, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return syntax is None or not UID(str(syntax)).is_encapsulated


def _cleaned(node: dict[str, Any], bulk_path: str | None) -> dict[str, Any]:
    """Sorted by tag, the omitted bulk data removed or given its URI (`bulk_path` + the path
    of the attribute), sequences cleaned recursively."""
    out: dict[str, Any] = {}
    for key in sorted(node):
        attribute = node[key]
        if attribute.get("BulkDataURI") == _OMITTED:
            if bulk_path is None:
                continue
            attribute = {"vr": attribute["vr"], "BulkDataURI": bulk_path + key}
        elif attribute.get("Value") == []:
            # An empty sequence (pydicom says "Value": []): PS3.18 F.2.5 wants no Value.
            attribute = {"vr": attribute["vr"]}
        elif attribute.get("vr") == "SQ" and "Value" in attribute:
            items = attribute["Value"]
            attribute = {
                **attribute,
                "Value": [
                    _cleaned(item, None if bulk_path is None else f"{bulk_path}{key}/{number}/")
                    for number, item in enumerate(items, start=1)
                ],
            }
        out[key] = attribute
    return out


def format_tag(tag: int) -> str:
    """'GGGGEEEE', as the JSON model keys attributes."""
    return f"{tag:08X}"


def attribute(tag: int, text: str | None, vr: str | None = None) -> dict[str, Any]:
    """The JSON attribute of one tag from its text value as the index keeps it (values
    separated by backslashes, person name groups by '='); empty or invalid: no "Value"."""
    vr = vr or standard_vr(tag)
    node: dict[str, Any] = {"vr": vr}
    if not text:
        return node
    if vr in _PLAIN_VRS and "\\" not in text:
        node["Value"] = [text]  # the usual case, quickly
        return node
    values = _values(vr, text)
    if values:
        node["Value"] = values
    return node


@functools.lru_cache(maxsize=4096)
def standard_vr(tag: int) -> str:
    """The dictionary VR of a public tag (cached: QIDO answers ask for the same few)."""
    return dictionary_vr(tag, None) or "UN"


def _values(vr: str, text: str) -> list[Any]:
    parts = text.split("\\")
    if vr == "PN":
        names: list[Any] = []
        for part in parts:
            groups = part.split("=")
            names.append({k: g for k, g in zip(_PN_GROUPS, groups, strict=False) if g} or None)
        return names
    if vr in _INT_VRS:
        return [_number(part, int) for part in parts]
    if vr in _FLOAT_VRS:
        return [_number(part, float) for part in parts]
    if vr in ("OB", "OW", "UN", "SQ"):
        return []  # never text in the index
    return [part if part != "" else None for part in parts]


def _number(text: str, kind: type[int] | type[float]) -> int | float | None:
    text = text.strip()
    if not text:
        return None
    try:
        value = kind(text) if kind is float else int(float(text))
    except ValueError:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def attributes(values: Mapping[int, str | None]) -> dict[str, Any]:
    """A JSON object from {tag: text value}, sorted by tag."""
    return {format_tag(tag): attribute(tag, values[tag]) for tag in sorted(values)}
