"""C-FIND identifiers sent to remote modalities, built as Orthanc 1.10 builds them.

- A query is a map of tags (names or "gggg,eeee") to string values; `Normalize` (the default)
  drops the tags that do not belong to the level or those above it (DicomTag's modules, plus
  the level's "Number of ... related" counts and Specific Character Set).
- The manufacturer of the modality may turn universal wildcards into empty values
  (`GenericNoWildcardInDates`: for dates, `GenericNoUniversalWildcard`: for every tag).
- The unique keys of the level and the levels above are added empty ("*" for `GE`) when
  missing, and the Query/Retrieve Level is set (PATIENT, STUDY, SERIES, IMAGE).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydicom.dataset import Dataset

from pharos.dicom.dictionary import dictionary_vr, format_tag, parse_tag
from pharos.dicom.maintags import MAIN_TAGS
from pharos.dicom.modules import module_tags
from pharos.dicom.query import QUERY_RETRIEVE_LEVEL, answer_element, set_answer_charset
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level

PATIENT_ID = 0x00100020
ACCESSION_NUMBER = 0x00080050
STUDY_INSTANCE_UID = 0x0020000D
SERIES_INSTANCE_UID = 0x0020000E
SOP_INSTANCE_UID = 0x00080018
MODALITIES_IN_STUDY = 0x00080061
SPECIFIC_CHARACTER_SET = 0x00080005

DICOM_LEVELS = {
    Level.PATIENT: "PATIENT",
    Level.STUDY: "STUDY",
    Level.SERIES: "SERIES",
    Level.INSTANCE: "IMAGE",
}
# The keys of each level that a C-MOVE (or a child query) of an answer copies from it
# (DicomControlUserConnection::Move).
MOVE_KEYS = {
    Level.PATIENT: (PATIENT_ID,),
    Level.STUDY: (STUDY_INSTANCE_UID,),
    Level.SERIES: (STUDY_INSTANCE_UID, SERIES_INSTANCE_UID),
    Level.INSTANCE: (STUDY_INSTANCE_UID, SERIES_INSTANCE_UID, SOP_INSTANCE_UID),
}
# The unique keys always present in an identifier, added empty when missing.
_UNIQUE_KEYS = {
    Level.PATIENT: (PATIENT_ID,),
    Level.STUDY: (PATIENT_ID, ACCESSION_NUMBER, STUDY_INSTANCE_UID),
    Level.SERIES: (PATIENT_ID, ACCESSION_NUMBER, STUDY_INSTANCE_UID, SERIES_INSTANCE_UID),
    Level.INSTANCE: (
        PATIENT_ID,
        ACCESSION_NUMBER,
        STUDY_INSTANCE_UID,
        SERIES_INSTANCE_UID,
        SOP_INSTANCE_UID,
    ),
}
_COUNTS = {
    Level.PATIENT: (0x00201200, 0x00201202, 0x00201204),
    Level.STUDY: (0x00080061, 0x00201206, 0x00201208, 0x00080062),
    Level.SERIES: (0x00201209,),
    Level.INSTANCE: (),
}


def parse_level(value: Any) -> Level:
    if not isinstance(value, str):
        raise PharosError(ErrorCode.BAD_FILE_FORMAT, 'The field "Level" must be a string')
    try:
        return Level.parse(value)
    except ValueError:
        raise PharosError(
            ErrorCode.PARAMETER_OUT_OF_RANGE,
            f'Unknown level "{value}" (Patient, Study, Series or Instance)',
        ) from None


def parse_query(value: Any, field: str = "Query") -> dict[int, str]:
    """A JSON object of tags and string values (Orthanc's ReadMapOfTags)."""
    if not isinstance(value, Mapping):
        raise PharosError(ErrorCode.BAD_FILE_FORMAT, f'The field "{field}" must be a JSON object')
    query: dict[int, str] = {}
    for key, text in value.items():
        tag = parse_tag(str(key))
        if not isinstance(text, str):
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT,
                f'The value of "{key}" in "{field}" must be a string, not {text!r}',
            )
        if dictionary_vr(tag, None) == "SQ":
            raise PharosError(
                ErrorCode.BAD_REQUEST, f'Sequences cannot be queried: "{key}" is a sequence'
            )
        query[tag] = text
    return query


def allowed_tags(level: Level) -> frozenset[int]:
    """The tags a normalized query at `level` keeps (NormalizeFindQuery)."""
    tags: set[int] = {SPECIFIC_CHARACTER_SET, *_COUNTS[level]}
    for each in Level:
        if each <= level:
            tags.update(module_tags(each))
    return frozenset(tags)


