"""`/jobs` and the asynchronous DICOM operations, end to end on real server processes: a
store job to dcmtk's storescp, a slow store job paused, resumed and carried over server
restarts, C-MOVE and C-GET jobs, and the errors of the jobs routes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pynetdicom.events import Event

from tests.conftest import Api, free_port
from tests.dicomgen import make_dicom, make_series
from tests.dimse.peers import ScriptedPeer, StoreScp, requires_dcmtk
from tests.http.rest.test_queries import ForkingQrScp
from tests.jobs.fakes import wait_for


def upload_series(api: Api, count: int) -> tuple[str, list[str]]:
    answers = [api.post("/instances", content=data).json() for data in make_series(count)]
    return answers[0]["ParentStudy"], [a["ID"] for a in answers]


def job_of(api: Api, response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    submitted = response.json()
    assert set(submitted) == {"ID", "Path"} and submitted["Path"] == f"/jobs/{submitted['ID']}"
    return api.get(submitted["Path"]).json()


def state_of(api: Api, job_id: str) -> dict[str, Any]:
    response = api.get(f"/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def wait_state(api: Api, job_id: str, state: str) -> dict[str, Any]:
    wait_for(lambda: state_of(api, job_id)["State"] == state, timeout=60)
    return state_of(api, job_id)


@requires_dcmtk
def test_store_job_to_storescp(api: Api, tmp_path: Path) -> None:
    study, instances = upload_series(api, 5)
    with StoreScp(tmp_path / "received") as peer:
        api.put("/modalities/peer", json=peer.modality()).raise_for_status()
        body = {"Resources": [study], "Synchronous": False, "Priority": 5}
        job = job_of(api, api.post("/modalities/peer/store", json=body))
        assert (job["Type"], job["Priority"]) == ("DicomModalityStore", 5)
        done = wait_state(api, job["ID"], "Success")
        assert len(peer.received()) == 5
    assert (done["Progress"], done["ErrorCode"], done["ErrorDescription"]) == (100, 0, "Success")
    assert "CompletionTime" in done and done["EffectiveRuntime"] >= 0
    assert done["Content"] == {
        "Description": "REST API",
        "FailedInstancesCount": 0,
        "InstancesCount": 5,
        "LocalAet": "ORTHANC",
        "ParentResources": [study],
        "RemoteAet": "STORESCP",
    }
    assert api.get("/jobs").json() == [job["ID"]]
    expanded = api.get("/jobs", params={"expand": ""}).json()
    assert [j["ID"] for j in expanded] == [job["ID"]] and expanded[0]["State"] == "Success"
    # finished: no output, cannot be paused, resumed or cancelled
    assert api.get(f"/jobs/{job['ID']}/archive").status_code == 404
    for action in ("pause", "resume", "cancel", "resubmit"):
        refused = api.post(f"/jobs/{job['ID']}/{action}")
        assert refused.status_code == 400, (action, refused.text)
        assert refused.json()["OrthancStatus"] == 6  # BadSequenceOfCalls
    assert len(instances) == 5


def slow_peer() -> ScriptedPeer:
    def store(_event: Event) -> int:
        time.sleep(0.15)  # a slow peer: the job is still running when the test acts
        return 0x0000

    return ScriptedPeer(aet="SLOW", store=store)


def test_store_job_paused_resumed_and_carried_over_restarts(
    api_factory: Any,
) -> None:
    peer = slow_peer()
    try:
        api: Api = api_factory(DicomModalities={"slow": [peer.aet, "127.0.0.1", peer.port]})
        study, instances = upload_series(api, 24)
        job_id = job_of(api, api.post("/modalities/slow/store", json={
            "Resources": [study], "Asynchronous": True}))["ID"]  # fmt: skip
        wait_for(lambda: len(peer.stores) >= 2, timeout=60)
        assert api.post(f"/jobs/{job_id}/pause").json() == {}
        paused = wait_state(api, job_id, "Paused")
        assert 0 < paused["Progress"] < 100
        sent = len(peer.stores)

        api.server.stop()  # a paused job stays paused across a restart
        api.server.start()
        again = state_of(api, job_id)
        assert (again["State"], again["Progress"]) == ("Paused", paused["Progress"])
        assert len(peer.stores) == sent
        assert api.post(f"/jobs/{job_id}/resume").json() == {}
        wait_for(lambda: len(peer.stores) >= sent + 2, timeout=60)

        api.server.stop()  # running: stopped after its step, pending after the restart
        api.server.start()
        done = wait_state(api, job_id, "Success")
        assert done["Content"]["InstancesCount"] == 24
        assert done["Content"]["FailedInstancesCount"] == 0
        received = {uid for _, _, _, uid in peer.stores}
        expected = {api.get(f"/instances/{i}").json()["MainDicomTags"]["SOPInstanceUID"]
                    for i in instances}  # fmt: skip
        assert received == expected
    finally:
        peer.close()


def test_cancel_and_resubmit_through_rest(api_factory: Any) -> None:
    peer = slow_peer()
    try:
        api: Api = api_factory(DicomModalities={"slow": [peer.aet, "127.0.0.1", peer.port]})
        study, _ = upload_series(api, 12)
        job_id = job_of(api, api.post("/modalities/slow/store", json={
            "Resources": [study], "Synchronous": False}))["ID"]  # fmt: skip
        wait_for(lambda: len(peer.stores) >= 1, timeout=60)
        assert api.post(f"/jobs/{job_id}/cancel").json() == {}
        cancelled = wait_state(api, job_id, "Failure")
        assert (cancelled["ErrorCode"], cancelled["ErrorDescription"]) == (
            37,
            "This job was canceled",
        )
        assert api.post(f"/jobs/{job_id}/resume").status_code == 400
        assert api.post(f"/jobs/{job_id}/resubmit").json() == {}
        done = wait_state(api, job_id, "Success")
        assert done["Content"]["InstancesCount"] == 12 and done["ErrorCode"] == 0
    finally:
        peer.close()


def test_failed_store_job_details(api_factory: Any) -> None:
    peer = ScriptedPeer(aet="PICKY", store=lambda _event: 0xA700)  # out of resources
    try:
        api: Api = api_factory(DicomModalities={"picky": [peer.aet, "127.0.0.1", peer.port]})
        study, _ = upload_series(api, 2)
        job_id = job_of(api, api.post("/modalities/picky/store", json={
            "Resources": [study], "Synchronous": False}))["ID"]  # fmt: skip
        failed = wait_state(api, job_id, "Failure")
        assert failed["ErrorCode"] == 9 and "not stored by the peer" in failed["ErrorDetails"]
        permissive = job_of(api, api.post("/modalities/picky/store", json={
            "Resources": [study], "Synchronous": False, "Permissive": True}))  # fmt: skip
        done = wait_state(api, permissive["ID"], "Success")
        assert done["Content"]["FailedInstancesCount"] == 2
    finally:
        peer.close()


def test_move_jobs(api_factory: Any) -> None:
    moves: list[str] = []

    def move(event: Event) -> Any:
        moves.append(str(event.identifier.StudyInstanceUID))
        yield "127.0.0.1", 1  # the destination is not contacted: nothing matches
        yield 0

    peer = ScriptedPeer(aet="QR", move=move)
    try:
        api: Api = api_factory(DicomModalities={"qr": [peer.aet, "127.0.0.1", peer.port]})
        body = {
            "Level": "Study",
            "Resources": [{"StudyInstanceUID": "1.2.3"}, {"StudyInstanceUID": "1.2.4"}],
            "TargetAet": "ELSEWHERE",
            "Synchronous": False,
        }
        job = job_of(api, api.post("/modalities/qr/move", json=body))
        assert job["Type"] == "DicomMoveScu"
        done = wait_state(api, job["ID"], "Success")
        assert moves == ["1.2.3", "1.2.4"]
        content = done["Content"]
        assert (content["RemoteAet"], content["TargetAet"], content["LocalAet"]) == (
            "QR",
            "ELSEWHERE",
            "ORTHANC",
        )
        assert [q["0020,000d"] for q in content["Query"]] == ["1.2.3", "1.2.4"]
    finally:
        peer.close()


def test_jobs_bad_requests(api_factory: Any) -> None:
    api: Api = api_factory(DicomModalities={"x": ["X", "127.0.0.1", 1]})
    for method, path in (
        ("GET", "/jobs/nope"),
        ("POST", "/jobs/nope/pause"),
        ("POST", "/jobs/nope/resume"),
        ("POST", "/jobs/nope/cancel"),
        ("POST", "/jobs/nope/resubmit"),
        ("GET", "/jobs/nope/archive"),
    ):
        response = api.request(method, path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["OrthancStatus"] == 7  # InexistentItem
    unknown = "0" * 8 + ("-" + "0" * 8) * 4
    for bad, status in (
        ({"Resources": [unknown], "Synchronous": False}, 404),
        ({"Resources": [], "Synchronous": False, "Priority": "high"}, 400),
        ({"Resources": [], "Synchronous": "no"}, 400),
    ):
        response = api.post("/modalities/x/store", json=bad)
        assert response.status_code == status, (bad, response.text)
    assert (
        api.post("/modalities/nope/store", json={"Resources": [], "Synchronous": False}).status_code
        == 404
    )
    assert api.get("/jobs").json() == []  # no job was created
    # a job to an unreachable peer fails with the network error in its details
    body = {"Level": "Study", "Resources": [{"StudyInstanceUID": "1"}], "Synchronous": False}
    job = job_of(api, api.post("/modalities/x/move", json=body))
    failed = wait_state(api, job["ID"], "Failure")
    assert failed["ErrorCode"] == 9 and failed["ErrorDetails"]


@pytest.mark.parametrize("option", [{"SaveJobs": False}, {"JobsHistorySize": 1}])
def test_jobs_options(api_factory: Any, option: dict[str, Any]) -> None:
    api: Api = api_factory(DicomModalities={"x": ["X", "127.0.0.1", 1]}, **option)
    body = {"Level": "Study", "Resources": [{"StudyInstanceUID": "1"}], "Synchronous": False}
    ids = [job_of(api, api.post("/modalities/x/move", json=body))["ID"] for _ in range(2)]
    wait_for(lambda: all(j["State"] == "Failure" for j in api.get("/jobs?expand").json()))
    if "JobsHistorySize" in option:
        assert api.get("/jobs").json() == ids[1:]
    else:
        api.server.stop()
        api.server.start()
        assert api.get("/jobs").json() == []  # not saved


@requires_dcmtk
def test_retrieve_and_get_jobs_with_dcmqrscp(api_factory: Any, tmp_path: Path) -> None:
    port = free_port()
    files = []
    for i in range(2):
        path = tmp_path / f"{i}.dcm"
        path.write_bytes(make_dicom(patient_id="PAT1", study_uid="1.2.3", instance_number=i))
        files.append(path)
    with ForkingQrScp(tmp_path / "qr", {"ORTHANC": port}) as qr:
        qr.store(files)
        api: Api = api_factory(DicomPort=port, DicomModalities={"qr": qr.modality()})
        query = api.post("/modalities/qr/query", json={"Level": "Study", "Query": {}}).json()
        retrieve = {"TargetAet": "ORTHANC", "Synchronous": False, "Priority": 2}
        job = job_of(api, api.post(f"{query['Path']}/retrieve", json=retrieve))
        assert (job["Type"], job["Priority"]) == ("DicomMoveScu", 2)
        done = wait_state(api, job["ID"], "Success")
        assert done["Content"]["TargetAet"] == "ORTHANC"
        assert done["Content"]["Query"][0]["0020,000d"] == "1.2.3"
        assert len(api.get("/instances").json()) == 2
        for instance in api.get("/instances").json():
            assert api.delete(f"/instances/{instance}").status_code == 200
        body = {
            "Level": "Study",
            "Resources": [{"StudyInstanceUID": "1.2.3"}],
            "Asynchronous": True,
        }
        job = job_of(api, api.post("/modalities/qr/get", json=body))
        assert job["Type"] == "DicomGetScu"
        done = wait_state(api, job["ID"], "Success")
        assert set(done["Content"]) == {"Description", "LocalAet", "Query", "RemoteAet"}
        assert len(api.get("/instances").json()) == 2
