"""DICOMDIR (PS3.10 7.2, PS3.3 F): the directory of a DICOM media file-set, built from the
headers of its files.

Records are added one file at a time (only the header is needed: pixel data may be left
unread) and the DICOMDIR is encoded at the end, with its patient/study/series/leaf records
linked by byte offsets. The offsets are found by encoding once, reading back where each
record starts, and encoding again with them: offsets are fixed-size (UL), so the second
encoding has the same layout as the first.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
FILE_SET_ID = "PHAROS_MEDIA"

_NEXT = "OffsetOfTheNextDirectoryRecord"
_LOWER = "OffsetOfReferencedLowerLevelDirectoryEntity"

# Keys of each level's record (PS3.3 F.5): type 1 first, then type 2; the extended DICOMDIR
# (Orthanc's "Extended") adds the others.
_PATIENT = ("PatientID", "PatientName")
_STUDY: tuple[str, ...] = ("StudyDate", "StudyTime", "StudyID", "StudyInstanceUID")
_STUDY += ("StudyDescription", "AccessionNumber")
_SERIES = ("Modality", "SeriesInstanceUID", "SeriesNumber")
_LEAF = ("InstanceNumber",)
_EXTENDED = {
    "PATIENT": ("PatientBirthDate", "PatientSex"),
    "STUDY": ("ReferringPhysicianName", "InstitutionName"),
    "SERIES": ("SeriesDescription", "SeriesDate", "SeriesTime", "BodyPartExamined"),
    "LEAF": (
        "ImageType",
        "ContentDate",
        "ContentTime",
        "AcquisitionDate",
        "AcquisitionTime",
        "NumberOfFrames",
        "Rows",
        "Columns",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "SliceLocation",
        "ImageComments",
    ),
}
# What leaf records are besides IMAGE (PS3.3 F.4), by SOP Class UID prefix.
_LEAF_TYPES = (
    ("1.2.840.10008.5.1.4.1.1.88.59", "KEY OBJECT DOC"),
    ("1.2.840.10008.5.1.4.1.1.88.", "SR DOCUMENT"),
    ("1.2.840.10008.5.1.4.1.1.9.", "WAVEFORM"),
    ("1.2.840.10008.5.1.4.1.1.11.", "PRESENTATION"),
    ("1.2.840.10008.5.1.4.1.1.481.2", "RT DOSE"),
    ("1.2.840.10008.5.1.4.1.1.481.3", "RT STRUCTURE SET"),
    ("1.2.840.10008.5.1.4.1.1.481.5", "RT PLAN"),
    ("1.2.840.10008.5.1.4.1.1.481.4", "RT TREAT RECORD"),
    ("1.2.840.10008.5.1.4.1.1.481.6", "RT TREAT RECORD"),
    ("1.2.840.10008.5.1.4.1.1.481.7", "RT TREAT RECORD"),
    ("1.2.840.10008.5.1.4.1.1.481.9", "RT TREAT RECORD"),
    ("1.2.840.10008.5.1.4.1.1.104.", "ENCAP DOC"),
    ("1.2.840.10008.5.1.4.1.1.66.1", "REGISTRATION"),
    ("1.2.840.10008.5.1.4.1.1.66.3", "REGISTRATION"),
    ("1.2.840.10008.5.1.4.1.1.66.2", "FIDUCIAL"),
    ("1.2.840.10008.5.1.4.1.1.66", "RAW DATA"),
    ("1.2.840.10008.5.1.4.1.1.67", "VALUE MAP"),
    ("1.2.840.10008.5.1.4.1.1.4.2", "SPECTROSCOPY"),
)


def leaf_record_type(sop_class_uid: str) -> str:
    for prefix, record_type in _LEAF_TYPES:
        if sop_class_uid == prefix or (prefix.endswith(".") and sop_class_uid.startswith(prefix)):
            return record_type
    return "IMAGE"


@dataclass(slots=True)
class _Record:
    dataset: Dataset
    children: dict[str, _Record] = field(default_factory=dict)


class DicomDirBuilder:
    """Collects the records of a file-set, then encodes its DICOMDIR."""

    def __init__(self, extended: bool = False, file_set_id: str = FILE_SET_ID):
        self._extended = extended
        self._file_set_id = file_set_id
        self._patients: dict[str, _Record] = {}
        self.count = 0

    def add(self, file_id: Sequence[str], header: Dataset) -> None:
        """The file at `file_id` (its path components, e.g. ("IMAGES", "IM0")), whose
        dataset (at least its header) is `header`."""
        patient = self._level(self._patients, "PATIENT", header, "PatientID", _PATIENT)
        study = self._level(patient.children, "STUDY", header, "StudyInstanceUID", _STUDY)
        series = self._level(study.children, "SERIES", header, "SeriesInstanceUID", _SERIES)
        meta = getattr(header, "file_meta", None) or FileMetaDataset()
        sop_class = str(header.get("SOPClassUID", meta.get("MediaStorageSOPClassUID", "")))
        sop_instance = header.get("SOPInstanceUID", meta.get("MediaStorageSOPInstanceUID", ""))
        leaf = self._record(leaf_record_type(sop_class), header, _LEAF, "LEAF")
        leaf.ReferencedFileID = list(file_id)
        leaf.ReferencedSOPClassUIDInFile = sop_class
        leaf.ReferencedSOPInstanceUIDInFile = str(sop_instance)
        leaf.ReferencedTransferSyntaxUIDInFile = str(
            meta.get("TransferSyntaxUID", ExplicitVRLittleEndian)
        )
        series.children[f"{len(series.children)}"] = _Record(leaf)
        self.count += 1

    def _level(
        self,
        siblings: dict[str, _Record],
        record_type: str,
        header: Dataset,
        key: str,
        keywords: tuple[str, ...],
    ) -> _Record:
        identifier = str(header.get(key, ""))
        record = siblings.get(identifier)
        if record is None:
            record = _Record(self._record(record_type, header, keywords, record_type))
            siblings[identifier] = record
        return record

    def _record(
        self, record_type: str, header: Dataset, keywords: tuple[str, ...], extended: str
    ) -> Dataset:
        record = Dataset()
        record.OffsetOfTheNextDirectoryRecord = 0
        record.RecordInUseFlag = 0xFFFF
        record.OffsetOfReferencedLowerLevelDirectoryEntity = 0
        record.DirectoryRecordType = record_type
        if "SpecificCharacterSet" in header:
            record.SpecificCharacterSet = header.SpecificCharacterSet
        wanted = keywords + (_EXTENDED[extended] if self._extended else ())
        for keyword in wanted:
            element = header.data_element(keyword) if keyword in header else None
            if element is not None:
                record.add_new(element.tag, element.VR, element.value)
            elif keyword in keywords:
                # Type 1 and 2 keys are present, empty when the file has no value (as dcmtk
                # and Orthanc write them) rather than the whole file refused.
                setattr(record, keyword, None)
        return record

    # -- encoding ---------------------------------------------------------------------------

    def encode(self) -> bytes:
        """The DICOMDIR file (Explicit VR Little Endian, with its file meta)."""
        records: list[_Record] = []
        _flatten(list(self._patients.values()), records)
        dicomdir = Dataset()
        dicomdir.file_meta = FileMetaDataset()
        dicomdir.file_meta.MediaStorageSOPClassUID = UID(MEDIA_STORAGE_DIRECTORY)
        dicomdir.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        dicomdir.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        dicomdir.FileSetID = self._file_set_id
        dicomdir.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
        dicomdir.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
        dicomdir.FileSetConsistencyFlag = 0
        dicomdir.DirectoryRecordSequence = [record.dataset for record in records]
        first = _write(dicomdir)
        # Where each record starts, as the byte offset of its item from the file's start.
        read_back = pydicom.dcmread(io.BytesIO(first), force=True)
        offsets = {
            id(record): int(item.seq_item_tell)
            for record, item in zip(records, read_back.DirectoryRecordSequence, strict=True)
        }
        self._link(list(self._patients.values()), offsets)
        roots = list(self._patients.values())
        if roots:
            dicomdir.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = offsets[id(roots[0])]
            dicomdir.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = offsets[id(roots[-1])]
        second = _write(dicomdir)
        if len(second) != len(first):  # cannot happen: every offset is a 4-byte UL
            raise RuntimeError("DICOMDIR layout changed between its two encodings")
        return second

    def _link(self, siblings: list[_Record], offsets: dict[int, int]) -> None:
        for position, record in enumerate(siblings):
            following = siblings[position + 1] if position + 1 < len(siblings) else None
            setattr(record.dataset, _NEXT, offsets[id(following)] if following else 0)
            children = list(record.children.values())
            setattr(record.dataset, _LOWER, offsets[id(children[0])] if children else 0)
            self._link(children, offsets)


def _flatten(siblings: list[_Record], into: list[_Record]) -> None:
    """Depth first: each record followed by its descendants (as dcmtk lays them out)."""
    for record in siblings:
        into.append(record)
        _flatten(list(record.children.values()), into)


def _write(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
