"""Storage commitment over real associations: a pynetdicom modality asking Pharos, Pharos asking
it (reports on a new association and on the same one), refusals, and Pharos to Pharos."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from typing import Any

import pytest

from pharos.dicom.storage_commitment import Failure, Reference, parse_report
from tests.conftest import Api, free_port
from tests.dicomgen import make_dicom, make_series
from tests.dimse.commitment_peers import CommitmentPeer
from tests.dimse.peers import dicom_port
from tests.jobs.fakes import wait_for

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"


@pytest.fixture
def backend_config() -> dict[str, object]:
    """These tests are about the network, not the index: SQLite only."""
    return {}


@pytest.fixture
def peer() -> Iterator[CommitmentPeer]:
    created = CommitmentPeer()
    yield created
    created.close()


def started(api_factory: Any, peer: CommitmentPeer, **modality: object) -> Api:
    api: Api = api_factory(DicomModalities={"modality": peer.modality(**modality)})
    peer.pharos_port = dicom_port(api)
    return api


def upload(api: Api, count: int) -> tuple[str, list[Reference]]:
    answers = [api.post("/instances", content=data).json() for data in make_series(count)]
    refs = [
        Reference(CT, api.get(f"/instances/{a['ID']}/simplified-tags").json()["SOPInstanceUID"])
        for a in answers
    ]
    return answers[0]["ParentStudy"], refs


def final_report(api: Api, uid: str) -> dict[str, Any]:
    wait_for(lambda: api.get(f"/storage-commitment/{uid}").json()["Status"] != "Pending", 30)
    return api.get(f"/storage-commitment/{uid}").json()  # type: ignore[no-any-return]


# -- Pharos as SCP ----------------------------------------------------------------------------


def test_scp_reports_stored_missing_and_conflicting(api_factory: Any, peer: CommitmentPeer) -> None:
    api = started(api_factory, peer)
    _, (stored, other) = upload(api, 2)
    missing = Reference(CT, "1.2.826.0.1.3680043.99.1")
    conflicting = Reference(MR, other.sop_instance_uid)
    status = peer.request("2.25.11", [stored, missing, conflicting])
    assert status.Status == 0x0000
    report = peer.report()  # on a new association to the modality's own SCP
    assert report.calling_aet == "ORTHANC"  # the AE title the modality called
    assert (report.event_type, report.transaction_uid) == (2, "2.25.11")
    assert parse_report(report.information)[1:] == (
        [stored],
        [Failure(missing, 0x0112), Failure(conflicting, 0x0119)],
    )
    assert peer.request("2.25.12", [stored, other]).Status == 0x0000
    report = peer.report()
    assert (report.event_type, report.transaction_uid) == (1, "2.25.12")
    assert "FailedSOPSequence" not in report.information


def test_scp_refuses_unknown_and_forbidden_modalities(api_factory: Any) -> None:
    forbidden, stranger = CommitmentPeer("FORBIDDEN"), CommitmentPeer("STRANGER")
    try:
        api: Api = api_factory(
            DicomModalities={"forbidden": forbidden.modality(AllowStorageCommitment=False)}
        )
        for peer in (forbidden, stranger):
            peer.pharos_port = dicom_port(api)
            assert "Status" not in peer.request("2.25.1", [Reference(CT, "1.2.3")])  # aborted
            with pytest.raises(queue.Empty):
                peer.report(timeout=1)
        log = api.server.log()
        assert 'Refused N-ACTION from AET "FORBIDDEN"' in log
        assert 'N-ACTION is not allowed for the modality "forbidden"' in log
        assert (
            'Refused N-ACTION from AET "STRANGER" (127.0.0.1): the AE title "STRANGER" is not '
            "declared in DicomModalities (association aborted)"
        ) in log
    finally:
        forbidden.close()
        stranger.close()


# -- Pharos as SCU ----------------------------------------------------------------------------


def test_scu_failure_report_on_a_new_association(api_factory: Any, peer: CommitmentPeer) -> None:
    peer.verdict = lambda refs: ([], [Failure(ref, 0x0112) for ref in refs])
    api = started(api_factory, peer)
    _, refs = upload(api, 1)
    body = {"DicomInstances": [{"SOPClassUID": CT, "SOPInstanceUID": refs[0].sop_instance_uid}]}
    answer = api.post("/modalities/modality/storage-commitment", json=body)
    assert answer.status_code == 200, answer.text
    uid = answer.json()["ID"]
    assert answer.json() == {"ID": uid, "Path": f"/storage-commitment/{uid}"}
    assert peer.requests == [(uid, refs)]
    assert final_report(api, uid) == {
        "RemoteAET": "MODALITY",
        "Status": "Failure",
        "Success": [],
        "Failures": [
            {
                "SOPClassUID": CT,
                "SOPInstanceUID": refs[0].sop_instance_uid,
                "FailureReason": 274,
                "Description": "One or more of the elements in the Referenced SOP Instance "
                "Sequence was not available",
            }
        ],
    }
    removal = api.post(f"/storage-commitment/{uid}/remove", content=b"")
    assert removal.status_code == 400 and "after failure" in removal.json()["Details"]
    assert len(api.get("/instances").json()) == 1


def test_scu_report_on_the_same_association(api_factory: Any) -> None:
    peer = CommitmentPeer(same_association=True)
    try:
        api = started(api_factory, peer)
        study, _ = upload(api, 2)
        answer = api.post("/modalities/modality/storage-commitment", json={"Resources": [study]})
        uid = answer.json()["ID"]
        report = final_report(api, uid)
        assert report["Status"] == "Success" and len(report["Success"]) == 2
        assert api.post(f"/storage-commitment/{uid}/remove").json() == {}
        assert api.get("/instances").json() == []
    finally:
        peer.close()


def test_report_refused_from_a_modality_without_event_report(api_factory: Any) -> None:
    peer = CommitmentPeer()
    try:
        api = started(api_factory, peer, AllowEventReport=False)
        answer = api.post("/modalities/modality/storage-commitment", json={"DicomInstances": []})
        uid = answer.json()["ID"]
        wait_for(lambda: "Refused N-EVENT-REPORT" in api.server.log(), 30)
        assert api.get(f"/storage-commitment/{uid}").json()["Status"] == "Pending"
    finally:
        peer.close()


# -- Pharos to Pharos -------------------------------------------------------------------------


def test_pharos_to_pharos(api_factory: Any) -> None:
    port_a, port_b = free_port(), free_port()
    a: Api = api_factory(
        DicomAet="PHAROSA",
        DicomPort=port_a,
        DicomModalities={"b": ["PHAROSB", "127.0.0.1", port_b]},
    )
    b: Api = api_factory(
        DicomAet="PHAROSB",
        DicomPort=port_b,
        DicomModalities={"a": ["PHAROSA", "127.0.0.1", port_a]},
    )
    study, _ = upload(a, 3)
    extra = a.post("/instances", content=make_dicom()).json()["ID"]
    answer = a.post("/modalities/b/store", json={"Resources": [study], "StorageCommitment": True})
    assert answer.status_code == 200, answer.text
    content = answer.json()
    uid = content["StorageCommitmentTransactionUID"]
    assert content["InstancesCount"] == 3 and uid.startswith("2.25.")
    report = final_report(a, uid)
    assert (report["Status"], report["RemoteAET"], len(report["Success"])) == (
        "Success",
        "PHAROSB",
        3,
    )
    assert a.post(f"/storage-commitment/{uid}/remove").json() == {}
    assert a.get("/instances").json() == [extra]  # only what was committed is removed
    assert len(b.get("/instances").json()) == 3

    # As a job, the transaction is part of its content.
    body = {"Resources": [extra], "StorageCommitment": True, "Synchronous": False}
    job_id = a.post("/modalities/b/store", json=body).json()["ID"]
    wait_for(lambda: a.get(f"/jobs/{job_id}").json()["State"] == "Success", 30)
    uid = a.get(f"/jobs/{job_id}").json()["Content"]["StorageCommitmentTransactionUID"]
    assert final_report(a, uid)["Status"] == "Success"
