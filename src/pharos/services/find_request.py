"""The body of `POST /tools/find`, checked field by field as Orthanc checks it, and turned into
what the index runs (`FindQuery`) and what only files or counts can decide (`PostFilter`).

Where a constraint goes (Orthanc's `DatabaseLookup` / `ResourceFinder` rules):
- a main tag, or an extra main tag, of the query level or of a level above: the index;
- ModalitiesInStudy at the study level: the index (a series of the study must match);
- a computed tag of the query level (counts, SOPClassesInStudy, InstanceAvailability):
  decided on the computed value;
- a main tag of a level below the query level: nothing matches (Orthanc warns "this will
  return no result");
- any other tag: read from the files when `StorageAccessOnFind` is "Always", otherwise
  nothing matches ("Answers" reads files for answers only, "Never" not at all).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from pharos.dicom.computed import COMPUTED_TAGS, MODALITIES_IN_STUDY
from pharos.dicom.dictionary import dictionary_vr, parse_tag
from pharos.dicom.extra_tags import ExtraMainTags
from pharos.dicom.maintags import MAIN_TAGS
from pharos.dicom.matching import Constraint, parse_constraints
from pharos.dicom.orthanc_json import TagFormat
from pharos.index.base_search import FindQuery, LabelsMode, SortKey, SortSource, TagFilter
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level

LABEL = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Orthanc's MetadataType numbers, and where Pharos keeps the built-in ones it has columns for.
BUILTIN_METADATA = {
    "IndexInSeries": 1,
    "ReceptionDate": 2,
    "RemoteAET": 3,
    "ExpectedNumberOfInstances": 4,
    "ModifiedFrom": 5,
    "AnonymizedFrom": 6,
    "LastUpdate": 7,
    "Origin": 8,
    "TransferSyntax": 9,
    "SopClassUid": 10,
    "RemoteIP": 11,
    "CalledAET": 12,
    "HttpUsername": 13,
    "PixelDataOffset": 14,
}
_METADATA_COLUMNS: dict[Level, dict[str, str]] = {
    Level.SERIES: {"RemoteAET": "remote_aet", "ExpectedNumberOfInstances": "expected_instances"},
    Level.INSTANCE: {
        "IndexInSeries": "index_in_series",
        "ReceptionDate": "reception_date",
        "RemoteAET": "remote_aet",
        "Origin": "origin",
        "TransferSyntax": "transfer_syntax",
        "SopClassUid": "sop_class_uid",
        "RemoteIP": "remote_ip",
        "CalledAET": "called_aet",
        "HttpUsername": "http_username",
        "PixelDataOffset": "pixel_data_offset",
    },
}


_MAX_METADATA = 65535  # Orthanc's metadata types (user metadata: 1024 to 65535)


class Source(Enum):
    COMPUTED = "computed"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class PostFilter:
    """A constraint decided outside the index, on a computed value or on the stored file."""

    constraint: Constraint
    source: Source


@dataclass(frozen=True)
class FindRequest:
    query: FindQuery
    post_filters: tuple[PostFilter, ...] = ()
    never: bool = False  # a constraint no resource can meet
    expand: bool = False
    since: int = 0
    limit: int | None = None
    fmt: TagFormat = TagFormat.SIMPLIFY
    requested: tuple[int, ...] = field(default_factory=tuple)

    @property
    def level(self) -> Level:
        return self.query.level


def bad_request(details: str) -> PharosError:
    return PharosError(ErrorCode.BAD_REQUEST, details)


def parse_tag_name(name: str) -> int:
    """A tag named in a request body: an unknown one is a bad request (400)."""
    try:
        return parse_tag(name)
    except PharosError as exc:
        raise PharosError(exc.code, exc.details, http_status=400) from None


def parse_format(body: Mapping[str, Any], default: TagFormat = TagFormat.SIMPLIFY) -> TagFormat:
    """Orthanc's GetDicomFormat(body): "Simplify", then "Short", then "Full" (Booleans)."""
    for key, fmt in (("Simplify", TagFormat.SIMPLIFY), ("Short", TagFormat.SHORT)):
        if _boolean(body, key, False):
            return fmt
    if _boolean(body, "Full", False):
        return TagFormat.FULL
    return default


