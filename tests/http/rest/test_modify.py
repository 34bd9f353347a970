"""/modify, /anonymize and /tools/bulk-* on a real server: Orthanc's answers, the modified
file of an instance, metadata, jobs, and bad requests that change nothing.

One SQLite server serves most of the module; one end-to-end test runs on both backends."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest

from tests.conftest import Api, ServerProcess
from tests.dicomgen import make_dicom, make_series
from tests.jobs.fakes import wait_for


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = ServerProcess(tmp_path_factory.mktemp("modify"), {}).start()
    try:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            yield http
    finally:
        server.stop()


def upload(client: Any, **tags: Any) -> dict[str, Any]:
    response = client.post("/instances", content=make_dicom(**tags))
    assert response.status_code == 200, response.text
    return dict(response.json())


def counts(client: Any) -> tuple[int, int]:
    stats = client.get("/statistics").json()
    return stats["CountInstances"], stats["CountStudies"]


def test_modify_instance_answers_the_file(client: httpx.Client) -> None:
    stored = upload(client, patient_id="FILE")
    before = counts(client)
    response = client.post(
        f"/instances/{stored['ID']}/modify", json={"Replace": {"PatientName": "New^Name"}}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom"
    ds = pydicom.dcmread(io.BytesIO(response.content))
    assert ds.PatientName == "New^Name"
    assert counts(client) == before  # nothing stored
    response = client.post(f"/instances/{stored['ID']}/anonymize", content=b"")
    ds = pydicom.dcmread(io.BytesIO(response.content))
    assert ds.PatientID != "FILE" and ds.PatientIdentityRemoved == "YES"


def test_anonymize_study_answer_and_metadata(client: httpx.Client) -> None:
    stored = upload(client, patient_id="META")
    study = stored["ParentStudy"]
    response = client.post(f"/studies/{study}/anonymize", json={"Keep": ["StudyDescription"]})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert set(answer) == {"ID", "Path", "PatientID", "Type"} and answer["Type"] == "Study"
    new = client.get(answer["Path"]).json()
    assert new["ParentPatient"] == answer["PatientID"]
    assert new["MainDicomTags"]["StudyDescription"] == "Chest"
    metadata = client.get(f"{answer['Path']}/metadata/AnonymizedFrom")
    assert metadata.status_code == 200 and metadata.text == study
    assert client.get(f"/studies/{study}").status_code == 200  # KeepSource: true


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b"{bad json", 400),
        (b'{"Replace": {"NoSuchTag": "1"}}', 400),
        (b'{"Replace": {"PatientID": "1"}}', 400),
        (b'{"Remove": ["SOPInstanceUID"]}', 400),
        (b'{"Replace": {"PatientName": ["x"]}}', 400),
        (b'{"KeepSource": false, "Replace": {"Rows": "x"}}', 400),
    ],
)
def test_bad_requests_change_nothing(client: httpx.Client, content: bytes, status: int) -> None:
    stored = upload(client, patient_id="BAD")
    before = counts(client)
    for path in (f"/series/{stored['ParentSeries']}/modify", "/tools/bulk-modify"):
        response = client.post(path, content=content)
        assert response.status_code == status, response.text
        assert response.json()["HttpStatus"] == status
    assert counts(client) == before


def test_unknown_resource(client: httpx.Client) -> None:
    response = client.post("/studies/00000000-00000000-00000000-00000000-00000000/modify")
    assert response.status_code == 404


def test_bulk_anonymize(client: httpx.Client) -> None:
    one = upload(client, patient_id="BULK1")
    two = upload(client, patient_id="BULK2")
    body = {"Resources": [one["ParentStudy"], two["ID"]], "Replace": {"InstitutionName": "X"}}
    response = client.post("/tools/bulk-anonymize", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["IsAnonymization"] is True and answer["InstancesCount"] == 2
    assert [r["Type"] for r in answer["Resources"]] == ["Instance", "Instance"]
    body["Level"] = "Study"
    answer = client.post("/tools/bulk-anonymize", json=body).json()
    assert [r["Type"] for r in answer["Resources"]] == ["Study", "Study"]


def test_modification_job_on_both_backends(api: Api) -> None:
    stored = upload(api, patient_id="JOB")
    body = {"Replace": {"StudyDescription": "Job"}, "Asynchronous": True, "Priority": 3}
    response = api.post(f"/studies/{stored['ParentStudy']}/modify", json=body)
    assert response.status_code == 200, response.text
    job_id = response.json()["ID"]
    wait_for(lambda: api.get(f"/jobs/{job_id}").json()["State"] == "Success", timeout=60)
    job = api.get(f"/jobs/{job_id}").json()
    assert (job["Type"], job["Priority"]) == ("ResourceModification", 3)
    content = job["Content"]
    assert content["Type"] == "Study" and content["IsAnonymization"] is False
    study = api.get(content["Path"]).json()
    assert study["MainDicomTags"]["StudyDescription"] == "Job"
    keep = {"Replace": {"StudyDescription": "Moved"}, "KeepSource": False}
    moved = api.post(content["Path"] + "/modify", json=keep).json()
    assert api.get(content["Path"]).status_code == 404
    assert api.get(moved["Path"]).status_code == 200
    modified_from = api.get(moved["Path"] + "/metadata/ModifiedFrom").text
    assert modified_from == content["ID"]


SLOW_STORE_PLUGIN = """
import time
from pharos.plugins import hookimpl

