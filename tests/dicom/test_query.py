"""C-FIND identifiers read as Orthanc reads them, and the data sets of answers."""

from __future__ import annotations

import io

from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.dsutils import decode, encode

from pharos.dicom.query import (
    QUERY_RETRIEVE_LEVEL,
    answer_element,
    parse_identifier,
    set_answer_charset,
)


def received(dataset: Dataset, implicit: bool = True) -> Dataset:
    """The data set as an SCP gets it: encoded, then decoded with raw elements."""
    data = encode(dataset, implicit, True)
    assert data is not None
    return decode(io.BytesIO(data), implicit, True)


def test_keys_are_read_from_the_raw_elements() -> None:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY "
    query.SpecificCharacterSet = "ISO_IR 100"
    query.PatientName = "Müller*"
    query.StudyDate = "20240101-20240131"
    query.ModalitiesInStudy = ["CT", "MR"]
    query.NumberOfStudyRelatedInstances = None
    query.add_new(0x00080000, "UL", 10)  # a group length: left out
    query.ReferencedStudySequence = Sequence([])
    for implicit in (True, False):
        identifier = parse_identifier(received(query, implicit), "Latin1")
        assert identifier.level == "STUDY"
        keys = {key.tag: key for key in identifier.keys}
        assert set(keys) == {0x00100010, 0x00080020, 0x00080061, 0x00201208, 0x00081110}
        assert keys[0x00100010].value == "Müller*"
        assert keys[0x00080020].value == "20240101-20240131"
        assert keys[0x00080061].value == "CT\\MR"
        assert keys[0x00201208].value == "" and keys[0x00201208].vr == "IS"
        assert keys[0x00081110].is_sequence and keys[0x00081110].value is None


def test_text_without_character_set_uses_the_default_encoding() -> None:
    query = Dataset()
    query.QueryRetrieveLevel = "PATIENT"
    query.add_new(0x00100010, "PN", "Gr\xfcn".encode("latin-1"))
    assert parse_identifier(received(query), "Latin1").value(0x00100010) == "Grün"
    assert parse_identifier(received(query), "Ascii").value(0x00100010) == "Grn"


def test_identifier_without_level() -> None:
    query = Dataset()
    query.PatientID = "P1"
    identifier = parse_identifier(received(query), "Latin1")
    assert identifier.level is None
    assert identifier.value(0x00100020) == "P1"
    assert identifier.value(QUERY_RETRIEVE_LEVEL) is None


def test_answer_elements() -> None:
    assert answer_element(0x00080061, "CS", "CT\\MR").value == ["CT", "MR"]
    assert answer_element(0x00201208, "IS", "12").value == 12
    assert answer_element(0x00280010, "US", "512").value == 512
    assert answer_element(0x00280030, "DS", "not a number").value == ""
    assert answer_element(0x00100010, "PN", None).value == ""
    assert answer_element(0x00280010, "US", None).value is None
    assert answer_element(0x7FE00010, "OB", "ignored").value is None
    assert list(answer_element(0x00081110, "SQ", None).value) == []


def test_answers_use_the_default_encoding_when_they_fit_in_it() -> None:
    answer = Dataset()
    answer.PatientName = "Müller^Jürgen"
    set_answer_charset(answer, "Latin1")
    assert answer.SpecificCharacterSet == "ISO_IR 100"
    encoded = encode(answer, True, True)
    assert encoded is not None and "Müller".encode("latin-1") in encoded


def test_answers_fall_back_to_utf8() -> None:
    answer = Dataset()
    item = Dataset()
    item.PatientName = "Ὀδυσσεύς"
    answer.OtherPatientIDsSequence = Sequence([item])
    set_answer_charset(answer, "Latin1")
    assert answer.SpecificCharacterSet == "ISO_IR 192"
    plain = Dataset()
    plain.PatientName = "Ascii^Only"
    set_answer_charset(plain, "Windows1251")  # several terms needed: UTF-8 instead
    assert plain.SpecificCharacterSet == "ISO_IR 192"
    set_answer_charset(plain, "Ascii")
    assert plain.SpecificCharacterSet == "ISO_IR 6"
