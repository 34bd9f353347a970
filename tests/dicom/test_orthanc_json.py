"""Orthanc 1.10's JSON renderings of DICOM tags (pharos.dicom.orthanc_json)."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_files
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian

from pharos.dicom.dictionary import (
    UNKNOWN_TAG_NAME,
    format_tag,
    parse_ignore_length,
    parse_tag,
    tag_name,
)
from pharos.dicom.modules import extract_module, module_tags, shared_tags
from pharos.dicom.orthanc_json import (
    MAXIMUM_TAG_LENGTH,
    TagFormat,
    convert_format,
    dataset_to_json,
    format_from_query,
    header_to_json,
    main_tags_to_json,
)
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from tests.conftest import CORPUS
from tests.dicomgen import roundtrip

SKIPPED_CORPUS_FILES = {"2026-05-06-Deeply-Nested-Sequence.dcm", "README.md"}


def raw(tag: int, vr: str | None, value: bytes, little: bool = True) -> RawDataElement:
    """A raw element as pydicom's reader yields it, to feed bytes a writer would refuse."""
    return RawDataElement(tag, vr, len(value), value, 0, vr is None, little, True, False)


def from_raw(*elements: RawDataElement) -> Dataset:
    return Dataset({element.tag: element for element in elements})


def sample() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    ds.PatientID = "1234"
    ds.AccessionNumber = ""
    ds.ImagePositionPatient = ["1.5", "-2", "3.25"]
    ds.add_new(0x00200012, "IS", "7")  # AcquisitionNumber
    ds.add_new(0x00181310, "US", [0, 256, 256, 0])  # AcquisitionMatrix
    ds.Rows = 512
    ds.add_new(0x00189219, "SS", -5)  # TagAngleSecondAxis
    ds.add_new(0x00189087, "FD", 0.1)  # DiffusionBValue
    ds.add_new(0x00189079, "FD", [1.0, 2.5])  # InversionTimes
    ds.add_new(0x00181320, "FL", 0.1)  # B1rms
    ds.add_new(0x00209165, "AT", 0x00100020)  # DimensionIndexPointer
    ds.add_new(0x00131001, "OB", b"\x01\x02")  # private data without creator
    ds.add_new(0x00090010, "LO", "GEMS_IDEN_01")
    ds.add_new(0x00091004, "SH", "HiSpeed CT/i")
    ds.add_new(0x00110010, "LO", "ACME 1.0")
    ds.add_new(0x00111001, "LO", "secret")
    item1 = Dataset()
    item1.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item1.ReferencedSOPInstanceUID = "1.2.3"
    nested = Dataset()
    nested.CodeValue = "121327"
    item1.PurposeOfReferenceCodeSequence = Sequence([nested])
    item2 = Dataset()
    item2.ReferencedSOPInstanceUID = "1.2.4"
    ds.ReferencedImageSequence = Sequence([item1, item2])
    ds.ReferencedStudySequence = Sequence([])
    ds.add_new(0x7FE00010, "OW", b"\x00\x01" * 8)
    ds.add_new(0xFFFAFFFA, "SQ", Sequence([]))  # after Pixel Data: not reported
    return ds


@pytest.fixture(params=["memory", "file"])
def sample_ds(request: pytest.FixtureRequest) -> Dataset:
    ds = sample()
    return roundtrip(ds) if request.param == "file" else ds


# --- full format ---------------------------------------------------------------------------