def parse_find_request(
    body: Any,
    extra: ExtraMainTags,
    case_sensitive_default: bool,
    storage_access: str,
    user_metadata: Mapping[str, Any],
) -> FindRequest:
    if not isinstance(body, dict):
        raise bad_request("The body must contain a JSON object")
    level_name = body.get("Level")
    if not isinstance(level_name, str):
        raise bad_request('Field "Level" is missing, or should be a string')
    try:
        level = Level.parse(level_name)
    except ValueError:
        raise PharosError(
            ErrorCode.PARAMETER_OUT_OF_RANGE, f"Unknown resource level: {level_name!r}"
        ) from None
    if "Query" not in body:  # as Orthanc; an explicit null is an empty query there too
        raise bad_request('Field "Query" is missing, or should be a JSON object')
    query = body["Query"]
    if query is None:
        query = {}
    if not isinstance(query, dict):
        raise bad_request('Field "Query" is missing, or should be a JSON object')
    case_sensitive = _boolean(body, "CaseSensitive", case_sensitive_default)
    expand = _expand(body)
    since = _count(body, "Since")
    limit = _count(body, "Limit") or None  # 0 is no limit, as Orthanc 1.12.4
    requested = parse_requested_tags(body.get("RequestedTags", []))
    labels, labels_mode = _labels(body)

    filters: list[TagFilter] = []
    modalities: list[Constraint] = []
    post: list[PostFilter] = []
    never = False
    for name, value in query.items():
        if not isinstance(value, str):
            raise bad_request(f'Tag "{name}" must be associated with a string')
        tag = parse_tag_name(name)
        constraints = parse_constraints(tag, dictionary_vr(tag, None), value, case_sensitive)
        if not constraints:
            continue
        if "\x00" in value:
            # No stored value holds a NUL (PostgreSQL text cannot): nothing can match.
            never = True
            continue
        if tag == MODALITIES_IN_STUDY and level is Level.STUDY:
            modalities.extend(constraints)
            continue
        place = locate_tag(tag, level, extra)
        if isinstance(place, Level):
            column = main_column(tag, place)
            filters.extend(TagFilter(place, c, column) for c in constraints)
        elif place == "computed":
            post.extend(PostFilter(c, Source.COMPUTED) for c in constraints)
        elif place == "file" and storage_access == "Always":
            post.extend(PostFilter(c, Source.FILE) for c in constraints)
        else:
            never = True

    order = _order(body.get("OrderBy", []), level, extra, user_metadata)
    return FindRequest(
        query=FindQuery(level, tuple(filters), tuple(modalities), labels, labels_mode, order),
        post_filters=tuple(post),
        never=never,
        expand=expand,
        since=since,
        limit=limit,
        fmt=parse_format(body),
        requested=requested,
    )


def locate_tag(tag: int, level: Level, extra: ExtraMainTags) -> Level | str:
    """Where the value of `tag` is for resources of `level`: the level (at or above) whose
    indexed tags hold it, "computed", "below" (a main tag of a lower level) or "file".

    A main tag is found at its own level before any extra copy of it at a lower level
    (Orthanc: an extra StudyDescription of the series still searches the study's)."""
    uppers = sorted((lv for lv in Level if lv <= level), reverse=True)
    for upper in uppers:
        if main_column(tag, upper) is not None:
            return upper
    for upper in uppers:
        if tag in extra.by_level.get(upper, ()):
            return upper
    if tag in COMPUTED_TAGS:
        return "computed" if COMPUTED_TAGS[tag] is level else "below"
    for lower in Level:
        if lower > level and (
            main_column(tag, lower) is not None or tag in extra.by_level.get(lower, ())
        ):
            return "below"
    return "file"


def main_column(tag: int, level: Level) -> str | None:
    return _COLUMNS[level].get(tag)


_COLUMNS = {level: {t.tag: t.column for t in tags} for level, tags in MAIN_TAGS.items()}


def parse_requested_tags(value: Any) -> tuple[int, ...]:
    if not isinstance(value, list):
        raise bad_request('Field "RequestedTags" must be an array')
    tags: list[int] = []
    for name in value:
        if not isinstance(name, str):
            raise bad_request('Field "RequestedTags" must contain strings')
        tag = parse_tag_name(name)
        if tag not in tags:
            tags.append(tag)
    return tuple(tags)


def parse_requested_tags_argument(argument: str | None) -> tuple[int, ...]:
    """The `requestedTags` GET argument: tags separated by semicolons (Orthanc 1.11)."""
    if not argument:
        return ()
    return parse_requested_tags([part.strip() for part in argument.split(";") if part.strip()])


# -- fields ------------------------------------------------------------------------------------


