"""Storage commitment as SCU and SCP, against a recording DicomClient: bodies, reports and their
memory, the checks of the SCP, removal after success, and the store that ends with a request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset

from pharos.dicom.storage_commitment import (
    Failure,
    Reference,
    parse_report,
    parse_request,
    report_dataset,
    request_dataset,
)
from pharos.index.base import Reception
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.jobs import StepStatus, Submission
from pharos.services.commitment_reports import CommitmentReport, CommitmentReports, completed
from pharos.services.deletion import DeletionService
from pharos.services.dicom_client import Association, ReceivedReport
from pharos.services.dicom_jobs import DicomJobs
from pharos.services.dicom_retrieve import RetrieveService
from pharos.services.files import FileService
from pharos.services.remote_queries import QueryArchive, QueryService
from pharos.services.storage_commitment import StorageCommitmentService
from pharos.storage.filesystem import FileSystemStorage
from tests.dicomgen import make_dicom
from tests.services.test_remote_dicom import RecordingClient, World

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"


class CommitmentClient(RecordingClient):
    """Also records storage commitment requests and reports; answers a request at once on
    its association when `answer` is set (as a peer reporting on the same association)."""

    def __init__(self) -> None:
        super().__init__()
        self.answer: tuple[int, Dataset] | None = None
        self.answered: list[int] = []

    def request_commitment(
        self, association: Association, information: Dataset, received: ReceivedReport
    ) -> None:
        self._record("request_commitment", association, information)
        if self.answer is not None:
            self.answered.append(received(association.modality.aet, *self.answer))

    def report_commitment(
        self, association: Association, event_type: int, information: Dataset
    ) -> None:
        self._record("report_commitment", association, (event_type, information))


class Commitment(World):
    def __init__(self, tmp_path: Path):
        super().__init__(tmp_path)
        self.client = CommitmentClient()
        files = FileService(self.index, FileSystemStorage(tmp_path / "files"))
        retrieve = RetrieveService(self.index, files)
        self.service = StorageCommitmentService(
            self.registry,
            self.client,
            self.index,
            retrieve,
            DeletionService(self.index, FileSystemStorage(tmp_path / "files")),
            dicom_aet="PHAROS",
            reports_size=3,
        )
        self.remote._commitment = self.service
        self.remote.client = self.client
        self.jobs = DicomJobs(self.remote, QueryService(self.remote, QueryArchive(3)))

    def stored(self, count: int = 2) -> tuple[str, list[Reference]]:
        results = [
            self.store.store(
                make_dicom(study_uid="1.2.3", series_uid="1.2.3.4", sop_uid=f"1.2.3.4.{i}"),
                Reception("RestApi"),
            )
            for i in range(count)
        ]
        return results[0].ids.study, [Reference(CT, f"1.2.3.4.{i}") for i in range(count)]

    def close(self) -> None:
        self.service.close()
        super().close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Commitment]:
    created = Commitment(tmp_path)
    yield created
    created.close()


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def error_of(call: Any, *args: Any) -> PharosError:
    with pytest.raises(PharosError) as info:
        call(*args)
    return info.value


def sent_request(world: Commitment, index: int = -1) -> tuple[str, list[Reference]]:
    what, _, information = world.client.calls[index]
    assert what == "request_commitment"
    return parse_request(information)


# -- the reports kept -------------------------------------------------------------------------


def test_reports_drop_the_least_recently_used() -> None:
    reports = CommitmentReports(2)
    for uid in ("a", "b"):
        reports.put(uid, CommitmentReport("X"))
    assert reports.get("a") is not None  # "b" is now the least recently used
    reports.put("c", CommitmentReport("X"))
    assert reports.get("b") is None and len(reports) == 2
    unlimited = CommitmentReports(0)
    for n in range(150):
        unlimited.put(str(n), CommitmentReport("X"))
    assert len(unlimited) == 150


def test_report_json_is_orthancs() -> None:
    assert CommitmentReport("PACS").to_json() == {"RemoteAET": "PACS", "Status": "Pending"}
    ref = Reference(CT, "1.2")
    assert completed("PACS", [ref], []).to_json() == {
        "RemoteAET": "PACS",
        "Status": "Success",
        "Success": [{"SOPClassUID": CT, "SOPInstanceUID": "1.2"}],
        "Failures": [],
    }
    failed = completed("PACS", [], [Failure(ref, 0x0112)]).to_json()
    assert failed["Status"] == "Failure" and failed["Success"] == []
    assert failed["Failures"] == [
        {
            "SOPClassUID": CT,
            "SOPInstanceUID": "1.2",
            "FailureReason": 274,
            "Description": "One or more of the elements in the Referenced SOP Instance "
            "Sequence was not available",
        }
    ]


# -- SCU: the request -------------------------------------------------------------------------


def test_request_names_the_instances_given(world: Commitment) -> None:
    study, refs = world.stored()
    answer = world.service.request(
        "pacs",
        body(
            {
                "DicomInstances": [
                    {"SOPClassUID": MR, "SOPInstanceUID": "9.9.1"},
                    [MR, "9.9.2"],
                ],
                "Resources": [study],
                "Timeout": 4,
            }
        ),
    )
    uid = answer["ID"]
    assert uid.startswith("2.25.") and answer["Path"] == f"/storage-commitment/{uid}"
    assert sent_request(world) == (uid, [*refs, Reference(MR, "9.9.1"), Reference(MR, "9.9.2")])
    association = world.client.calls[-1][1]
    assert (association.modality.aet, association.local_aet, association.timeout) == (
        "PACS",
        "MINE",
        4.0,
    )
    assert world.service.report(uid) == {"RemoteAET": "PACS", "Status": "Pending"}


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b"[]", ErrorCode.BAD_FILE_FORMAT, "JSON object"),
        (body({}), ErrorCode.BAD_FILE_FORMAT, "one of these fields is mandatory"),
        (body({"DicomInstances": "x"}), ErrorCode.BAD_FILE_FORMAT, "array"),
        (body({"DicomInstances": [{"SOPClassUID": CT}]}), ErrorCode.BAD_FILE_FORMAT, "Each of"),
        (body({"DicomInstances": [[CT]]}), ErrorCode.BAD_FILE_FORMAT, "Each of"),
        (body({"DicomInstances": [[CT, "x.y"]]}), ErrorCode.BAD_FILE_FORMAT, "Not a DICOM UID"),
        (body({"DicomInstances": [[CT, ""]]}), ErrorCode.BAD_FILE_FORMAT, "Not a DICOM UID"),
        (body({"Resources": [1]}), ErrorCode.BAD_FILE_FORMAT, "list of resource IDs"),
        (body({"Resources": ["0" * 8]}), ErrorCode.UNKNOWN_RESOURCE, "Unknown resource"),
        (body({"Resources": [], "Timeout": "1"}), ErrorCode.BAD_FILE_FORMAT, "Timeout"),
    ],
)  # fmt: skip
def test_bad_requests_send_nothing(
    world: Commitment, raw: bytes, code: ErrorCode, words: str
) -> None:
    error = error_of(world.service.request, "pacs", raw)
    assert error.code is code and words in (error.details or "")
    assert world.client.calls == [] and len(world.service.reports) == 0


def test_unknown_modality(world: Commitment) -> None:
    error = error_of(world.service.request, "nope", body({"DicomInstances": []}))
    assert error.code is ErrorCode.INEXISTENT_ITEM and world.client.calls == []


def test_a_failed_request_leaves_no_report(world: Commitment) -> None:
    world.client.failure = PharosError(ErrorCode.NETWORK_PROTOCOL, "refused")
    error = error_of(world.service.request, "pacs", body({"DicomInstances": [[CT, "1.2"]]}))
    assert error.code is ErrorCode.NETWORK_PROTOCOL and len(world.service.reports) == 0


# -- SCU: the report --------------------------------------------------------------------------


def test_report_on_the_same_association(world: Commitment) -> None:
    _, refs = world.stored()
    uid = world.service.request("pacs", body({"DicomInstances": [[CT, "1.2.3.4.0"]]}))["ID"]
    world.client.answer = report_dataset(uid, refs[:1], [])
    uid2 = world.service.commit(world.service._association(world.registry.require("pacs")), [])
    assert world.service.report(uid2)["Status"] == "Pending"  # that answer was another's
    assert world.client.answered == [0]
    assert world.service.report(uid)["Status"] == "Success"


def test_received_reports(world: Commitment) -> None:
    ref = Reference(CT, "1.2")
    _, information = report_dataset("2.25.5", [], [Failure(ref, 0x0119)])
    assert world.service.received("PACS", 2, information) == 0
    report = world.service.report("2.25.5")  # kept even unasked, as Orthanc
    assert report["Status"] == "Failure" and report["Failures"][0]["FailureReason"] == 0x0119
    assert world.service.received("PACS", 3, information) == 0x0113
    assert world.service.received("PACS", 1, Dataset()) == 0x0115
    assert world.service.received("PACS", 1, None) == 0x0115


def test_unknown_report(world: Commitment) -> None:
    assert error_of(world.service.report, "2.25.404").code is ErrorCode.INEXISTENT_ITEM
    assert error_of(world.service.remove, "2.25.404").code is ErrorCode.INEXISTENT_ITEM


def test_remove_only_after_success(world: Commitment) -> None:
    _, refs = world.stored(3)
    instances = [[CT, ref.sop_instance_uid] for ref in refs]
    uid = world.service.request("pacs", body({"DicomInstances": instances}))["ID"]
    error = error_of(world.service.remove, uid)  # still pending
    assert error.code is ErrorCode.BAD_SEQUENCE_OF_CALLS
    world.service.received("PACS", 2, report_dataset(uid, refs[:2], [Failure(refs[2], 0x0112)])[1])
    assert error_of(world.service.remove, uid).code is ErrorCode.BAD_SEQUENCE_OF_CALLS
    assert world.index.statistics().instances == 3
    world.service.received("PACS", 1, report_dataset(uid, refs[:2], [])[1])
    assert world.service.remove(uid) == {}
    assert world.index.statistics().instances == 1  # the third was not committed
    assert world.service.remove(uid) == {}  # again: nothing left to remove


# -- SCP --------------------------------------------------------------------------------------


def test_check_finds_stored_missing_and_conflicting(world: Commitment) -> None:
    _, refs = world.stored()
    missing = Reference(CT, "7.7.7")
    conflict = Reference(MR, refs[1].sop_instance_uid)
    successes, failures = world.service.check([refs[0], missing, conflict])
    assert successes == [refs[0]]
    assert failures == [Failure(missing, 0x0112), Failure(conflict, 0x0119)]


def test_requested_reports_to_the_modality(world: Commitment) -> None:
    _, refs = world.stored(1)
    missing = Reference(CT, "7.7.7")
    uid = world.service.requested("pacs", "CALLED", request_dataset("2.25.9", [refs[0], missing]))
    world.service.close()  # waits for the report to be sent
    assert uid == "2.25.9"
    what, association, (event_type, information) = world.client.calls[-1]
    assert what == "report_commitment" and event_type == 2
    assert (association.modality.aet, association.local_aet) == ("PACS", "CALLED")
    assert parse_report(information) == ("2.25.9", refs, [Failure(missing, 0x0112)])


def test_requested_by_an_unknown_modality(world: Commitment) -> None:
    error = error_of(world.service.requested, "STRANGER", "CALLED", request_dataset("2.25.9", []))
    assert error.code is ErrorCode.INEXISTENT_ITEM and "STRANGER" in (error.details or "")


# -- C-STORE with StorageCommitment -----------------------------------------------------------


def test_store_then_commit(world: Commitment) -> None:
    study, refs = world.stored()
    world.client.refused = {refs[1].sop_instance_uid}
    answer = world.remote.store(
        "pacs", body({"Resources": [study], "StorageCommitment": True, "Permissive": True})
    )
    uid = answer["StorageCommitmentTransactionUID"]
    assert (answer["InstancesCount"], answer["FailedInstancesCount"]) == (2, 1)
    assert sent_request(world) == (uid, refs[:1])  # the instances the peer stored
    world.client.refused = set()
    assert "StorageCommitmentTransactionUID" not in world.remote.store("pacs", body([study]))


def test_store_job_commits_at_its_end(world: Commitment) -> None:
    study, refs = world.stored()
    submission = world.jobs.store(
        "pacs", body({"Resources": [study], "StorageCommitment": True, "Synchronous": False})
    )
    assert isinstance(submission, Submission)
    job: Any = submission.job
    uid = job.public_content()["StorageCommitmentTransactionUID"]
    job.step()
    saved = job.serialize()
    job = world.jobs.store_job(json.loads(json.dumps(saved)))  # resumed after a restart
    while job.step().status is not StepStatus.SUCCESS:
        pass
    assert sent_request(world) == (uid, refs)
    job.reset()  # a transaction UID is never reused
    assert job.public_content()["StorageCommitmentTransactionUID"] != uid