def test_full_format_strings_numbers_and_names(sample_ds: Dataset) -> None:
    tags = dataset_to_json(sample_ds)
    assert tags["0010,0010"] == {
        "Name": "PatientName",
        "Type": "String",
        "Value": "Yamada^Tarou=山田^太郎=やまだ^たろう",
    }
    assert tags["0008,0050"] == {"Name": "AccessionNumber", "Type": "String", "Value": ""}
    assert tags["0020,0032"]["Value"] == "1.5\\-2\\3.25"
    assert tags["0020,0012"]["Value"] == "7"
    assert tags["0018,1310"]["Value"] == "0\\256\\256\\0"
    assert tags["0028,0010"] == {"Name": "Rows", "Type": "String", "Value": "512"}
    assert tags["0018,9219"]["Value"] == "-5"
    # boost::lexical_cast precision: 17 digits for FD, 9 for FL (Orthanc >= 1.9.1)
    assert tags["0018,9087"]["Value"] == "0.10000000000000001"
    assert tags["0018,9079"]["Value"] == "1\\2.5"
    assert tags["0018,1320"]["Value"] == "0.100000001"
    assert tags["0020,9165"]["Value"] == "0010,0020"


def test_full_format_binary_pixel_data_and_order(sample_ds: Dataset) -> None:
    tags = dataset_to_json(sample_ds)
    assert tags["7fe0,0010"] == {"Name": "PixelData", "Type": "Null", "Value": None}
    assert tags["0013,1001"] == {"Name": UNKNOWN_TAG_NAME, "Type": "Null", "Value": None}
    assert "fffa,fffa" not in tags  # top-level tags after Pixel Data are left out
    assert list(tags) == sorted(tags)
    for key, node in tags.items():
        assert key == key.lower() and len(key) == 9 and key[4] == ","
        assert next(iter(node)) == "Name" and list(node)[-2:] == ["Type", "Value"]


def test_full_format_private_tags(sample_ds: Dataset) -> None:
    tags = dataset_to_json(sample_ds)
    assert tags["0009,0010"] == {
        "Name": "PrivateCreator",
        "Type": "String",
        "Value": "GEMS_IDEN_01",
    }
    assert tags["0009,1004"] == {
        "Name": "ProductId",
        "PrivateCreator": "GEMS_IDEN_01",
        "Type": "String",
        "Value": "HiSpeed CT/i",
    }
    assert tags["0011,1001"] == {
        "Name": UNKNOWN_TAG_NAME,
        "PrivateCreator": "ACME 1.0",
        "Type": "String",
        "Value": "secret",
    }
    assert "PrivateCreator" not in tags["0013,1001"]  # no (0013,0010) reserves the block


def test_full_format_sequences(sample_ds: Dataset) -> None:
    tags = dataset_to_json(sample_ds)
    sequence = tags["0008,1140"]
    assert sequence["Name"] == "ReferencedImageSequence"
    assert sequence["Type"] == "Sequence"
    assert len(sequence["Value"]) == 2
    first, second = sequence["Value"]
    assert first["0008,1155"] == {
        "Name": "ReferencedSOPInstanceUID",
        "Type": "String",
        "Value": "1.2.3",
    }
    assert first["0040,a170"]["Value"][0]["0008,0100"]["Value"] == "121327"
    assert second == {
        "0008,1155": {"Name": "ReferencedSOPInstanceUID", "Type": "String", "Value": "1.2.4"}
    }
    assert tags["0008,1110"] == {"Name": "ReferencedStudySequence", "Type": "Sequence", "Value": []}


# --- short and simplified formats ----------------------------------------------------------


def test_short_format(sample_ds: Dataset) -> None:
    tags = dataset_to_json(sample_ds, TagFormat.SHORT)
    assert tags["0010,0010"] == "Yamada^Tarou=山田^太郎=やまだ^たろう"
    assert tags["7fe0,0010"] is None
    assert tags["0008,1140"][1] == {"0008,1155": "1.2.4"}
    assert tags["0008,1110"] == []


def test_simplified_format(sample_ds: Dataset) -> None:
    tags = dataset_to_json(sample_ds, TagFormat.SIMPLIFY)
    assert tags["PatientName"] == "Yamada^Tarou=山田^太郎=やまだ^たろう"
    assert tags["PixelData"] is None
    assert tags["ProductId"] == "HiSpeed CT/i"
    assert tags["ReferencedImageSequence"][0]["PurposeOfReferenceCodeSequence"] == [
        {"CodeValue": "121327"}
    ]
    # two unknown tags share one name: the last one in tag order, (0013,1001), wins; the
    # keys come in name order
    assert tags[UNKNOWN_TAG_NAME] is None
    assert list(tags) == sorted(tags)


