"""DICOMDIR building: the records and their links, read back by pydicom's `FileSet` and by
dcmtk's `dcmdump` (skipped without dcmtk)."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest
from pydicom.fileset import FileSet
from pydicom.uid import BasicTextSRStorage, EncapsulatedPDFStorage

from pharos.dicom.dicomdir import DicomDirBuilder, leaf_record_type
from tests.dicomgen import make_dataset, to_bytes


def header_of(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)


def write_file_set(root: Path, files: list[bytes], extended: bool = False) -> Path:
    builder = DicomDirBuilder(extended=extended)
    (root / "IMAGES").mkdir(parents=True)
    for number, data in enumerate(files):
        (root / "IMAGES" / f"IM{number}").write_bytes(data)
        builder.add(("IMAGES", f"IM{number}"), header_of(data))
    path = root / "DICOMDIR"
    path.write_bytes(builder.encode())
    return path


def sample_files() -> list[bytes]:
    study = "1.2.826.0.1.3680043.8.498.1"
    return [
        to_bytes(make_dataset(patient_id="A", study_uid=study, series_uid=f"{study}.1", seed=1)),
        to_bytes(make_dataset(patient_id="A", study_uid=study, series_uid=f"{study}.1", seed=2)),
        to_bytes(make_dataset(patient_id="A", study_uid=study, series_uid=f"{study}.2", seed=3)),
        to_bytes(make_dataset(patient_id="B", StudyID=None, AccessionNumber=None)),
    ]


def test_pydicom_file_set_finds_every_file_under_its_patient_study_series(
    tmp_path: Path,
) -> None:
    files = sample_files()
    path = write_file_set(tmp_path, files)
    file_set = FileSet(path)
    assert file_set.ID == "PHAROS_MEDIA"
    instances = list(file_set)
    assert len(instances) == 4
    found = {Path(i.path).name: i.load() for i in instances}
    for number, data in enumerate(files):
        assert found[f"IM{number}"].SOPInstanceUID == header_of(data).SOPInstanceUID
    assert sorted(file_set.find_values("PatientID")) == ["A", "B"]
    assert len(file_set.find(PatientID="A")) == 3
    assert len(file_set.find_values("SeriesInstanceUID", file_set.find(PatientID="A"))) == 2


def test_records_are_linked_by_offsets(tmp_path: Path) -> None:
    dicomdir = pydicom.dcmread(write_file_set(tmp_path, sample_files()))
    records = {int(r.seq_item_tell): r for r in dicomdir.DirectoryRecordSequence}
    first = dicomdir.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity
    patient = records[first]
    assert patient.DirectoryRecordType == "PATIENT" and patient.PatientID in ("A", "B")
    second = records[patient.OffsetOfTheNextDirectoryRecord]
    assert second.OffsetOfTheNextDirectoryRecord == 0
    assert dicomdir.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity == int(
        second.seq_item_tell
    )
    study = records[patient.OffsetOfReferencedLowerLevelDirectoryEntity]
    assert study.DirectoryRecordType == "STUDY"
    series = records[study.OffsetOfReferencedLowerLevelDirectoryEntity]
    assert series.DirectoryRecordType == "SERIES"
    image = records[series.OffsetOfReferencedLowerLevelDirectoryEntity]
    assert image.DirectoryRecordType == "IMAGE" and image.ReferencedFileID[0] == "IMAGES"
    assert image.OffsetOfReferencedLowerLevelDirectoryEntity == 0


def test_missing_keys_are_written_empty_and_extended_adds_more(tmp_path: Path) -> None:
    files = [to_bytes(make_dataset(StudyID=None, SeriesDescription="Sag"))]
    plain = pydicom.dcmread(write_file_set(tmp_path / "plain", files))
    study = next(r for r in plain.DirectoryRecordSequence if r.DirectoryRecordType == "STUDY")
    assert "StudyID" in study and not study.StudyID
    series = next(r for r in plain.DirectoryRecordSequence if r.DirectoryRecordType == "SERIES")
    assert "SeriesDescription" not in series
    extended = pydicom.dcmread(write_file_set(tmp_path / "extended", files, extended=True))
    series = next(r for r in extended.DirectoryRecordSequence if r.DirectoryRecordType == "SERIES")
    assert series.SeriesDescription == "Sag"


def test_character_sets_are_kept_in_each_record(tmp_path: Path) -> None:
    data = to_bytes(make_dataset(SpecificCharacterSet="ISO_IR 192", patient_name="Müller^Jürgen"))
    dicomdir = pydicom.dcmread(write_file_set(tmp_path, [data]))
    patient = dicomdir.DirectoryRecordSequence[0]
    assert patient.SpecificCharacterSet == "ISO_IR 192"
    assert str(patient.PatientName) == "Müller^Jürgen"


def test_leaf_record_types_follow_the_sop_class() -> None:
    assert leaf_record_type("1.2.840.10008.5.1.4.1.1.2") == "IMAGE"
    assert leaf_record_type(BasicTextSRStorage) == "SR DOCUMENT"
    assert leaf_record_type("1.2.840.10008.5.1.4.1.1.88.59") == "KEY OBJECT DOC"
    assert leaf_record_type(EncapsulatedPDFStorage) == "ENCAP DOC"
    assert leaf_record_type("1.2.840.10008.5.1.4.1.1.481.2") == "RT DOSE"
    assert leaf_record_type("1.2.840.10008.5.1.4.1.1.11.1") == "PRESENTATION"
    assert leaf_record_type("1.2.840.10008.5.1.4.1.1.66") == "RAW DATA"
    assert leaf_record_type("1.2.840.10008.5.1.4.1.1.66.1") == "REGISTRATION"


def test_an_sr_document_gets_its_record(tmp_path: Path) -> None:
    data = to_bytes(make_dataset(SOPClassUID=BasicTextSRStorage))
    dicomdir = pydicom.dcmread(write_file_set(tmp_path, [data]))
    assert dicomdir.DirectoryRecordSequence[-1].DirectoryRecordType == "SR DOCUMENT"


def test_an_empty_file_set_still_has_a_valid_dicomdir() -> None:
    dicomdir = pydicom.dcmread(io.BytesIO(DicomDirBuilder().encode()))
    assert dicomdir.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.1.3.10"
    assert list(dicomdir.DirectoryRecordSequence) == []
    assert dicomdir.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity == 0


@pytest.mark.skipif(shutil.which("dcmdump") is None, reason="dcmtk's dcmdump is not installed")
def test_dcmdump_reads_it_and_sees_the_file_ids(tmp_path: Path) -> None:
    path = write_file_set(tmp_path, sample_files())
    result = subprocess.run(["dcmdump", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "E:" not in result.stderr and "W:" not in result.stderr
    assert "MediaStorageDirectoryStorage" in result.stdout
    for number in range(4):
        assert f'refFileID="IMAGES\\IM{number}"' in result.stdout
    # 4 images, 3 series, 2 studies, 2 patients
    assert result.stdout.count("DirectoryRecordType") == 4 + 3 + 2 + 2
