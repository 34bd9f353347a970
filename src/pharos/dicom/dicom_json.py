"""The DICOM JSON model (PS3.18 F.2): what DICOMweb (QIDO-RS, WADO-RS metadata, STOW-RS
responses) answers, built from pydicom datasets or from the index's text values.

Large binary values would need a BulkDataURI pointing at a `/bulkdata` route; Pharos does not
serve one yet, so they are left out rather than given dead links (PS3.18 F.2.2 lets a server
omit them). Binary values up to `BULK_DATA_THRESHOLD` bytes are inlined (InlineBinary).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydicom import Dataset

from pharos.dicom.dictionary import dictionary_vr

BULK_DATA_THRESHOLD = 1024  # bytes; larger binary values are left out
# Pixel Data, Float and Double Float Pixel Data: always bulk data, never in metadata.
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})
_OMITTED = "\x00omitted"  # what the bulk data handler returns: the element is then dropped
_INT_VRS = frozenset({"IS", "SL", "SS", "UL", "US", "SV", "UV"})
_FLOAT_VRS = frozenset({"DS", "FL", "FD"})
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def dataset_to_dicom_json(
    dataset: Dataset, bulk_data_threshold: int = BULK_DATA_THRESHOLD
) -> dict[str, Any]:
    """The DICOM JSON object of a dataset (file meta excluded): attributes sorted by tag, pixel
    data and binary values larger than `bulk_data_threshold` left out, invalid values (that
    pydicom cannot convert) left out rather than failing the whole answer."""
    kept = Dataset()
    for element in dataset:
        if element.tag not in PIXEL_TAGS:
            kept.add(element)
    result = kept.to_json_dict(
        bulk_data_threshold=bulk_data_threshold,
        bulk_data_element_handler=lambda _element: _OMITTED,
        suppress_invalid_tags=True,
    )
    return _cleaned(result)


def _cleaned(node: dict[str, Any]) -> dict[str, Any]:
    """Sorted by tag, without the omitted bulk data, sequences cleaned recursively."""
    out: dict[str, Any] = {}
    for key in sorted(node):
        attribute = node[key]
        if attribute.get("BulkDataURI") == _OMITTED:
            continue
        if attribute.get("vr") == "SQ" and "Value" in attribute:
            attribute = {**attribute, "Value": [_cleaned(item) for item in attribute["Value"]]}
        out[key] = attribute
    return out


def format_tag(tag: int) -> str:
    """'GGGGEEEE', as the JSON model keys attributes."""
    return f"{tag:08X}"


def attribute(tag: int, text: str | None, vr: str | None = None) -> dict[str, Any]:
    """The JSON attribute of one tag from its text value as the index keeps it (values
    separated by backslashes, person name groups by '='); empty or invalid: no "Value"."""
    vr = vr or dictionary_vr(tag, None) or "UN"
    node: dict[str, Any] = {"vr": vr}
    if text is None or text == "":
        return node
    values = _values(vr, text)
    if values:
        node["Value"] = values
    return node


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