def test_direct_rendering_matches_simplification_of_full(sample_ds: Dataset) -> None:
    full = dataset_to_json(sample_ds)
    for fmt in (TagFormat.SHORT, TagFormat.SIMPLIFY):
        assert dataset_to_json(sample_ds, fmt) == convert_format(full, fmt)
        assert json.dumps(dataset_to_json(sample_ds, fmt)) == json.dumps(convert_format(full, fmt))
    assert convert_format(full, TagFormat.FULL) == full


def test_convert_format_of_stored_json() -> None:
    full = {
        "0010,0020": {"Name": "PatientID", "Type": "String", "Value": "42"},
        "0008,1030": {"Name": "StudyDescription", "Type": "TooLong", "Value": None},
        "0009,0001": "not an object",
        "0008,1140": {
            "Name": "ReferencedImageSequence",
            "Type": "Sequence",
            "Value": [
                {
                    "0008,1155": {
                        "Name": "ReferencedSOPInstanceUID",
                        "Type": "String",
                        "Value": "1.2",
                    }
                }
            ],
        },
    }
    assert convert_format(full, TagFormat.SIMPLIFY) == {
        "PatientID": "42",
        "ReferencedImageSequence": [{"ReferencedSOPInstanceUID": "1.2"}],
        "StudyDescription": None,
    }
    assert convert_format(full, TagFormat.SHORT) == {
        "0010,0020": "42",
        "0008,1030": None,
        "0008,1140": [{"0008,1155": "1.2"}],
    }


def test_format_from_query() -> None:
    assert format_from_query([]) is TagFormat.FULL
    assert format_from_query(["short"]) is TagFormat.SHORT
    assert format_from_query(["short", "simplify"]) is TagFormat.SIMPLIFY
    assert format_from_query(["full"], TagFormat.SIMPLIFY) is TagFormat.FULL
    assert format_from_query({"expand": ""}, TagFormat.SIMPLIFY) is TagFormat.SIMPLIFY


# --- character sets ------------------------------------------------------------------------


def test_iso_ir_100_latin1() -> None:
    ds = from_raw(raw(0x00080005, "CS", b"ISO_IR 100"), raw(0x00100010, "PN", b"Buc^J\xe9r\xf4me "))
    assert dataset_to_json(ds, TagFormat.SIMPLIFY)["PatientName"] == "Buc^Jérôme"


def test_iso_ir_192_utf8_and_invalid_bytes() -> None:
    ds = from_raw(
        raw(0x00080005, "CS", b"ISO_IR 192"),
        raw(0x00100010, "PN", "Wang^XiaoDong=王^小東".encode() + b"\xff"),
    )
    assert dataset_to_json(ds, TagFormat.SIMPLIFY)["PatientName"] == "Wang^XiaoDong=王^小東"


def test_default_encoding_applies_without_specific_character_set() -> None:
    ds = from_raw(raw(0x00100010, "PN", b"J\xe9r\xf4me"))
    assert dataset_to_json(ds, TagFormat.SHORT)["0010,0010"] == "Jérôme"  # Latin1
    assert dataset_to_json(ds, TagFormat.SHORT, default_encoding="Latin1")["0010,0010"] == "Jérôme"
    # invalid UTF-8 bytes are skipped, as boost::locale's "skip" policy does
    assert dataset_to_json(ds, TagFormat.SHORT, default_encoding="Utf8")["0010,0010"] == "Jrme"
    greek = from_raw(raw(0x00100010, "PN", b"\xc4\xe9\xef"))
    assert dataset_to_json(greek, TagFormat.SHORT, default_encoding="Greek")["0010,0010"] == "Διο"
    with pytest.raises(ValueError):
        dataset_to_json(ds, default_encoding="Klingon")