@hookimpl
def pharos_incoming_instance_filter(instance):
    if instance.simplified_tags.get("StudyDescription") == "Slowed":
        time.sleep(0.2)  # the copies the modification job stores come in slowly
    return True
"""


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_modification_job_survives_a_restart(api_factory: Any, tmp_path: Path, how: str) -> None:
    """A ResourceModification job stopped mid-way by SIGTERM, or killed (SIGKILL: the steps
    since its last save are replayed), goes on after the restart and ends with every instance
    modified once, in one new study, the source deleted (KeepSource: false)."""
    plugin = tmp_path / "slow_store.py"
    plugin.write_text(SLOW_STORE_PLUGIN)
    api: Api = api_factory(Plugins=[str(plugin)], ConcurrentJobs=1)
    answers = [api.post("/instances", content=data).json() for data in make_series(20)]
    study = answers[0]["ParentStudy"]
    body = {"Replace": {"StudyDescription": "Slowed"}, "KeepSource": False, "Synchronous": False}
    response = api.post(f"/studies/{study}/modify", json=body)
    assert response.status_code == 200, response.text
    job_id = response.json()["ID"]
    wait_for(lambda: api.get(f"/jobs/{job_id}").json()["Progress"] > 0, timeout=60)
    if how == "stop":
        api.server.stop()  # SIGTERM mid-job: stopped after its step, saved as pending
    else:
        api.server.kill()
    api.server.start()
    assert api.get(f"/jobs/{job_id}").json()["State"] in ("Pending", "Running", "Success")
    wait_for(lambda: api.get(f"/jobs/{job_id}").json()["State"] == "Success", timeout=120)
    job = api.get(f"/jobs/{job_id}").json()
    assert job["Type"] == "ResourceModification"
    assert (job["Content"]["InstancesCount"], job["Content"]["FailedInstancesCount"]) == (20, 0)
    new_study = job["Content"]["ID"]
    assert api.get(f"/studies/{study}").status_code == 404
    instances = api.get(f"/studies/{new_study}/instances").json()
    assert len(instances) == 20 and api.get("/statistics").json()["CountInstances"] == 20
    numbers = sorted(int(i["MainDicomTags"]["InstanceNumber"]) for i in instances)
    assert numbers == list(range(1, 21))
    assert api.get(f"/studies/{new_study}").json()["MainDicomTags"]["StudyDescription"] == (
        "Slowed"
    )
