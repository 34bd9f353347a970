"""The DICOMweb client (`/dicom-web/servers`) end to end, against a second Pharos process as
the remote DICOMweb server: QIDO-RS and GET proxied, STOW-RS of a local study, WADO-RS
retrieval of a remote study into the first server (synchronously and as jobs), and the errors."""

from __future__ import annotations

from typing import Any

from pydicom.uid import generate_uid

from tests.conftest import Api, free_port
from tests.dicomgen import make_series
from tests.jobs.fakes import wait_for


def upload(api: Api, count: int, **kwargs: Any) -> list[dict[str, str]]:
    answers = []
    for data in make_series(count, **kwargs):
        response = api.post("/instances", content=data)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def same_files(first: Api, second: Api, ids: list[str]) -> None:
    for instance in ids:
        mine, theirs = (
            first.get(f"/instances/{instance}/file"),
            second.get(f"/instances/{instance}/file"),
        )
        assert mine.status_code == theirs.status_code == 200, (mine.text, theirs.text)
        assert mine.content == theirs.content


def finished_job(api: Api, response: Any, job_type: str) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    job_id = response.json()["ID"]
    wait_for(lambda: api.get(f"/jobs/{job_id}").json()["State"] in ("Success", "Failure"), 60)
    job = api.get(f"/jobs/{job_id}").json()
    assert (job["Type"], job["State"]) == (job_type, "Success"), job
    return dict(job)


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return dict(response.json())


def test_dicomweb_client(server_factory: Any) -> None:
    """On SQLite only: what reaches the index is the store path's, tested on both backends."""
    remote_server = server_factory({})
    remote = Api(base_url=remote_server.url, timeout=60)
    root = remote_server.url + "/dicom-web/"
    servers = {
        "remote": [root],
        "unchunked": {"Url": root, "ChunkedTransfers": False, "HasDelete": True},
        "down": [f"http://127.0.0.1:{free_port()}/dicom-web"],
    }
    local_server = server_factory({"DicomWeb": {"Servers": servers}})
    api = Api(base_url=local_server.url, timeout=60)
    with remote, api:
        assert api.get("/dicom-web/servers").json() == ["down", "remote", "unchunked"]
        expanded = api.get("/dicom-web/servers", params={"expand": ""}).json()
        assert expanded["unchunked"]["ChunkedTransfers"] == "0"
        assert expanded["remote"]["Url"] == root
        assert api.get("/dicom-web/servers/remote").json() == [
            "get",
            "qido",
            "retrieve",
            "stow",
            "wado",
        ]

        # a remote study, found by QIDO-RS and GET through the client
        study_uid = generate_uid()
        remote_answers = upload(remote, 3, patient_id="REMOTE1", study_uid=study_uid)
        remote_ids = [a["ID"] for a in remote_answers]
        body = {"Uri": "/studies", "Arguments": {"PatientID": "REMOTE1"}}
        found = api.post("/dicom-web/servers/remote/qido", json=body)
        assert found.status_code == 200, found.text
        assert [s["0020000D"]["Value"][0] for s in found.json()] == [study_uid]
        nothing = api.post(
            "/dicom-web/servers/remote/qido",
            json={"Uri": "studies", "Arguments": {"PatientID": "NOBODY"}},
        )
        assert nothing.status_code == 200 and nothing.json() == []
        got = api.post(
            "/dicom-web/servers/remote/get", json={"Uri": f"/studies/{study_uid}/series"}
        )
        assert got.status_code == 200, got.text
        assert got.headers["content-type"].startswith("application/dicom+json")
        assert len(got.json()) == 1

        # WADO-RS retrieve into this server, byte for byte
        retrieved = api.post(
            "/dicom-web/servers/remote/retrieve", json={"Resources": [{"Study": study_uid}]}
        )
        assert retrieved.status_code == 200, retrieved.text
        assert retrieved.json()["ReceivedInstancesCount"] == "3"
        assert set(retrieved.json()) == {"NetworkUsageMB", "ReceivedInstancesCount"}
        same_files(api, remote, remote_ids)
        series_uid = remote.get(f"/instances/{remote_ids[0]}/tags?simplify").json()[
            "SeriesInstanceUID"
        ]
        for instance in remote_ids:
            assert api.delete(f"/instances/{instance}").status_code == 200
        body = {"Resources": [{"Study": study_uid, "Series": series_uid}], "Synchronous": False}
        job = finished_job(
            api,
            api.post("/dicom-web/servers/remote/retrieve", json=body),
            "DicomWebWadoRetrieveClient",
        )
        assert job["Content"]["ReceivedInstancesCount"] == "3"
        same_files(api, remote, remote_ids)
        assert api.delete(f"/instances/{remote_ids[0]}").status_code == 200
        wado = {"Uri": f"/studies/{study_uid}", "Synchronous": True}
        one = api.post("/dicom-web/servers/remote/wado", json=wado)
        assert one.status_code == 200 and one.json()["ReceivedInstancesCount"] == "3"
        same_files(api, remote, remote_ids[:1])

        # STOW-RS of local studies to the remote, chunked or not, now or as a job
        local = upload(api, 2, patient_id="LOCAL1", study_uid=generate_uid())
        stowed = api.post(
            "/dicom-web/servers/remote/stow", json={"Resources": [local[0]["ParentStudy"]]}
        )
        assert stowed.status_code == 200, stowed.text
        assert stowed.json() == {"InstancesCount": "2", "NetworkSizeMB": "0"}
        same_files(api, remote, [a["ID"] for a in local])
        other = upload(api, 2, patient_id="LOCAL2", study_uid=generate_uid())
        body = {"Resources": [a["ID"] for a in other], "Asynchronous": True}
        job = finished_job(
            api, api.post("/dicom-web/servers/unchunked/stow", json=body), "DicomWebStowClient"
        )
        assert job["Content"]["InstancesCount"] == "2"
        same_files(api, remote, [a["ID"] for a in other])

        # errors
        error_of(api.post("/dicom-web/servers/nope/qido", json={"Uri": "/studies"}), 404)
        error_of(api.get("/dicom-web/servers/nope"), 404)
        error_of(api.post("/dicom-web/servers/remote/qido", json={"Url": "/studies"}), 400)
        error_of(api.post("/dicom-web/servers/remote/get", json={"Uri": "/../../system"}), 400)
        error_of(api.post("/dicom-web/servers/remote/stow", json={"Resources": "x"}), 400)
        missing = "-".join(["0" * 8] * 5)
        error_of(api.post("/dicom-web/servers/remote/stow", json={"Resources": [missing]}), 404)
        error_of(api.post("/dicom-web/servers/remote/retrieve", json={"Resources": [{}]}), 400)
        bad = {"Resources": [{"Study": study_uid, "Instance": "1.2"}]}
        error_of(api.post("/dicom-web/servers/remote/retrieve", json=bad), 400)
        down = error_of(api.post("/dicom-web/servers/down/qido", json={"Uri": "/studies"}), 502)
        assert down["OrthancStatus"] == 9
        unknown_study = {"Resources": [{"Study": "1.2.3.4.404"}]}
        error_of(api.post("/dicom-web/servers/remote/retrieve", json=unknown_study), 404)

        # the registry, changed until restart
        assert api.put("/dicom-web/servers/added", json=[root, "u", "p"]).status_code == 200
        assert api.get("/dicom-web/servers/added").status_code == 200
        assert api.delete("/dicom-web/servers/added").status_code == 200
        error_of(api.delete("/dicom-web/servers/added"), 404)
        error_of(api.put("/dicom-web/servers/bad", json=[]), 400)


