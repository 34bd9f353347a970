"""The Native DICOM Model (PS3.19 A.1) from the JSON model."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pharos.dicom.dicom_json import dataset_to_dicom_json
from pharos.dicom.dicom_xml import dicom_xml
from tests.dicomgen import make_dataset


def test_native_model_of_a_dataset() -> None:
    ds = make_dataset(patient_name="Müller^Jürgen^^Dr=山田^太郎", sop_uid="1.2.3")
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.add_new(0x00081140, "SQ", [make_dataset(sop_uid="1.2.4")])  # ReferencedImageSequence
    ds.add_new(0x60003000, "OW", b"\x00" * 2048)
    ds.StudyDescription = "a < b & c\x01"
    node = dataset_to_dicom_json(ds, bulk_data_uri="http://h/dicom-web/x/")
    root = ET.fromstring(dicom_xml(node))
    assert root.tag == "NativeDicomModel"
    attributes = {a.get("tag"): a for a in root.findall("DicomAttribute")}
    assert list(attributes) == sorted(attributes)
    name = attributes["00100010"]
    assert name.get("vr") == "PN" and name.get("keyword") == "PatientName"
    person = name.find("PersonName")
    assert person is not None and person.get("number") == "1"
    assert person.findtext("Alphabetic/FamilyName") == "Müller"
    assert person.findtext("Alphabetic/GivenName") == "Jürgen"
    assert person.findtext("Alphabetic/NamePrefix") == "Dr"
    assert person.findtext("Ideographic/FamilyName") == "山田"
    values = attributes["00080008"].findall("Value")
    assert [(v.get("number"), v.text) for v in values] == [("1", "ORIGINAL"), ("2", "PRIMARY")]
    assert attributes["00280010"].findtext("Value") == "16"  # a number
    assert attributes["00081030"].findtext("Value") == "a < b & c"  # escaped, control dropped
    item = attributes["00081140"].find("Item")
    assert item is not None and item.get("number") == "1"
    nested = {a.get("tag"): a for a in item.findall("DicomAttribute")}
    assert nested["00080018"].findtext("Value") == "1.2.4"
    bulk = attributes["60003000"].find("BulkData")
    assert bulk is not None and bulk.get("uri") == "http://h/dicom-web/x/bulk/60003000"
