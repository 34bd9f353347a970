"""`POST /studies/{id}/split` and `/merge` end to end on real server processes: synchronous
answers, jobs, Orthanc's error JSON for refused requests, and a job carried over a restart."""

from __future__ import annotations

from typing import Any

from pydicom.uid import generate_uid

from tests.conftest import Api
from tests.dicomgen import make_series
from tests.http.rest.test_jobs import job_of, slow_peer, state_of, wait_state
from tests.jobs.fakes import wait_for


def upload(api: Api, count: int, **kwargs: Any) -> list[dict[str, Any]]:
    answers = []
    for data in make_series(count, **kwargs):
        response = api.post("/instances", content=data)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def instance_count(api: Api) -> int:
    return int(api.get("/statistics").json()["CountInstances"])


def test_split_then_merge_back(api: Api) -> None:
    study_uid = generate_uid()
    first = upload(api, 2, study_uid=study_uid)
    second = upload(api, 1, study_uid=study_uid)
    study, series = first[0]["ParentStudy"], first[0]["ParentSeries"]
    old_uids = {
        api.get(f"/instances/{a['ID']}").json()["MainDicomTags"]["SOPInstanceUID"] for a in first
    }
    body = {"Series": [series], "Replace": {"PatientName": "HELLO"}, "Remove": ["StudyID"]}
    response = api.post(f"/studies/{study}/split", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    target = answer["TargetStudy"]
    assert answer == {
        "Description": "REST API",
        "FailedInstancesCount": 0,
        "InstancesCount": 2,
        "TargetStudy": target,
        "TargetStudyUID": answer["TargetStudyUID"],
    }
    new_study = api.get(f"/studies/{target}").json()
    assert new_study["PatientMainDicomTags"]["PatientName"] == "HELLO"
    assert new_study["MainDicomTags"]["StudyInstanceUID"] == answer["TargetStudyUID"]
    assert "StudyID" not in new_study["MainDicomTags"]
    assert api.get(f"/series/{series}").status_code == 404  # the originals are gone
    assert api.get(f"/studies/{study}").json()["Series"] == [second[0]["ParentSeries"]]

    merged = api.post(f"/studies/{study}/merge", json={"Resources": [target]})
    assert merged.status_code == 200, merged.text
    assert merged.json() == {
        "Description": "REST API",
        "FailedInstancesCount": 0,
        "InstancesCount": 2,
        "TargetStudy": study,
    }
    assert api.get(f"/studies/{target}").status_code == 404
    back = api.get(f"/studies/{study}/instances").json()
    assert len(back) == 3 and instance_count(api) == 3
    assert not {i["MainDicomTags"]["SOPInstanceUID"] for i in back} & old_uids


def test_split_as_a_job(api: Api) -> None:
    answers = upload(api, 3)
    study = answers[0]["ParentStudy"]
    body = {"Instances": [answers[0]["ID"]], "KeepSource": True, "Asynchronous": True}
    job = job_of(api, api.post(f"/studies/{study}/split", json=body))
    assert job["Type"] == "SplitStudy"
    done = wait_state(api, job["ID"], "Success")
    content = done["Content"]
    assert (content["InstancesCount"], content["FailedInstancesCount"]) == (1, 0)
    assert len(api.get(f"/studies/{content['TargetStudy']}/instances").json()) == 1
    assert instance_count(api) == 4  # the source was kept


def test_refused_requests_change_nothing(api: Api) -> None:
    answers = upload(api, 2)
    other = upload(api, 1)
    study, series = answers[0]["ParentStudy"], answers[0]["ParentSeries"]
    cases = [
        ("split", "ffffffff-ffffffff-ffffffff-ffffffff-ffffffff", {"Series": [series]}, 404),
        ("split", study, {}, 400),
        ("split", study, {"Series": []}, 400),
        ("split", study, {"Series": [other[0]["ParentSeries"]]}, 404),
        ("split", study, {"Series": [series], "Remove": ["Modality"]}, 400),
        ("merge", study, {"Resources": [study]}, 404),
        ("merge", study, {"Resources": [series]}, 404),
        ("merge", study, {"Resources": []}, 400),
        ("merge", study, {"Resources": "x"}, 400),
        ("merge", series, {"Resources": [other[0]["ParentStudy"]]}, 404),
    ]
    for route, target, body, status in cases:
        response = api.post(f"/studies/{target}/{route}", json=body)
        assert response.status_code == status, (route, body, response.text)
        error = response.json()
        assert error["HttpStatus"] == status and error["Method"] == "POST"
        assert error["Uri"] == f"/studies/{target}/{route}"
        assert {"HttpError", "Message", "OrthancError", "OrthancStatus"} <= set(error)
    bad_json = api.post(f"/studies/{study}/split", content=b"{not json")
    assert bad_json.status_code == 400
    assert instance_count(api) == 3 and api.get("/jobs").json() == []


def test_merge_job_carried_over_a_restart(api_factory: Any) -> None:
    peer = slow_peer()
    try:
        api: Api = api_factory(
            ConcurrentJobs=1, DicomModalities={"slow": [peer.aet, "127.0.0.1", peer.port]}
        )
        target = upload(api, 12)[0]["ParentStudy"]
        source = upload(api, 3, patient_id="OTHER")[0]["ParentStudy"]
        busy = job_of(api, api.post("/modalities/slow/store", json={
            "Resources": [target], "Asynchronous": True, "Priority": 5}))["ID"]  # fmt: skip
        wait_for(lambda: len(peer.stores) >= 1, timeout=60)
        merge = job_of(api, api.post(f"/studies/{target}/merge", json={
            "Resources": [source], "Asynchronous": True}))  # fmt: skip
        assert (merge["Type"], merge["State"]) == ("MergeStudy", "Pending")
        api.server.stop()  # the merge job waits behind the store job: saved, pending
        api.server.start()
        assert state_of(api, merge["ID"])["Type"] == "MergeStudy"
        done = wait_state(api, merge["ID"], "Success")
        assert done["Content"]["TargetStudy"] == target
        assert wait_state(api, busy, "Success")["State"] == "Success"
        assert len(api.get(f"/studies/{target}/instances").json()) == 15
        assert api.get(f"/studies/{source}").status_code == 404
        patients = api.get("/patients").json()
        assert len(patients) == 1  # the source patient left with its only study
    finally:
        peer.close()
