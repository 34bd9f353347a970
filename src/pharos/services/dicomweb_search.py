"""QIDO-RS (PS3.18 10.6): DICOMweb searches, answered from the index.

A search is turned into the body of a `/tools/find` request and matched by the find service
(same matching rules, same index queries); the answers are the standard's default attributes
of the level (PS3.18 Table 6.7.1-2, -2a, -2b) that the index holds, the matching keys,
the `includefield` ones, and the computed ones (counts, ModalitiesInStudy), in the DICOM JSON
model. Only `includefield` tags that the index does not hold read a file (one instance of
each answer), unless StorageAccessOnFind is "Never".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydicom import Dataset

from pharos.dicom import dicom_json
from pharos.dicom.computed import (
    COMPUTED_TAGS,
    INSTANCE_AVAILABILITY,
    MODALITIES_IN_STUDY,
    NUMBER_OF_SERIES_RELATED_INSTANCES,
    NUMBER_OF_STUDY_RELATED_INSTANCES,
    NUMBER_OF_STUDY_RELATED_SERIES,
)
from pharos.dicom.dictionary import dictionary_vr
from pharos.dicom.maintags import MAIN_TAGS, SOP_CLASS_UID
from pharos.index.base import Index, ResourceRef
from pharos.index.base_search import LevelTags
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.files import FileService
from pharos.services.find import FindService
from pharos.services.find_request import locate_tag, parse_find_request, parse_tag_name
from pharos.services.options import ServiceOptions

STUDY_UID = 0x0020000D
SERIES_UID = 0x0020000E
SOP_UID = 0x00080018
RETRIEVE_URL = 0x00081190

# PS3.18 Table 6.7.1-2 (study), -2a (series), -2b (instance): the default return attributes
# Pharos indexes (TimezoneOffsetFromUTC, PerformedProcedureStep*, Rows, Columns and
# BitsAllocated are not indexed, and asked for with `includefield` only).
_STUDY_DEFAULTS = (
    0x00080020,  # StudyDate
    0x00080030,  # StudyTime
    0x00080050,  # AccessionNumber
    0x00080090,  # ReferringPhysicianName
    0x00100010,  # PatientName
    0x00100020,  # PatientID
    0x00100030,  # PatientBirthDate
    0x00100040,  # PatientSex
    STUDY_UID,
    0x00200010,  # StudyID
)
_SERIES_DEFAULTS = (
    0x00080060,  # Modality
    0x0008103E,  # SeriesDescription
    SERIES_UID,
    0x00200011,  # SeriesNumber
)
_INSTANCE_DEFAULTS = (
    SOP_UID,
    0x00200013,  # InstanceNumber
    0x00280008,  # NumberOfFrames
)
DEFAULTS: dict[Level, tuple[int, ...]] = {
    Level.STUDY: _STUDY_DEFAULTS,
    Level.SERIES: _STUDY_DEFAULTS + _SERIES_DEFAULTS,
    Level.INSTANCE: _STUDY_DEFAULTS + _SERIES_DEFAULTS + _INSTANCE_DEFAULTS,
}
COMPUTED_DEFAULTS: dict[Level, tuple[int, ...]] = {
    Level.STUDY: (
        MODALITIES_IN_STUDY,
        NUMBER_OF_STUDY_RELATED_SERIES,
        NUMBER_OF_STUDY_RELATED_INSTANCES,
    ),
    Level.SERIES: (NUMBER_OF_SERIES_RELATED_INSTANCES,),
    Level.INSTANCE: (),
}
_CONTROL = ("includefield", "fuzzymatching", "limit", "offset")


@dataclass(frozen=True, slots=True)
class Search:
    """A checked QIDO-RS request."""

    level: Level
    query: dict[str, str]  # for /tools/find: "gggg,eeee" -> value
    include: tuple[int, ...]  # tags to return besides the defaults
    include_all: bool
    fuzzy: bool
    limit: int
    offset: int


class DicomWebSearch:
    def __init__(
        self,
        index: Index,
        find: FindService,
        files: FileService,
        options: ServiceOptions,
        case_sensitive: bool = True,  # DicomWeb.QidoCaseSensitive
    ):
        self._index = index
        self._find = find
        self._files = files
        self._options = options
        self._case_sensitive = case_sensitive

    def search(
        self,
        level: Level,
        parameters: Sequence[tuple[str, str]],
        scope: dict[int, str],
        base_url: str,
    ) -> list[dict[str, Any]]:
        """The answers of a search at `level` within `scope` ({StudyInstanceUID/
        SeriesInstanceUID tag: UID} of the URL), as DICOM JSON objects. `base_url` ends with
        the DICOMweb root and a slash."""
        search = parse_search(level, parameters, scope)
        options = self._options
        body: dict[str, Any] = {
            "Level": level.title,
            "Query": search.query,
            "CaseSensitive": self._case_sensitive and not search.fuzzy,
            "Since": search.offset,
            "Limit": search.limit,
        }
        request = parse_find_request(
            body,
            options.extra_main_tags,
            options.case_sensitive_pn,
            options.storage_access_on_find,
            options.user_metadata,
        )
        # The search in its own transaction (on PostgreSQL it asks for plans made for its
        # values, which would slow the answers' statements); the answers' reads in one.
        refs = self._find.matching(request)
        if not refs:
            return []
        with self._index.reading():
            return self._answers(search, refs, base_url)

    def _answers(
        self, search: Search, refs: list[ResourceRef], base_url: str
    ) -> list[dict[str, Any]]:
        level = search.level
        extra = self._options.extra_main_tags
        wanted = list(DEFAULTS[level])
        computed = set(COMPUTED_DEFAULTS[level])
        if search.include_all:
            for upper in Level:
                if Level.STUDY <= upper <= level or (
                    upper is Level.PATIENT and level >= Level.STUDY
                ):
                    wanted.extend(t.tag for t in MAIN_TAGS[upper])
                    wanted.extend(extra.by_level.get(upper, ()))
            computed.update(t for t, lv in COMPUTED_TAGS.items() if lv is level)
        from_files: list[int] = []
        queried = [parse_tag_name(key) for key in search.query]
        for tag in (*search.include, *queried):
            place = locate_tag(tag, level, extra)
            if isinstance(place, Level):
                wanted.append(tag)
            elif place == "computed":
                computed.add(tag)
            elif place == "file" and tag not in (SOP_CLASS_UID, RETRIEVE_URL):
                from_files.append(tag)
        if level is Level.INSTANCE:
            computed.add(SOP_CLASS_UID)  # a default attribute, kept in an index column
        pks = [ref.pk for ref in refs]
        # Without ExtraMainDicomTags the answers use no extra tag: one statement less.
        indexed = self._index.tag_values(level, pks, extras=bool(extra))
        counts = self._index.computed_tags(level, pks, frozenset(computed))
        files = self._file_attributes(refs, from_files)
        # Where each wanted tag is, and its JSON key and VR, worked out once per search.
        places = [
            (tag, dicom_json.format_tag(tag), dicom_json.standard_vr(tag), place)
            for tag in dict.fromkeys(wanted)
            for place in (locate_tag(tag, level, extra),)
        ]
        availability = INSTANCE_AVAILABILITY in computed or level is not Level.SERIES
        answers = []
        for ref in refs:
            tags = indexed.get(ref.pk, {})
            own = tags.get(level, {})
            answer: dict[str, Any] = {}
            values: dict[int, str | None] = {}
            for tag, key, vr, place in places:
                value = own.get(tag) if place is level else None
                if value is None:
                    value = _indexed_value(tags, tag, place)
                values[tag] = value
                answer[key] = dicom_json.attribute(tag, value, vr)
            extras: dict[int, str | None] = dict(counts.get(ref.pk, {}))
            if availability:
                extras[INSTANCE_AVAILABILITY] = "ONLINE"
            if level is Level.INSTANCE:
                extras.setdefault(SOP_CLASS_UID, None)
            answer.update(dicom_json.attributes(extras))
            answer.update(files.get(ref.pk, {}))
            answer[dicom_json.format_tag(RETRIEVE_URL)] = {
                "vr": "UR",
                "Value": [base_url + retrieve_path(level, values)],
            }
            answers.append(dict(sorted(answer.items())))
        return answers

    def _file_attributes(
        self, refs: list[ResourceRef], tags: list[int]
    ) -> dict[int, dict[str, Any]]:
        """The `tags` (not indexed) read from one instance of each answer."""
        if not tags or self._options.storage_access_on_find == "Never":
            return {}
        keys = {dicom_json.format_tag(tag) for tag in tags}
        found: dict[int, dict[str, Any]] = {}
        for pk, dataset in self._files.one_dataset_each(refs).items():
            subset = Dataset()
            for tag in tags:
                if tag in dataset:
                    subset.add(dataset[tag])
            attributes = dicom_json.dataset_to_dicom_json(subset)
            found[pk] = {key: node for key, node in attributes.items() if key in keys}
        return found


def retrieve_path(level: Level, values: dict[int, str | None]) -> str:
    """The WADO-RS path of a resource, relative to the DICOMweb root."""
    path = f"studies/{values.get(STUDY_UID) or ''}"
    if level >= Level.SERIES:
        path += f"/series/{values.get(SERIES_UID) or ''}"
    if level >= Level.INSTANCE:
        path += f"/instances/{values.get(SOP_UID) or ''}"
    return path


def _indexed_value(tags: LevelTags, tag: int, place: Level | str) -> str | None:
    if not isinstance(place, Level):
        return None
    for found_at in (place, Level.PATIENT):
        value = tags.get(found_at, {}).get(tag)
        if value is not None:
            return value
    return None


def parse_search(
    level: Level, parameters: Sequence[tuple[str, str]], scope: dict[int, str]
) -> Search:
    """The query parameters of a QIDO-RS request, checked (PS3.18 8.3.4): a bad one is a
    400 naming it."""
    query: dict[str, str] = {}
    include: list[int] = []
    include_all = False
    fuzzy = False
    limit = 0
    offset = 0
    for name, value in parameters:
        key = name.strip()
        lowered = key.lower()
        if lowered == "includefield":
            for item in value.split(","):
                item = item.strip()
                if item == "all":
                    include_all = True
                elif item:
                    include.append(_tag(item, "includefield"))
        elif lowered == "fuzzymatching":
            if value not in ("true", "false"):
                raise _bad(f'fuzzymatching must be "true" or "false", not {value!r}')
            fuzzy = value == "true"
        elif lowered in ("limit", "offset"):
            if not value.isascii() or not value.isdigit():
                raise _bad(f"{lowered} must be a non-negative integer, not {value!r}")
            if lowered == "limit":
                limit = int(value)
            else:
                offset = int(value)
        else:
            tag = _tag(key, "query key")
            if tag == RETRIEVE_URL:
                raise _bad(f"Cannot search on {key}")
            vr = dictionary_vr(tag, None)
            if vr in ("SQ", "OB", "OW", "OF", "OD", "OL", "OV", "UN"):
                raise _bad(f"Cannot search on {key}: its VR is {vr}")
            if vr == "UI":
                value = value.replace(",", "\\")  # UID list matching (PS3.18 8.3.4.1)
            query[f"{tag >> 16:04x},{tag & 0xFFFF:04x}"] = value
    for tag, uid in scope.items():
        key = f"{tag >> 16:04x},{tag & 0xFFFF:04x}"
        if key in query and query[key] != uid:
            query[key] = "\x00"  # a contradiction: nothing matches (see parse_find_request)
        else:
            query[key] = uid
    return Search(level, query, tuple(include), include_all, fuzzy, limit, offset)


def _tag(name: str, what: str) -> int:
    try:
        return parse_tag_name(name)
    except PharosError:
        raise _bad(f"Unknown {what}: {name!r} is neither a DICOM keyword nor a tag") from None


def _bad(details: str) -> PharosError:
    return PharosError(ErrorCode.BAD_REQUEST, details, http_status=400)