def test_ascii_and_unsupported_character_sets_keep_printable_ascii_only() -> None:
    for term in (b"ISO_IR 6", b"ISO_IR 999"):
        ds = from_raw(raw(0x00080005, "CS", term), raw(0x00104000, "LT", b"a\tb\r\nc\xe9d\x7f"))
        assert dataset_to_json(ds, TagFormat.SHORT)["0010,4000"] == "ab\ncd"


def test_iso_2022_code_extensions() -> None:
    # David Clunie's SCSH31 and SCSH32 values
    h31 = b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"
    ds = from_raw(raw(0x00080005, "CS", b"\\ISO 2022 IR 87"), raw(0x00100010, "PN", h31))
    assert (
        dataset_to_json(ds, TagFormat.SHORT)["0010,0010"] == "Yamada^Tarou=山田^太郎=やまだ^たろう"
    )
    h32 = (
        b"\xd4\xcf\xc0\xde^\xc0\xdb\xb3=\x1b$B;3ED\x1b(J^\x1b$BB@O:\x1b(J="
        b"\x1b$B$d$^$@\x1b(J^\x1b$B$?$m$&\x1b(J"
    )
    ds = from_raw(
        raw(0x00080005, "CS", b"ISO 2022 IR 13\\ISO 2022 IR 87"), raw(0x00100010, "PN", h32)
    )
    assert dataset_to_json(ds, TagFormat.SHORT)["0010,0010"] == "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"
    korean = (
        b"Hong^Gildong=\x1b$)C\xfb\xf3^\x1b$)C\xd1\xce\xd4\xd7="
        b"\x1b$)C\xc8\xab^\x1b$)C\xb1\xe6\xb5\xbf"
    )
    ds = from_raw(raw(0x00080005, "CS", b"\\ISO 2022 IR 149"), raw(0x00100010, "PN", korean))
    assert dataset_to_json(ds, TagFormat.SHORT)["0010,0010"] == "Hong^Gildong=洪^吉洞=홍^길동"


def test_in_memory_values_are_already_text() -> None:
    ds = Dataset()
    ds.PatientName = "Äneas^Rüdiger"  # no Specific Character Set: pydicom holds str values
    assert dataset_to_json(ds, TagFormat.SHORT)["0010,0010"] == "Äneas^Rüdiger"


# --- padding, NUL, length ------------------------------------------------------------------


def test_padding_and_nul_handling() -> None:
    ds = from_raw(
        raw(0x00080018, "UI", b"1.2.3\x00"),
        raw(0x00080060, "CS", b"CT  "),
        raw(0x00081030, "LO", b"  leading kept  "),
        raw(0x00100020, "LO", b"AB\x00CD"),  # DCMTK gives a C string: cut at the first NUL
        raw(0x00200032, "DS", b"1 \\2 "),  # only the trailing padding of the value goes
    )
    tags = dataset_to_json(ds, TagFormat.SHORT)
    assert tags["0008,0018"] == "1.2.3"
    assert tags["0008,0060"] == "CT"
    assert tags["0008,1030"] == "  leading kept"
    assert tags["0010,0020"] == "AB"
    assert tags["0020,0032"] == "1 \\2"


def test_too_long_values_and_ignore_length() -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyDescription = "x" * MAXIMUM_TAG_LENGTH
    ds.SeriesDescription = "x" * (MAXIMUM_TAG_LENGTH + 1)
    ds.add_new(0x00104000, "LT", "é" * 200)  # 200 characters, 400 bytes of UTF-8
    ds.add_new(0x00283002, "US", [1] * 200)  # "1\\1\\..." is 399 characters
    item = Dataset()
    item.SeriesDescription = "y" * 300
    ds.ReferencedSeriesSequence = Sequence([item])
    for current in (ds, roundtrip(ds)):
        tags = dataset_to_json(current)
        assert tags["0008,1030"]["Type"] == "String"
        assert tags["0008,103e"] == {"Name": "SeriesDescription", "Type": "TooLong", "Value": None}
        assert tags["0010,4000"]["Type"] == "TooLong"
        assert tags["0028,3002"]["Type"] == "TooLong"
        assert tags["0008,1115"]["Value"][0]["0008,103e"]["Type"] == "TooLong"
        assert dataset_to_json(current, TagFormat.SIMPLIFY)["SeriesDescription"] is None

        lifted = dataset_to_json(current, ignore_length={0x0008103E, 0x00104000, 0x00283002})
        assert lifted["0008,103e"]["Value"] == "x" * 257
        assert lifted["0008,1115"]["Value"][0]["0008,103e"]["Value"] == "y" * 300
        assert lifted["0010,4000"]["Value"] == "é" * 200
        assert lifted["0028,3002"]["Value"] == "\\".join(["1"] * 200)
        assert dataset_to_json(current, max_length=0)["0008,103e"]["Type"] == "String"


