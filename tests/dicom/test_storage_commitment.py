"""The data sets of the Storage Commitment Push Model: built, read back, refused when wrong."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset

from pharos.dicom.storage_commitment import (
    CLASS_INSTANCE_CONFLICT,
    EVENT_FAILURES,
    EVENT_SUCCESS,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    CommitmentFormatError,
    Failure,
    Reference,
    failure_description,
    parse_report,
    parse_request,
    report_dataset,
    request_dataset,
)
from tests.dicomgen import roundtrip

CT = "1.2.840.10008.5.1.4.1.1.2"
A = Reference(CT, "1.2.3.1")
B = Reference(CT, "1.2.3.2")


def test_request_round_trip() -> None:
    dataset = roundtrip(request_dataset("2.25.7", [A, B]))
    assert parse_request(dataset) == ("2.25.7", [A, B])
    assert parse_request(roundtrip(request_dataset("2.25.8", []))) == ("2.25.8", [])


def test_report_of_successes_only() -> None:
    event_type, dataset = report_dataset("2.25.7", [A, B], [])
    assert event_type == EVENT_SUCCESS and "FailedSOPSequence" not in dataset
    assert parse_report(roundtrip(dataset)) == ("2.25.7", [A, B], [])


def test_report_with_failures() -> None:
    failures = [Failure(B, NO_SUCH_OBJECT_INSTANCE), Failure(A, CLASS_INSTANCE_CONFLICT)]
    event_type, dataset = report_dataset("2.25.7", [], failures)
    assert event_type == EVENT_FAILURES
    assert [item.FailureReason for item in dataset.FailedSOPSequence] == [0x0112, 0x0119]
    assert parse_report(roundtrip(dataset)) == ("2.25.7", [], failures)


def test_a_failure_without_reason_is_a_processing_failure() -> None:
    dataset = Dataset()
    dataset.TransactionUID = "2.25.1"
    item = Dataset()
    item.ReferencedSOPClassUID = CT
    item.ReferencedSOPInstanceUID = "1.2.3"
    dataset.FailedSOPSequence = [item]
    assert parse_report(dataset)[2] == [Failure(Reference(CT, "1.2.3"), PROCESSING_FAILURE)]


def _without(keyword: str) -> Dataset:
    dataset = request_dataset("2.25.7", [A])
    delattr(dataset, keyword)
    return dataset


def _bad_item() -> Dataset:
    dataset = request_dataset("2.25.7", [A])
    del dataset.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
    return dataset


@pytest.mark.parametrize(
    ("dataset", "words"),
    [
        (None, "no Action Information"),
        (_without("TransactionUID"), "no Transaction UID"),
        (_without("ReferencedSOPSequence"), "no Referenced SOP Sequence"),
        (_bad_item(), "without Referenced SOP"),
    ],
)
def test_bad_requests(dataset: Dataset | None, words: str) -> None:
    with pytest.raises(CommitmentFormatError, match=words):
        parse_request(dataset)


def test_bad_reports() -> None:
    with pytest.raises(CommitmentFormatError, match="no Event Information"):
        parse_report(None)
    with pytest.raises(CommitmentFormatError, match="no Transaction UID"):
        parse_report(Dataset())


def test_descriptions_are_orthancs() -> None:
    assert failure_description(0x0112).startswith("One or more of the elements")
    assert failure_description(0x0999) == "Unknown failure reason 0x0999"
