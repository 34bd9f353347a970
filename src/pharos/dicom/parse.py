"""Parse a received DICOM file once: check it, read its header, extract what the index needs."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset

from pharos.dicom.charset import python_codecs
from pharos.dicom.maintags import MAIN_TAGS, SOP_CLASS_UID, SPECIFIC_CHARACTER_SET
from pharos.dicom.structure import Structure, check_structure
from pharos.dicom.values import element_text
from pharos.model.errors import bad_file
from pharos.model.ids import ResourceIds
from pharos.model.levels import Level

MAX_SEQUENCE_DEPTH = 64


@dataclass(frozen=True, slots=True)
class ParsedInstance:
    """A received file, checked and summarised; the bytes themselves are stored unchanged."""

    dataset: Dataset  # the header, without pixel data
    structure: Structure
    ids: ResourceIds
    patient_id: str
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str | None
    transfer_syntax_uid: str
    tags: dict[Level, dict[str, str]]  # main DICOM tags present in the file, by keyword

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


def parse_instance(data: bytes, default_encoding: str = "Latin1") -> ParsedInstance:
    """Check and summarise a DICOM file; `PharosError(BAD_FILE_FORMAT)` says why it is refused."""
    if not data:
        raise bad_file("Received an empty DICOM file")
    structure = check_structure(data, MAX_SEQUENCE_DEPTH)
    dataset = read_header(data, structure)
    return summarise(dataset, structure, default_encoding)


def read_header(data: bytes, structure: Structure) -> Dataset:
    """The dataset up to the pixel data; the structure check has already vouched for the bytes."""
    try:
        return pydicom.dcmread(
            io.BytesIO(data), stop_before_pixels=True, force=not structure.has_preamble
        )
    except RecursionError:
        raise bad_file("DICOM sequences are nested too deeply to be read") from None
    except Exception as exc:  # pydicom raises many types on malformed content
        raise bad_file(f"Cannot parse the DICOM file: {exc}") from None


def summarise(dataset: Dataset, structure: Structure, default_encoding: str) -> ParsedInstance:
    charset_elem = dataset.get_item(SPECIFIC_CHARACTER_SET)
    charset = element_text(charset_elem, ["iso8859"]) if charset_elem is not None else None
    codecs = python_codecs(charset.split("\\") if charset else None, default_encoding)

    tags: dict[Level, dict[str, str]] = {}
    for level, main_tags in MAIN_TAGS.items():
        values: dict[str, str] = {}
        for main_tag in main_tags:
            elem = dataset.get_item(main_tag.tag)
            if elem is None:
                continue
            try:
                text = element_text(elem, codecs)
            except Exception:  # undecodable bytes: index what we can, as Orthanc does
                text = None
            if text is not None:
                values[main_tag.keyword] = text
        tags[level] = values

    patient_id = tags[Level.PATIENT].get("PatientID", "").strip()
    study_uid = tags[Level.STUDY].get("StudyInstanceUID", "").strip()
    series_uid = tags[Level.SERIES].get("SeriesInstanceUID", "").strip()
    sop_uid = tags[Level.INSTANCE].get("SOPInstanceUID", "").strip()
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

    sop_class_elem = dataset.get_item(SOP_CLASS_UID)
    sop_class = element_text(sop_class_elem, codecs) if sop_class_elem is not None else None
    return ParsedInstance(
        dataset=dataset,
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