def test_parse_ignore_length_and_tags() -> None:
    assert parse_ignore_length(None) == frozenset()
    assert parse_ignore_length("0010-0010,PatientID,00080050") == {
        0x00100010,
        0x00100020,
        0x00080050,
    }
    # Orthanc splits on commas; two 4-digit halves are read back as one tag here
    assert parse_ignore_length("0010,0010,0008-1030,") == {0x00100010, 0x00081030}
    assert parse_tag("7FE0,0010") == 0x7FE00010
    assert parse_tag("RETIRED_OtherPatientIDs") == 0x00101000
    for bad in ("PatientNam", "0010", "0x10,0010", "0010 0010", ""):
        with pytest.raises(PharosError) as error:
            parse_tag(bad)
        assert error.value.code is ErrorCode.UNKNOWN_DICOM_TAG
    with pytest.raises(PharosError):
        parse_ignore_length("NoSuchTag")


def test_tag_names() -> None:
    assert tag_name(0x00100010) == "PatientName"
    assert tag_name(0x00101000) == "OtherPatientIDs"  # patched in Orthanc despite retirement
    assert tag_name(0x00080001) == "RETIRED_LengthToEnd"
    assert tag_name(0x00020000) == "FileMetaInformationGroupLength"
    assert tag_name(0x00080000) == "GenericGroupLength"
    assert tag_name(0x00090000) == "PrivateGroupLength"
    assert tag_name(0x00290010) == "PrivateCreator"
    assert tag_name(0x00030010) == "IllegalPrivateCreator"
    assert tag_name(0x60023000) == "OverlayData"
    assert tag_name(0x00291010) == UNKNOWN_TAG_NAME
    assert tag_name(0x00291010, "SIEMENS CSA HEADER") == "CSAImageHeaderInfo"
    assert tag_name(0x00291010, "NOBODY") == UNKNOWN_TAG_NAME
    assert tag_name(0x00130000 | 0x0001) == UNKNOWN_TAG_NAME
    assert tag_name(0x00EE0001) == UNKNOWN_TAG_NAME
    assert format_tag(0x7FE00010) == "7fe0,0010"


# --- robustness ----------------------------------------------------------------------------