def normalize(level: Level, query: Mapping[int, str]) -> dict[int, str]:
    allowed = allowed_tags(level)
    return {tag: value for tag, value in query.items() if tag in allowed}


def fix_wildcards(query: Mapping[int, str], manufacturer: str) -> dict[int, str]:
    """Universal wildcards some manufacturers do not understand become empty values."""
    fixed = dict(query)
    for tag, value in query.items():
        if value != "*":
            continue
        if manufacturer == "GenericNoUniversalWildcard" or (
            manufacturer == "GenericNoWildcardInDates" and dictionary_vr(tag, None) == "DA"
        ):
            fixed[tag] = ""
    return fixed


def build_identifier(
    level: Level,
    query: Mapping[int, str],
    *,
    normalized: bool,
    manufacturer: str,
    default_encoding: str,
) -> Dataset:
    """The C-FIND identifier of a query, as Orthanc sends it."""
    keys = normalize(level, query) if normalized else dict(query)
    if normalized:
        keys = fix_wildcards(keys, manufacturer)
    universal = "*" if manufacturer == "GE" else ""  # GE wants "*" for "any"
    for tag in _UNIQUE_KEYS[level]:
        keys.setdefault(tag, universal)
    keys.pop(SPECIFIC_CHARACTER_SET, None)  # set below from the values
    dataset = dataset_of(keys)
    set_answer_charset(dataset, default_encoding)
    dataset.QueryRetrieveLevel = DICOM_LEVELS[level]
    return dataset


def dataset_of(values: Mapping[int, str]) -> Dataset:
    dataset = Dataset()
    for tag, text in values.items():
        if tag == QUERY_RETRIEVE_LEVEL:
            continue
        dataset.add(answer_element(tag, dictionary_vr(tag, None), text))
    return dataset


def answer_value(answer: Dataset, tag: int) -> str | None:
    """The text of a top-level string element of an answer, or None when absent."""
    element = answer.get(tag)
    if element is None:
        return None
    value = element.value
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1").rstrip("\x00 ")
    if isinstance(value, Iterable) and not isinstance(value, str):
        return "\\".join(str(item) for item in value)
    return str(value)


def move_keys(level: Level, answer: Dataset) -> dict[int, str]:
    """The identifier of a C-MOVE retrieving an answer (400 if a key is missing)."""
    keys: dict[int, str] = {}
    for tag in MOVE_KEYS[level]:
        value = answer_value(answer, tag)
        if not value:
            raise PharosError(
                ErrorCode.BAD_REQUEST,
                f"The answer has no {format_tag(tag)} to retrieve it at the "
                f"{level.title.lower()} level",
            )
        keys[tag] = value
    return keys


def move_identifier(level: Level, keys: Mapping[int, str]) -> Dataset:
    dataset = dataset_of(keys)
    dataset.QueryRetrieveLevel = DICOM_LEVELS[level]
    return dataset


# -- the deprecated /find-* routes ------------------------------------------------------------

_LEGACY_EXTRA = {
    Level.PATIENT: (),
    Level.STUDY: (PATIENT_ID, ACCESSION_NUMBER, MODALITIES_IN_STUDY),
    Level.SERIES: (PATIENT_ID, ACCESSION_NUMBER, STUDY_INSTANCE_UID),
    Level.INSTANCE: (PATIENT_ID, ACCESSION_NUMBER, STUDY_INSTANCE_UID, SERIES_INSTANCE_UID),
}


def legacy_query(level: Level, fields: Mapping[int, str]) -> dict[int, str]:
    """/find-patient, -study, -series, -instance: the level's main tags (empty, or as given)
    and the identifiers of the levels above (DicomMap::SetupFind*Template, Extract*)."""
    query = {tag.tag: fields.get(tag.tag, "") for tag in MAIN_TAGS[level]}
    for tag in _LEGACY_EXTRA[level]:
        if tag in fields or tag != MODALITIES_IN_STUDY:
            query[tag] = fields.get(tag, "")
    return query


def legacy_query_is_too_wide(level: Level, fields: Mapping[int, str]) -> bool:
    """Orthanc answers nothing (without asking) when a study, series or instance search is
    not narrowed by a PatientID or AccessionNumber (and the parent UIDs) of 3+ characters."""

    def short(tag: int) -> bool:
        return len(fields.get(tag, "")) <= 2

    if level is Level.PATIENT:
        return False
    if short(ACCESSION_NUMBER) and short(PATIENT_ID):
        return True
    if level >= Level.SERIES and short(STUDY_INSTANCE_UID):
        return True
    return level is Level.INSTANCE and short(SERIES_INSTANCE_UID)
