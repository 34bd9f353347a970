"""Orthanc's raw navigation in a dataset and its frame count (pharos.dicom.content)."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, JPEGBaseline8Bit

from pharos.dicom.content import content, number_of_frames
from pharos.model.errors import ErrorCode, PharosError
from tests.conftest import CORPUS
from tests.dicomgen import roundtrip

SKIPPED_CORPUS_FILES = {"2026-05-06-Deeply-Nested-Sequence.dcm", "README.md"}


def sample() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.PatientName = "Doe^Jo"
    ds.Rows = 512
    first = Dataset()
    first.ReferencedSOPInstanceUID = "1.2.3"
    second = Dataset()
    second.ReferencedSOPInstanceUID = "1.2.4"
    code = Dataset()
    code.CodeValue = "121327"
    second.PurposeOfReferenceCodeSequence = Sequence([code])
    ds.ReferencedImageSequence = Sequence([first, second])
    ds.ReferencedStudySequence = Sequence([])
    ds.add_new(0x7FE00010, "OW", bytes(range(8)))
    return ds


@pytest.fixture(params=["memory", "file"])
def ds(request: pytest.FixtureRequest) -> Dataset:
    return roundtrip(sample()) if request.param == "file" else sample()


def test_root_lists_the_tags(ds: Dataset) -> None:
    assert content(ds, []) == [
        "0008-0016",
        "0008-1110",
        "0008-1140",
        "0010-0010",
        "0028-0010",
        "7fe0-0010",
    ]


def test_leaf_values_are_raw_bytes(ds: Dataset) -> None:
    assert content(ds, ["0010-0010"]) == b"Doe^Jo"
    assert content(ds, ["0028,0010"]) == b"\x00\x02"  # 512, little endian
    assert content(ds, ["00280010"]) == b"\x00\x02"
    assert content(ds, ["Rows"]) == b"\x00\x02"  # dictionary names are accepted too
    assert content(ds, ["0008-0016"]).rstrip(b"\x00") == b"1.2.840.10008.5.1.4.1.1.7"


def test_file_values_keep_their_padding_and_byte_order() -> None:
    ds = sample()
    ds.PatientName = "Doe^Joe"  # odd length: padded with a space in the file
    assert content(roundtrip(ds), ["0010-0010"]) == b"Doe^Joe "
    assert content(roundtrip(sample(), ExplicitVRBigEndian), ["0028-0010"]) == b"\x02\x00"


def test_sequences_and_items(ds: Dataset) -> None:
    assert content(ds, ["0008-1140"]) == ["0", "1"]
    assert content(ds, ["0008-1110"]) == []
    assert content(ds, ["0008-1140", "0"]) == ["0008-1155"]
    assert content(ds, ["0008-1140", "1"]) == ["0008-1155", "0040-a170"]
    assert content(ds, ["0008-1140", "1", "0008-1155"]) == b"1.2.4\x00"
    assert content(ds, ["0008-1140", "1", "0040-a170"]) == ["0"]
    assert content(ds, ["0008-1140", "1", "0040-a170", "0", "0008-0100"]) == b"121327"
    assert content(ds, ["0008-1140", "1", "0040-a170", "0"]) == ["0008-0100"]


@pytest.mark.parametrize(
    "path",
    [
        ["0010-0020"],  # missing tag
        ["0008-1140", "2"],  # item index out of range
        ["0008-1140", "2", "0008-1155"],
        ["0008-1140", "-1"],
        ["0008-1140", "one"],
        ["0008-1140", "0", "0010-0010"],  # missing in the item
        ["0010-0010", "0"],  # not a sequence
        ["0008-1110", "0"],  # empty sequence
        ["7fe0-0010", "1"],  # native pixel data has one block
    ],
)
def test_paths_that_lead_nowhere(ds: Dataset, path: list[str]) -> None:
    with pytest.raises(PharosError) as error:
        content(ds, path)
    assert error.value.code is ErrorCode.UNKNOWN_RESOURCE
    assert error.value.http_status == 404


@pytest.mark.parametrize("path", [["PatientNam"], ["0010"], ["0008-1140", "0", "xyz"]])
def test_components_that_are_not_tags(ds: Dataset, path: list[str]) -> None:
    with pytest.raises(PharosError) as error:
        content(ds, path)
    assert error.value.code is ErrorCode.UNKNOWN_DICOM_TAG


def test_native_pixel_data(ds: Dataset) -> None:
    assert content(ds, ["7fe0-0010"]) == ["0"]
    assert content(ds, ["7fe0-0010", "0"]) == bytes(range(8))


def test_encapsulated_pixel_data() -> None:
    ds = sample()
    del ds.PixelData
    ds.PixelData = encapsulate(
        [b"\xff\xd8frame1\xff\xd9", b"\xff\xd8frame-2\xff\xd9"], has_bot=True
    )
    ds["PixelData"].VR = "OB"
    ds.NumberOfFrames = 2
    for current in (roundtrip(ds, JPEGBaseline8Bit), ds):
        if current is ds:
            ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        assert content(current, ["7fe0-0010"]) == ["0", "1", "2"]
        offsets = content(current, ["7fe0-0010", "0"])
        assert offsets == b"\x00\x00\x00\x00\x12\x00\x00\x00"  # the Basic Offset Table
        assert content(current, ["7fe0-0010", "1"]) == b"\xff\xd8frame1\xff\xd9"
        assert content(current, ["7fe0-0010", "2"]) == b"\xff\xd8frame-2\xff\xd9\x00"
        with pytest.raises(PharosError):
            content(current, ["7fe0-0010", "3"])
        assert number_of_frames(current) == 2


def test_pixel_data_absent() -> None:
    ds = sample()
    del ds.PixelData
    with pytest.raises(PharosError) as error:
        content(ds, ["7fe0-0010"])
    assert error.value.code is ErrorCode.UNKNOWN_RESOURCE


def test_number_of_frames() -> None:
    ds = sample()
    assert number_of_frames(ds) == 1  # absent
    for value, expected in (("3", 3), ("0", 0), (" 12 ", 12), ("+4", 4), ("", 1)):
        ds.NumberOfFrames = value
        assert number_of_frames(ds) == expected
        assert number_of_frames(roundtrip(ds)) == expected
    ds.NumberOfFrames = 30
    assert number_of_frames(ds, transfer_syntax="1.2.840.10008.1.2.4.102") == 1  # a video
    for bad in (b"abc", b"-1", b"2\\3", b"99999999999", b"1 2"):
        element = RawDataElement(0x00280008, "IS", len(bad), bad, 0, False, True, True, False)
        with pytest.raises(PharosError) as error:
            number_of_frames(Dataset({0x00280008: element}))
        assert error.value.code is ErrorCode.BAD_FILE_FORMAT


def _smoke(path: str | Path) -> None:
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception:
        pytest.skip("pydicom cannot read this file")
    for tag in content(ds, []):
        try:
            result = content(ds, [tag])
        except PharosError as error:  # e.g. pixel data pydicom cannot load
            assert error.code is ErrorCode.UNKNOWN_RESOURCE
            continue
        if isinstance(result, list):
            for index in result:
                if tag == "7fe0-0010":
                    assert isinstance(content(ds, [tag, index]), bytes)
                else:
                    assert isinstance(content(ds, [tag, index]), list)
    try:
        assert number_of_frames(ds) >= 0
    except PharosError as error:
        assert error.code is ErrorCode.BAD_FILE_FORMAT


@pytest.mark.parametrize("path", get_testdata_files(), ids=lambda p: Path(p).name)
def test_smoke_pydicom_test_files(path: str) -> None:
    _smoke(path)


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    files = (p for p in CORPUS.rglob("*") if p.is_file() and p.name not in SKIPPED_CORPUS_FILES)
    return sorted(files)


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/dicom-corpus is absent")
@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_smoke_corpus(path: Path) -> None:
    _smoke(path)