def test_broken_values_render_without_raising() -> None:
    ds = from_raw(
        raw(0x00080005, "CS", b"ISO_IR 192"),
        raw(0x00080008, "CS", b"\xff\xfe\xfd"),  # undecodable: skipped bytes, empty string
        raw(0x00180050, "DS", b"not a number"),  # strings are not validated
        raw(0x00280010, "US", b"\x00\x02\x07"),  # odd length: the first value
        raw(0x00280011, "US", b"\x07"),  # shorter than one value: Null
        raw(0x00280030, "DS", b""),
        raw(0x00280100, "US", b""),  # empty number: Null
        raw(0x00209165, "AT", b"\x10\x00"),  # truncated AT: Null
        raw(0x00081140, "SQ", b"\xfe\xff\x00\xe0\xff\x00\x00\x00garbage"),  # broken sequence
        raw(0x00100010, "ZZ", b"??"),  # unknown VR: binary, Null
        raw(0x00091001, None, b"\x01\x02"),  # implicit VR, unknown private: UN, Null
        raw(0x00101010, "UN", b"045Y"),  # PatientAge as UN: known as text, ASCII (CP 246)
        raw(0x00101020, "UN", b"1.5\x00"),  # UN read with its dictionary VR (DS), padding cut
    )
    for fmt in TagFormat:
        dataset_to_json(ds, fmt)
    tags = dataset_to_json(ds)
    assert tags["0008,0008"]["Value"] == ""
    assert tags["0018,0050"]["Value"] == "not a number"
    assert tags["0028,0010"]["Value"] == "512"
    assert tags["0028,0011"]["Type"] == "Null"
    assert tags["0028,0030"] == {"Name": "PixelSpacing", "Type": "String", "Value": ""}
    assert tags["0028,0100"]["Type"] == "Null"
    assert tags["0020,9165"]["Type"] == "Null"
    assert tags["0008,1140"]["Type"] in ("Null", "Sequence")
    assert tags["0010,0010"]["Type"] == "Null"
    assert tags["0009,1001"]["Type"] == "Null"
    assert tags["0010,1010"] == {"Name": "PatientAge", "Type": "String", "Value": "045Y"}
    assert tags["0010,1020"] == {"Name": "PatientSize", "Type": "String", "Value": "1.5"}


def test_big_endian_and_implicit_vr_files() -> None:
    for syntax in (ExplicitVRBigEndian, ImplicitVRLittleEndian):
        tags = dataset_to_json(roundtrip(sample(), syntax))
        assert tags["0018,1310"]["Value"] == "0\\256\\256\\0"
        assert tags["0018,9219"]["Value"] == "-5"
        assert tags["0020,9165"]["Value"] == "0010,0020"
        assert tags["0009,1004"]["Value"] == "HiSpeed CT/i"  # private VR from the dictionary
        assert tags["0008,1140"]["Value"][1]["0008,1155"]["Value"] == "1.2.4"


def nest(depth: int) -> Dataset:
    ds = Dataset()
    ds.PatientID = "deep"
    current = ds
    for level in range(depth):
        item = Dataset()
        item.add_new(0x00080100, "SH", str(level))
        current.ContentSequence = Sequence([item])
        current = item
    return ds


def test_deeply_nested_sequences_do_not_recurse() -> None:
    depth = 200
    datasets = [nest(depth), roundtrip(nest(depth))]
    keys = {
        TagFormat.FULL: ("0040,a730", "0008,0100"),
        TagFormat.SHORT: ("0040,a730", "0008,0100"),
        TagFormat.SIMPLIFY: ("ContentSequence", "CodeValue"),
    }
    limit = sys.getrecursionlimit()
    # enough for pydicom to parse one level at a time, far too little for a recursive walk
    sys.setrecursionlimit(len(traceback.extract_stack()) + 120)
    try:
        for ds in datasets:
            for fmt in TagFormat:
                node = dataset_to_json(ds, fmt)
                sequence_key, value_key = keys[fmt]
                for level in range(depth):
                    sequence = node[sequence_key]
                    node = (sequence["Value"] if fmt is TagFormat.FULL else sequence)[0]
                    value = node[value_key]
                    assert (value["Value"] if fmt is TagFormat.FULL else value) == str(level)
            convert_format(dataset_to_json(ds), TagFormat.SIMPLIFY)
    finally:
        sys.setrecursionlimit(limit)


# --- header, main tags, modules, shared tags -----------------------------------------------


def test_header() -> None:
    ds = roundtrip(sample())
    header = header_to_json(ds.file_meta)
    assert header["0002,0010"] == {
        "Name": "TransferSyntaxUID",
        "Type": "String",
        "Value": "1.2.840.10008.1.2.1",
    }
    assert header["0002,0000"]["Name"] == "FileMetaInformationGroupLength"
    assert header["0002,0000"]["Value"].isdigit()
    assert "0002,0001" not in header  # OB FileMetaInformationVersion: binary, left out
    assert header_to_json(ds.file_meta, TagFormat.SHORT)["0002,0003"] == "1.2.3.4.5"
    assert (
        header_to_json(ds.file_meta, TagFormat.SIMPLIFY)["MediaStorageSOPClassUID"]
        == "1.2.840.10008.5.1.4.1.1.7"
    )
    assert header_to_json(None) == {}


