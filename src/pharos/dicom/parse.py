"""Parse a received DICOM file once: check it, read its header, extract what the index needs."""

from __future__ import annotations

from dataclasses import dataclass

from pharos.dicom.charset import TextDecoder
from pharos.dicom.extra_tags import NO_EXTRA_TAGS, ExtraMainTags, tag_key
from pharos.dicom.maintags import ALL_STORED_TAGS, MAIN_TAGS, SOP_CLASS_UID, SPECIFIC_CHARACTER_SET
from pharos.dicom.structure import Structure, check_structure
from pharos.dicom.values import main_tag_value
from pharos.model.errors import bad_file
from pharos.model.ids import ResourceIds
from pharos.model.levels import Level

MAX_SEQUENCE_DEPTH = 64


@dataclass(frozen=True, slots=True)
class ParsedInstance:
    """A received file, checked and summarised; the bytes themselves are stored unchanged."""

    structure: Structure
    ids: ResourceIds
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str | None
    transfer_syntax_uid: str
    # Main DICOM tags present in the file, by keyword, and the configured extra main tags
    # (`ExtraMainDicomTags`, keyed by keyword or 'gggg,eeee').
    tags: dict[Level, dict[str, str]]

    @property
    def expected_instances(self) -> int | None:
        return expected_number_of_instances(self.tags[Level.SERIES])

    @property
    def index_in_series(self) -> int | None:
        """Orthanc's IndexInSeries: InstanceNumber, else ImageIndex."""
        tags = self.tags[Level.INSTANCE]
        for keyword in ("InstanceNumber", "ImageIndex"):
            if keyword in tags:
                return _int_or_none(tags[keyword])
        return None


def parse_instance(
    data: bytes, default_encoding: str = "Latin1", extra: ExtraMainTags = NO_EXTRA_TAGS
) -> ParsedInstance:
    """Check and summarise a DICOM file; `PharosError(BAD_FILE_FORMAT)` says why it is refused."""
    if not data:
        raise bad_file("Received an empty DICOM file")
    wanted = extra.wanted if extra else ALL_STORED_TAGS
    structure = check_structure(data, MAX_SEQUENCE_DEPTH, wanted)
    return summarise(structure, default_encoding, extra)


def summarise(
    structure: Structure, default_encoding: str, extra: ExtraMainTags = NO_EXTRA_TAGS
) -> ParsedInstance:
    """The identifiers and main tags, from the raw values the structure check collected."""
    values = structure.values
    little = structure.little_endian

    def value(tag: int, decoder: TextDecoder) -> str | None:
        found = values.get(tag)
        if found is None:
            return None
        return main_tag_value(tag, found[0], found[1], little, decoder)

    # The decoder the tag renderings use too: a value is indexed exactly as it is shown.
    charset = value(SPECIFIC_CHARACTER_SET, TextDecoder(None, False))
    decoder = TextDecoder.for_terms(charset.split("\\") if charset else None, default_encoding)
    tags: dict[Level, dict[str, str]] = {}
    for level, main_tags in MAIN_TAGS.items():
        level_values: dict[str, str] = {}
        for main_tag in main_tags:
            text = value(main_tag.tag, decoder)
            if text is not None:
                level_values[main_tag.keyword] = text
        tags[level] = level_values
    for level, extra_tags in extra.by_level.items():
        for tag in extra_tags:
            text = value(tag, decoder)
            if text is not None:
                tags[level][tag_key(tag)] = text

    # Hashed exactly as indexed (and as Orthanc hashes them): padding is already removed.
    patient_id = tags[Level.PATIENT].get("PatientID", "")
    study_uid = tags[Level.STUDY].get("StudyInstanceUID", "")
    series_uid = tags[Level.SERIES].get("SeriesInstanceUID", "")
    sop_uid = tags[Level.INSTANCE].get("SOPInstanceUID", "")
    missing = [
        name
        for name, value in (
            ("StudyInstanceUID", study_uid),
            ("SeriesInstanceUID", series_uid),
            ("SOPInstanceUID", sop_uid),
        )
        if not value
    ]
    if missing:
        raise bad_file("Missing or empty " + ", ".join(missing))

    sop_class = value(SOP_CLASS_UID, decoder)
    return ParsedInstance(
        structure=structure,
        ids=ResourceIds.compute(patient_id, study_uid, series_uid, sop_uid),
        patient_id=patient_id,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        sop_class_uid=sop_class.strip() if sop_class else None,
        transfer_syntax_uid=structure.transfer_syntax_uid,
        tags=tags,
    )


def expected_number_of_instances(series_tags: dict[str, str]) -> int | None:
    """Orthanc's rule for the size of a complete series, from the tags of one instance."""
    pairs = (
        ("ImagesInAcquisition", "NumberOfTemporalPositions"),
        ("NumberOfSlices", "NumberOfTimeSlices"),
    )
    for first, second in pairs:
        if first in series_tags and second in series_tags:
            a, b = _int_or_none(series_tags[first]), _int_or_none(series_tags[second])
            if a is None or b is None:
                return None
            return a * b if a * b > 0 else None
    if "CardiacNumberOfImages" in series_tags:
        count = _int_or_none(series_tags["CardiacNumberOfImages"])
        return count if count is not None and count > 0 else None
    return None


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None
