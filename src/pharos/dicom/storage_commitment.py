"""The data sets of the Storage Commitment Push Model (PS3.4 annex J): the Action Information
of the N-ACTION request and the Event Information of the N-EVENT-REPORT that answers it.

Both hold a Transaction UID and a Referenced SOP Sequence of (SOP class, SOP instance) pairs;
the report adds a Failed SOP Sequence whose items carry a Failure Reason (PS3.3 C.14.1.1).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import UID

STORAGE_COMMITMENT_PUSH_MODEL = "1.2.840.10008.1.20.1"
# The well-known SOP instance of the Push Model, named by both requests (PS3.4 J.3.5).
STORAGE_COMMITMENT_INSTANCE = "1.2.840.10008.1.20.1.1"
REQUEST_STORAGE_COMMITMENT = 1  # N-ACTION Action Type ID
EVENT_SUCCESS = 1  # N-EVENT-REPORT Event Type ID: "Storage Commitment Request Successful"
EVENT_FAILURES = 2  # "Storage Commitment Request Complete - Failures Exist"

# Failure Reasons (PS3.3 C.14.1.1), with the descriptions Orthanc reports.
PROCESSING_FAILURE = 0x0110
NO_SUCH_OBJECT_INSTANCE = 0x0112
CLASS_INSTANCE_CONFLICT = 0x0119
REFERENCED_SOP_CLASS_NOT_SUPPORTED = 0x0122
DUPLICATE_TRANSACTION_UID = 0x0131
RESOURCE_LIMITATION = 0x0213
FAILURE_DESCRIPTIONS = {
    PROCESSING_FAILURE: "A general failure in processing the operation was encountered",
    NO_SUCH_OBJECT_INSTANCE: (
        "One or more of the elements in the Referenced SOP Instance Sequence was not available"
    ),
    RESOURCE_LIMITATION: (
        "The SCP does not currently have enough resources to store the requested SOP Instance(s)"
    ),
    REFERENCED_SOP_CLASS_NOT_SUPPORTED: (
        "Storage Commitment has been requested for a SOP Instance with a SOP Class that is "
        "not supported by the SCP"
    ),
    CLASS_INSTANCE_CONFLICT: (
        "The SOP Class of an element in the Referenced SOP Instance Sequence did not "
        "correspond to the SOP class registered for this SOP Instance at the SCP"
    ),
    DUPLICATE_TRANSACTION_UID: (
        "The Transaction UID of the Storage Commitment Request is already in use"
    ),
}


class CommitmentFormatError(ValueError):
    """A Storage Commitment data set that cannot be read (the reason in the message)."""


@dataclass(frozen=True, slots=True)
class Reference:
    sop_class_uid: str
    sop_instance_uid: str


@dataclass(frozen=True, slots=True)
class Failure:
    reference: Reference
    reason: int  # a Failure Reason


def failure_description(reason: int) -> str:
    return FAILURE_DESCRIPTIONS.get(reason, f"Unknown failure reason 0x{reason:04X}")


def request_dataset(transaction_uid: str, references: Sequence[Reference]) -> Dataset:
    """The Action Information of an N-ACTION asking to commit `references`."""
    dataset = Dataset()
    dataset.TransactionUID = UID(transaction_uid)
    dataset.ReferencedSOPSequence = [_item(ref) for ref in references]
    return dataset


def parse_request(dataset: Dataset | None) -> tuple[str, list[Reference]]:
    """The Transaction UID and the references of an N-ACTION's Action Information."""
    if dataset is None:
        raise CommitmentFormatError("no Action Information")
    uid = _transaction_uid(dataset)
    if "ReferencedSOPSequence" not in dataset:
        raise CommitmentFormatError("no Referenced SOP Sequence")
    return uid, [_reference(item) for item in dataset.ReferencedSOPSequence]


def report_dataset(
    transaction_uid: str, successes: Sequence[Reference], failures: Sequence[Failure]
) -> tuple[int, Dataset]:
    """The Event Type ID and Event Information of the N-EVENT-REPORT of a transaction."""
    dataset = Dataset()
    dataset.TransactionUID = UID(transaction_uid)
    dataset.ReferencedSOPSequence = [_item(ref) for ref in successes]
    if not failures:
        return EVENT_SUCCESS, dataset
    items = []
    for failure in failures:
        item = _item(failure.reference)
        item.FailureReason = failure.reason
        items.append(item)
    dataset.FailedSOPSequence = items
    return EVENT_FAILURES, dataset


def parse_report(dataset: Dataset | None) -> tuple[str, list[Reference], list[Failure]]:
    """The Transaction UID, successes and failures of an N-EVENT-REPORT's Event Information
    (either sequence may be absent)."""
    if dataset is None:
        raise CommitmentFormatError("no Event Information")
    uid = _transaction_uid(dataset)
    successes = [_reference(item) for item in dataset.get("ReferencedSOPSequence") or []]
    failures = []
    for item in dataset.get("FailedSOPSequence") or []:
        reason = item.get("FailureReason")
        if reason is None or not isinstance(reason, int):
            reason = PROCESSING_FAILURE  # required, but its absence is no reason to lose the rest
        failures.append(Failure(_reference(item), int(reason)))
    return uid, successes, failures


def _item(reference: Reference) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = UID(reference.sop_class_uid)
    item.ReferencedSOPInstanceUID = UID(reference.sop_instance_uid)
    return item


def _transaction_uid(dataset: Dataset) -> str:
    try:
        uid = str(dataset.get("TransactionUID") or "").strip()
    except Exception as exc:  # undecodable element
        raise CommitmentFormatError(f"unreadable Transaction UID: {exc}") from None
    if not uid:
        raise CommitmentFormatError("no Transaction UID")
    return uid


def _reference(item: Dataset) -> Reference:
    try:
        sop_class = str(item.get("ReferencedSOPClassUID") or "").strip()
        sop_instance = str(item.get("ReferencedSOPInstanceUID") or "").strip()
    except Exception as exc:
        raise CommitmentFormatError(f"unreadable reference: {exc}") from None
    if not sop_class or not sop_instance:
        raise CommitmentFormatError(
            "a reference without Referenced SOP Class UID or Referenced SOP Instance UID"
        )
    return Reference(sop_class, sop_instance)
