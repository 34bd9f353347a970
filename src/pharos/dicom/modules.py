"""Tags of DICOM modules and tags shared by instances, for `/module`, `/module-patient` and
`/shared-tags` (Orthanc 1.10: DicomTag::AddTagsForModule, ExtractSharedTags)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pharos.dicom.dictionary import format_tag
from pharos.model.levels import Level

_STRING = "String"


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
