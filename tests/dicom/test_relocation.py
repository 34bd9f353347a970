"""The rewrite of an instance moved into another study: UIDs, module tags, references,
character sets, transfer syntax and pixels kept."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRBigEndian, ImplicitVRLittleEndian

from pharos.dicom.relocation import Relocation, relocate
from pharos.model.errors import ErrorCode, PharosError
from tests.dicomgen import make_dataset, to_bytes


def read(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data), force=True)


def relocation_for(
    ds: Dataset, replacements: Dataset | None = None, removals: frozenset[int] = frozenset()
) -> Relocation:
    uid_map = {ds.SeriesInstanceUID: "1.2.826.0.1.9.2", ds.SOPInstanceUID: "1.2.826.0.1.9.3"}
    return Relocation("1.2.826.0.1.9.1", uid_map, replacements or Dataset(), removals)


def test_new_uids_tags_and_same_pixels() -> None:
    ds = make_dataset(seed=3)
    replacements = Dataset()
    replacements.PatientName = "New^Name"
    out = read(
        relocate(
            to_bytes(ds),
            relocation_for(ds, replacements=replacements, removals=frozenset({0x00080050})),
        )
    )
    assert out.StudyInstanceUID == "1.2.826.0.1.9.1"
    assert out.SeriesInstanceUID == "1.2.826.0.1.9.2"
    assert out.SOPInstanceUID == out.file_meta.MediaStorageSOPInstanceUID == "1.2.826.0.1.9.3"
    assert out.PatientName == "New^Name" and "AccessionNumber" not in out
    assert out.StudyDescription == ds.StudyDescription  # untouched
    assert out.PixelData == ds.PixelData
    assert out.file_meta.TransferSyntaxUID == ds.file_meta.TransferSyntaxUID


def test_references_follow_the_map_at_any_depth() -> None:
    ds = make_dataset()
    other = make_dataset(study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID)
    kept = "1.2.826.0.1.7.7"  # an instance that does not move
    referenced = Dataset()
    referenced.ReferencedSOPClassUID = ds.SOPClassUID
    referenced.ReferencedSOPInstanceUID = other.SOPInstanceUID
    unmoved = Dataset()
    unmoved.ReferencedSOPClassUID = ds.SOPClassUID
    unmoved.ReferencedSOPInstanceUID = kept
    ds.ReferencedImageSequence = [referenced, unmoved]
    series_item = Dataset()
    series_item.SeriesInstanceUID = ds.SeriesInstanceUID
    series_item.ReferencedSOPSequence = [referenced]
    evidence = Dataset()
    evidence.StudyInstanceUID = ds.StudyInstanceUID
    evidence.ReferencedSeriesSequence = [series_item]
    ds.CurrentRequestedProcedureEvidenceSequence = [evidence]
    relocation = relocation_for(ds)
    uid_map = {**relocation.uid_map, other.SOPInstanceUID: "1.2.826.0.1.9.4"}
    out = read(relocate(to_bytes(ds), Relocation(relocation.study_uid, uid_map)))
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID == "1.2.826.0.1.9.4"
    assert out.ReferencedImageSequence[1].ReferencedSOPInstanceUID == kept
    item = out.CurrentRequestedProcedureEvidenceSequence[0]
    assert item.StudyInstanceUID == "1.2.826.0.1.9.1"  # all its series moved
    assert item.ReferencedSeriesSequence[0].SeriesInstanceUID == "1.2.826.0.1.9.2"
    sop = item.ReferencedSeriesSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
    assert sop == "1.2.826.0.1.9.4"
    assert out.SOPClassUID == ds.SOPClassUID  # not a mapped UID


def test_a_reference_to_a_series_left_behind_keeps_its_study() -> None:
    ds = make_dataset()
    series_item = Dataset()
    series_item.SeriesInstanceUID = "1.2.826.0.1.7.8"  # not moved
    evidence = Dataset()
    evidence.StudyInstanceUID = ds.StudyInstanceUID
    evidence.ReferencedSeriesSequence = [series_item]
    ds.CurrentRequestedProcedureEvidenceSequence = [evidence]
    out = read(relocate(to_bytes(ds), relocation_for(ds)))
    assert out.CurrentRequestedProcedureEvidenceSequence[0].StudyInstanceUID == ds.StudyInstanceUID


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian])
def test_transfer_syntax_is_kept(syntax: str) -> None:
    ds = make_dataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    out = read(relocate(to_bytes(ds), relocation_for(ds)))
    assert out.file_meta.TransferSyntaxUID == syntax
    assert out.pixel_array.tolist() == ds.pixel_array.tolist()


def test_text_that_does_not_fit_the_character_set_turns_the_file_to_utf8() -> None:
    ds = make_dataset(StudyDescription="Thorax café")
    ds.SpecificCharacterSet = "ISO_IR 100"
    latin = Dataset()
    latin.PatientName = "Müller^Jörg"
    out = read(relocate(to_bytes(ds), relocation_for(ds, replacements=latin)))
    assert out.SpecificCharacterSet == "ISO_IR 100"  # Latin-1 holds it
    greek = Dataset()
    greek.PatientName = "Διονυσιος"
    out = read(relocate(to_bytes(ds), relocation_for(ds, replacements=greek)))
    assert out.SpecificCharacterSet == "ISO_IR 192"
    assert out.PatientName == "Διονυσιος" and out.StudyDescription == "Thorax café"


def test_an_instance_outside_the_map_is_refused() -> None:
    ds = make_dataset()
    with pytest.raises(PharosError) as info:
        relocate(to_bytes(ds), Relocation("1.2.3", {}))
    assert info.value.code is ErrorCode.INTERNAL_ERROR
