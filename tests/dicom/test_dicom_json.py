"""The DICOM JSON model (PS3.18 F.2) from datasets and from index values."""

from __future__ import annotations

import base64

from pydicom import Dataset
from pydicom.dataelem import RawDataElement
from pydicom.dataset import FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

from pharos.dicom.dicom_json import attribute, attributes, dataset_to_dicom_json
from tests.dicomgen import make_dataset, roundtrip


def test_numbers_are_json_numbers() -> None:
    ds = Dataset()
    ds.SliceThickness = "1.50"
    ds.ImagePositionPatient = ["1", "2.5", "-3e2"]
    ds.InstanceNumber = "7"
    ds.Rows = 4
    ds.add_new(0x00189219, "FD", 0.25)
    out = dataset_to_dicom_json(ds)
    assert out["00180050"] == {"vr": "DS", "Value": [1.5]}
    assert out["00200032"] == {"vr": "DS", "Value": [1.0, 2.5, -300.0]}
    assert out["00200013"] == {"vr": "IS", "Value": [7]}
    assert out["00280010"] == {"vr": "US", "Value": [4]}
    assert out["00189219"] == {"vr": "FD", "Value": [0.25]}


def test_person_names_keep_their_groups_and_characters() -> None:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Müller^Jürgen=山田^太郎=やまだ^たろう"
    out = dataset_to_dicom_json(roundtrip(ds))
    assert out["00100010"] == {
        "vr": "PN",
        "Value": [
            {"Alphabetic": "Müller^Jürgen", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}
        ],
    }


def test_empty_values_have_no_value_and_attribute_tags_are_hex() -> None:
    ds = Dataset()
    ds.StudyDescription = ""
    ds.add_new(0x00209165, "AT", [0x00540010, 0x00200013])
    out = dataset_to_dicom_json(ds)
    assert out["00081030"] == {"vr": "LO"}
    assert out["00209165"] == {"vr": "AT", "Value": ["00540010", "00200013"]}


def test_binary_values_inline_or_left_out_and_no_pixel_data() -> None:
    ds = make_dataset()
    ds.add_new(0x00091010, "LO", "PHAROS")  # private creator
    ds.add_new(0x00091011, "OB", b"\x01\x02")
    ds.add_new(0x00091012, "OB", b"x" * 5000)
    out = dataset_to_dicom_json(roundtrip(ds))
    assert out["00091010"] == {"vr": "LO", "Value": ["PHAROS"]}
    assert out["00091011"] == {"vr": "OB", "InlineBinary": base64.b64encode(b"\x01\x02").decode()}
    assert "00091012" not in out  # bulk data: no /bulkdata route, so no BulkDataURI
    assert "7FE00010" not in out
    assert list(out) == sorted(out)


def test_sequences_are_nested_and_cleaned() -> None:
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3"
    item.add_new(0x00091011, "OB", b"y" * 5000)
    ds = Dataset()
    ds.ReferencedImageSequence = Sequence([item])
    out = dataset_to_dicom_json(ds)
    assert out["00081140"] == {
        "vr": "SQ",
        "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3"]}}],
    }


def test_empty_sequences_have_no_value() -> None:
    # PS3.18 F.2.5: an attribute without value has no "Value" (pydicom writes an empty list).
    item = Dataset()
    item.ContentSequence = Sequence([])
    ds = Dataset()
    ds.ReferencedImageSequence = Sequence([])
    ds.RequestAttributesSequence = Sequence([item])
    out = dataset_to_dicom_json(ds)
    assert out["00081140"] == {"vr": "SQ"}
    assert out["00400275"]["Value"] == [{"0040A730": {"vr": "SQ"}}]


def test_invalid_values_are_left_out_not_fatal() -> None:
    ds = Dataset()
    value = b"not-a-number"
    ds[0x00180050] = RawDataElement(Tag(0x00180050), "DS", len(value), value, 0, False, True)
    ds.PatientID = "P1"
    out = dataset_to_dicom_json(ds)
    assert out == {"00100020": {"vr": "LO", "Value": ["P1"]}}


def test_attributes_from_index_values() -> None:
    assert attribute(0x00100010, "Doe^John=山田^太郎") == {
        "vr": "PN",
        "Value": [{"Alphabetic": "Doe^John", "Ideographic": "山田^太郎"}],
    }
    assert attribute(0x00200013, "12") == {"vr": "IS", "Value": [12]}
    assert attribute(0x00200037, "1\\0\\0\\0\\1\\0")["Value"] == [1.0, 0, 0, 0, 1.0, 0]
    assert attribute(0x00080061, "CT\\MR") == {"vr": "CS", "Value": ["CT", "MR"]}
    assert attribute(0x00081030, "") == {"vr": "LO"}
    assert attribute(0x00081030, None) == {"vr": "LO"}
    assert attribute(0x00200013, "x") == {"vr": "IS", "Value": [None]}
    assert list(attributes({0x00200013: "1", 0x00100010: "A"})) == ["00100010", "00200013"]


def test_bulk_data_uris_name_the_path_of_the_value() -> None:
    """PS3.18 F.2.2: a large binary value is a BulkDataURI (no Value, no InlineBinary)."""
    ds = Dataset()
    ds.add_new(0x60003000, "OW", b"\x00\x01" * 1024)
    ds.add_new(0x00420011, "OB", b"\x02" * 10)  # small: inline
    second = Dataset()
    second.add_new(0x7FE00010, "OW", b"\x05\x06" * 1024)
    ds.IconImageSequence = Sequence([Dataset(), second])
    ds.add_new(0x7FE00010, "OW", b"\x00" * 4096)  # native pixel data: bulk data
    prefix = "studies/1/series/2/instances/3/"
    node = dataset_to_dicom_json(ds, bulk_data_uri=prefix)
    assert node["60003000"] == {"vr": "OW", "BulkDataURI": prefix + "bulk/60003000"}
    assert "InlineBinary" in node["00420011"]
    items = node["00880200"]["Value"]
    assert items[0] == {}
    assert items[1]["7FE00010"] == {
        "vr": "OW",
        "BulkDataURI": prefix + "bulk/00880200/2/7FE00010",
    }
    assert node["7FE00010"] == {"vr": "OW", "BulkDataURI": prefix + "bulk/7FE00010"}
    assert list(node) == sorted(node)
    # Without a URI (QIDO-RS), large values and pixel data are left out.
    assert "60003000" not in dataset_to_dicom_json(ds)
    assert "7FE00010" not in dataset_to_dicom_json(ds)
    # Encapsulated pixel data: its frames are at /frames, no bulk data.
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    assert "7FE00010" not in dataset_to_dicom_json(ds, bulk_data_uri=prefix)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    assert "7FE00010" in dataset_to_dicom_json(ds, bulk_data_uri=prefix)
    ds.BitsAllocated = 1  # a segmentation's: OB, whatever VR the reading gave
    assert dataset_to_dicom_json(ds, bulk_data_uri=prefix)["7FE00010"]["vr"] == "OB"