def test_main_tags_to_json() -> None:
    values = {0x00100020: "42", 0x00100010: "Doe^John", 0x00100030: None}
    assert main_tags_to_json(values, TagFormat.FULL) == {
        "0010,0010": {"Name": "PatientName", "Type": "String", "Value": "Doe^John"},
        "0010,0020": {"Name": "PatientID", "Type": "String", "Value": "42"},
        "0010,0030": {"Name": "PatientBirthDate", "Type": "Null", "Value": None},
    }
    assert list(main_tags_to_json(values, TagFormat.FULL)) == [
        "0010,0010",
        "0010,0020",
        "0010,0030",
    ]
    assert main_tags_to_json(values, TagFormat.SHORT) == {
        "0010,0010": "Doe^John",
        "0010,0020": "42",
        "0010,0030": None,
    }
    simplified = main_tags_to_json(values, TagFormat.SIMPLIFY)
    assert simplified == {"PatientBirthDate": None, "PatientID": "42", "PatientName": "Doe^John"}
    assert list(simplified) == sorted(simplified)


def test_modules() -> None:
    full = dataset_to_json(sample())
    patient = extract_module(full, Level.PATIENT)
    assert set(patient) == {"0010,0010", "0010,0020"}
    assert patient["0010,0010"] == full["0010,0010"]
    assert set(extract_module(full, Level.STUDY)) == {"0008,0050", "0008,1110"}
    assert set(extract_module(full, Level.INSTANCE)) == {"0008,0005"}
    assert 0x00290109 in module_tags(Level.SERIES)  # Orthanc's own list, typo included
    assert 0x00100010 in module_tags(Level.PATIENT)


def test_shared_tags() -> None:
    a, b, c = sample(), sample(), sample()
    b.PatientID = "other"
    del c.AccessionNumber
    jsons = [dataset_to_json(ds) for ds in (a, b, c)]
    shared = shared_tags(jsons)
    assert "0010,0010" in shared and shared["0010,0010"] == jsons[0]["0010,0010"]
    assert "0010,0020" not in shared  # differs
    assert "0008,0050" not in shared  # missing from one instance
    assert "0008,1140" not in shared and "7fe0,0010" not in shared  # only String values
    assert shared_tags([]) == {}
    assert shared_tags([jsons[0], "corrupted"]) == shared_tags([jsons[0]])  # type: ignore[list-item]
    assert convert_format(shared, TagFormat.SHORT)["0010,0010"].startswith("Yamada")


# --- every file at hand --------------------------------------------------------------------


def _corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted(
        p for p in CORPUS.rglob("*") if p.is_file() and p.name not in SKIPPED_CORPUS_FILES
    )


def _smoke(path: str | Path) -> None:
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception:
        pytest.skip("pydicom cannot read this file")
    full = dataset_to_json(ds)
    json.dumps(full)
    for fmt in (TagFormat.SHORT, TagFormat.SIMPLIFY):
        assert dataset_to_json(ds, fmt) == convert_format(full, fmt)
    for fmt in TagFormat:
        json.dumps(header_to_json(getattr(ds, "file_meta", None), fmt))
        json.dumps(dataset_to_json(ds, fmt, ignore_length={0x00100010}, max_length=0))
    shared_tags([full, full])
    for level in Level:
        extract_module(full, level)


@pytest.mark.parametrize("path", get_testdata_files(), ids=lambda p: Path(p).name)
def test_smoke_pydicom_test_files(path: str) -> None:
    _smoke(path)


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/dicom-corpus is absent")
@pytest.mark.parametrize("path", _corpus_files(), ids=lambda p: str(p.relative_to(CORPUS)))
def test_smoke_corpus(path: Path) -> None:
    _smoke(path)