def test_servers_in_database_stow_batches_and_remote_delete(server_factory: Any) -> None:
    """DicomWeb.ServersInDatabase keeps servers across restarts (and ignores Servers); a
    server declared with HasDelete takes DELETE through the client, which a second Pharos
    serves; StowMaxInstances splits the STOW-RS requests."""
    remote_server = server_factory({})
    remote = Api(base_url=remote_server.url, timeout=60)
    root = remote_server.url + "/dicom-web/"
    config = {
        "DicomWeb": {
            "ServersInDatabase": True,
            "Servers": {"ignored": [root]},
            "StowMaxInstances": 2,
        }
    }
    local_server = server_factory(config)
    api = Api(base_url=local_server.url, timeout=60)
    with remote, api:
        assert api.get("/dicom-web/servers").json() == []
        definition = {"Url": root, "HasDelete": True}
        assert api.put("/dicom-web/servers/remote", json=definition).status_code == 200
        local_server.stop()
        local_server.start(timeout=120)
        assert api.get("/dicom-web/servers").json() == ["remote"]
        assert api.get("/dicom-web/servers/remote").json()[0] == "delete"

        # five instances, sent in requests of at most two (counted in the unit tests)
        study_uid = generate_uid()
        local = upload(api, 5, patient_id="DEL1", study_uid=study_uid)
        stowed = api.post(
            "/dicom-web/servers/remote/stow", json={"Resources": [local[0]["ParentStudy"]]}
        )
        assert stowed.status_code == 200, stowed.text
        assert stowed.json()["InstancesCount"] == "5"
        same_files(api, remote, [a["ID"] for a in local])

        # DELETE through the client: an instance, then the study (the remote's own DELETE)
        tags = remote.get(f"/instances/{local[0]['ID']}/tags?simplify").json()
        instance = {
            "Level": "Instance",
            "StudyInstanceUID": study_uid,
            "SeriesInstanceUID": tags["SeriesInstanceUID"],
            "SOPInstanceUID": tags["SOPInstanceUID"],
        }
        deleted = api.post("/dicom-web/servers/remote/delete", json=instance)
        assert deleted.status_code == 200 and deleted.json() == {}, deleted.text
        assert remote.get(f"/instances/{local[0]['ID']}").status_code == 404
        assert len(remote.get(f"/studies/{local[0]['ParentStudy']}/instances").json()) == 4
        error_of(api.post("/dicom-web/servers/remote/delete", json=instance), 404)
        error_of(api.post("/dicom-web/servers/remote/delete", json={"Level": "Study"}), 400)
        study = {"Level": "Study", "StudyInstanceUID": study_uid}
        assert api.post("/dicom-web/servers/remote/delete", json=study).status_code == 200
        assert remote.get("/studies").json() == []
        assert len(api.get("/instances").json()) == 5  # the local copies stay

        # the server side on its own: 204, 404 once gone, 400 for a malformed UID
        series = f"/dicom-web/studies/{study_uid}/series/{tags['SeriesInstanceUID']}"
        assert api.delete(series).status_code == 204
        assert api.get("/instances").json() == []
        error_of(api.delete(f"/dicom-web/studies/{study_uid}"), 404)
        error_of(api.delete("/dicom-web/studies/1.2.x"), 400)