def _boolean(body: Mapping[str, Any], key: str, default: bool) -> bool:
    if key not in body:
        return default
    value = body[key]
    if not isinstance(value, bool):
        raise bad_request(f'Field "{key}" must be a Boolean')
    return value


def _expand(body: Mapping[str, Any]) -> bool:
    value = body.get("Expand", False)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):  # JsonCpp's asBool() takes numbers too
        return value != 0
    raise bad_request('Field "Expand" must be a Boolean')


def _count(body: Mapping[str, Any], key: str) -> int:
    value = body.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad_request(f'Field "{key}" must be an integer')
    if value < 0:
        raise PharosError(
            ErrorCode.PARAMETER_OUT_OF_RANGE, f'Field "{key}" must be a positive integer'
        )
    return value


def _labels(body: Mapping[str, Any]) -> tuple[tuple[str, ...], LabelsMode]:
    labels = body.get("Labels", [])
    if not isinstance(labels, list):
        raise bad_request('Field "Labels" must be an array of strings')
    for label in labels:
        if not isinstance(label, str):
            raise bad_request('Field "Labels" must contain strings')
        if LABEL.fullmatch(label) is None:
            raise PharosError(
                ErrorCode.PARAMETER_OUT_OF_RANGE,
                f"Invalid label {label!r}: 1 to 64 letters, digits, '-' or '_'",
            )
    mode = body.get("LabelsConstraint", "All")
    if not isinstance(mode, str):
        raise bad_request('Field "LabelsConstraint" must be a string')
    try:
        labels_mode = LabelsMode(mode)
    except ValueError:
        raise bad_request('Field "LabelsConstraint" must be "All", "Any", or "None"') from None
    return tuple(labels), labels_mode


def _order(
    value: Any, level: Level, extra: ExtraMainTags, user_metadata: Mapping[str, Any]
) -> tuple[SortKey, ...]:
    """Orthanc 1.12.5's "OrderBy": [{"Type": "DicomTag"|"Metadata", "Key", "Direction"}]."""
    if not isinstance(value, list):
        raise bad_request('Field "OrderBy" must be an array')
    keys: list[SortKey] = []
    for item in value:
        if not isinstance(item, dict):
            raise bad_request('Field "OrderBy" must contain objects')
        kind, key, direction = item.get("Type"), item.get("Key"), item.get("Direction", "ASC")
        if not isinstance(key, str):
            raise bad_request('Field "Key" of "OrderBy" must be a string')
        if direction not in ("ASC", "DESC"):
            raise bad_request('Field "Direction" of "OrderBy" must be "ASC" or "DESC"')
        descending = direction == "DESC"
        if kind == "DicomTag":
            keys.append(_tag_order(parse_tag_name(key), level, extra, descending))
        elif kind == "Metadata":
            keys.append(_metadata_order(key, level, user_metadata, descending))
        else:
            raise bad_request('Field "Type" of "OrderBy" must be "DicomTag" or "Metadata"')
    return tuple(keys)


def _tag_order(tag: int, level: Level, extra: ExtraMainTags, descending: bool) -> SortKey:
    place = locate_tag(tag, level, extra)
    if not isinstance(place, Level):
        raise bad_request(
            f"Cannot order {level.title.lower()} results by tag {tag >> 16:04x},{tag & 0xFFFF:04x}"
            f": only by main DICOM tags of the {level.title.lower()} level or the levels above"
        )
    column = main_column(tag, place)
    if column is None:
        return SortKey(SortSource.EXTRA_TAG, place, tag, descending)
    return SortKey(SortSource.COLUMN, place, column, descending)


def _metadata_order(
    name: str, level: Level, user_metadata: Mapping[str, Any], descending: bool
) -> SortKey:
    if name == "LastUpdate":
        return SortKey(SortSource.LAST_UPDATE, level, name, descending)
    column = _METADATA_COLUMNS.get(level, {}).get(name)
    if column is not None:
        return SortKey(SortSource.COLUMN, level, column, descending)
    number = BUILTIN_METADATA.get(name)
    if number is None and isinstance(user_metadata.get(name), int):
        number = int(user_metadata[name])
    if number is None and name.isascii() and name.isdigit() and 0 < int(name) <= _MAX_METADATA:
        number = int(name)
    if number is None:
        raise bad_request(f'Unknown metadata in "OrderBy": {name!r}')
    return SortKey(SortSource.METADATA, level, number, descending)
