"""Parsing a received file: identifiers, main tags, refusals."""

from __future__ import annotations

import struct

import pytest

from pharos.dicom.parse import expected_number_of_instances, parse_instance
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.ids import ResourceIds
from pharos.model.levels import Level
from tests.dicomgen import make_dataset, to_bytes


def test_identifiers_and_main_tags() -> None:
    ds = make_dataset(patient_id="P7", study_uid="1.2", series_uid="1.2.3", sop_uid="1.2.3.4")
    parsed = parse_instance(to_bytes(ds))
    assert parsed.ids == ResourceIds.compute("P7", "1.2", "1.2.3", "1.2.3.4")
    assert parsed.tags[Level.PATIENT]["PatientName"] == "Doe^John"
    assert parsed.tags[Level.STUDY]["StudyDate"] == "20240131"
    assert parsed.tags[Level.SERIES]["Modality"] == "CT"
    assert parsed.tags[Level.INSTANCE]["InstanceNumber"] == "1"
    assert parsed.index_in_series == 1
    assert parsed.sop_class_uid == "1.2.840.10008.5.1.4.1.1.2"
    assert parsed.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert parsed.structure.pixel_data_offset is not None


def test_padding_is_stripped_from_identifiers() -> None:
    ds = make_dataset(patient_id="P8 ")
    parsed = parse_instance(to_bytes(ds))
    assert parsed.patient_id == "P8"


def test_main_tags_sent_as_un_are_read_with_their_dictionary_vr() -> None:
    # CP 246: a known tag encoded with VR UN (explicit VR little endian).
    data = to_bytes(make_dataset(sop_uid="1.2.3.4.5", study_uid="1.2.3"))
    value = b"1.2.3\x00"
    original = b"\x20\x00\x0d\x00UI" + struct.pack("<H", len(value)) + value
    assert original in data
    replaced = b"\x20\x00\x0d\x00UN\x00\x00" + struct.pack("<I", len(value)) + value
    parsed = parse_instance(data.replace(original, replaced))
    assert parsed.study_uid == "1.2.3"


def test_us_main_tags_become_decimal_strings() -> None:
    ds = make_dataset()
    ds.NumberOfSlices = 40  # (0054,0081) US
    ds.NumberOfTimeSlices = 3
    parsed = parse_instance(to_bytes(ds))
    assert parsed.tags[Level.SERIES]["NumberOfSlices"] == "40"
    assert parsed.expected_instances == 120


def test_expected_number_of_instances_follows_orthanc() -> None:
    assert (
        expected_number_of_instances(
            {"ImagesInAcquisition": "10", "NumberOfTemporalPositions": "2"}
        )
        == 20
    )
    assert expected_number_of_instances({"CardiacNumberOfImages": "12"}) == 12
    assert (
        expected_number_of_instances({"ImagesInAcquisition": "x", "NumberOfTemporalPositions": "2"})
        is None
    )
    assert expected_number_of_instances({"CardiacNumberOfImages": "0"}) is None
    assert expected_number_of_instances({}) is None


@pytest.mark.parametrize("missing", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
def test_missing_uid_is_named(missing: str) -> None:
    ds = make_dataset()
    delattr(ds, missing)
    with pytest.raises(PharosError) as caught:
        parse_instance(to_bytes(ds))
    assert caught.value.code is ErrorCode.BAD_FILE_FORMAT
    assert missing in (caught.value.details or "")


def test_empty_and_garbage_are_refused() -> None:
    for data in (b"", b"\x00" * 300, b"GIF89a" + b"\x01" * 500):
        with pytest.raises(PharosError) as caught:
            parse_instance(data)
        assert caught.value.code is ErrorCode.BAD_FILE_FORMAT


def test_indexed_main_tags_equal_their_rendering() -> None:
    """What is indexed (and searched) is exactly what /tags shows, for every sample file."""
    import io
    import warnings

    import pydicom

    from pharos.dicom.maintags import MAIN_TAGS
    from pharos.dicom.orthanc_json import TagFormat, dataset_to_json
    from pharos.model.errors import PharosError
    from tests.test_corpus import sample_files

    compared = 0
    for path in sample_files():
        data = path.read_bytes()
        try:
            parsed = parse_instance(data)
        except PharosError:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        shown = dataset_to_json(dataset, TagFormat.SHORT, max_length=0)
        for level, main_tags in MAIN_TAGS.items():
            for main_tag in main_tags:
                indexed = parsed.tags[level].get(main_tag.keyword)
                rendered = shown.get(main_tag.orthanc_key)
                if indexed is not None and rendered is not None:
                    assert indexed == rendered, (path.name, main_tag.keyword)
                    compared += 1
    assert compared > 1000
