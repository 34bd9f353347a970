"""`/peers` end to end: two real server processes, the second one declared as an Orthanc peer
of the first; studies sent synchronously and as jobs, compared byte for byte; the registry in
the configuration and in the index; the errors (unknown peer, bad body, peer down, bad
credentials)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import Api, ServerProcess, free_port
from tests.dicomgen import make_dicom, make_series
from tests.jobs.fakes import wait_for
from tests.test_cli import run_cli

USERS = {"alice": "secret"}


def upload_series(api: Api, count: int, **kwargs: Any) -> tuple[str, list[str]]:
    answers = []
    for data in make_series(count, **kwargs):
        response = api.post("/instances", content=data)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers[0]["ParentStudy"], [a["ID"] for a in answers]


def target_server(server_factory: Any) -> tuple[ServerProcess, Api]:
    """The peer: its own SQLite index, password-protected."""
    server = server_factory({"AuthenticationEnabled": True, "RegisteredUsers": USERS})
    client = Api(base_url=server.url, timeout=60, auth=("alice", "secret"))
    client.server = server
    return server, client


def same_files(source: Api, target: Api, ids: list[str]) -> None:
    for instance in ids:
        mine = source.get(f"/instances/{instance}/file")
        theirs = target.get(f"/instances/{instance}/file")
        assert mine.status_code == theirs.status_code == 200, theirs.text
        assert mine.content == theirs.content


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()
    assert error["HttpStatus"] == status
    return dict(error)


def test_store_to_peer(api_factory: Any, server_factory: Any) -> None:
    server, target = target_server(server_factory)
    down = f"http://127.0.0.1:{free_port()}/"
    api: Api = api_factory(
        OrthancPeers={
            "target": [server.url, "alice", "secret"],
            "nopassword": {"Url": server.url, "HttpHeaders": {"X-Token": "t"}, "Timeout": 5},
            "down": [down],
        }
    )
    with target:
        assert api.get("/peers").json() == ["down", "nopassword", "target"]
        expanded = api.get("/peers", params={"expand": ""}).json()
        assert expanded["target"] == {
            "Url": server.url + "/",
            "Username": "alice",
            "Password": None,
            "Pkcs11": False,
            "Timeout": 0,
            "HttpHeaders": [],
        }
        assert expanded["nopassword"]["HttpHeaders"] == ["X-Token"]  # names, not values
        assert api.get("/peers/target/configuration").json() == expanded["target"]
        assert api.get("/peers/target").json() == [
            "configuration",
            "store",
            "store-straight",
            "system",
        ]
        system = api.get("/peers/target/system")
        assert system.status_code == 200, system.text
        assert "Name" in system.json() and "ApiVersion" in system.json()

        # synchronous, a whole study, byte for byte
        study, ids = upload_series(api, 3)
        sent = api.post("/peers/target/store", json={"Resources": [study]})
        assert sent.status_code == 200, sent.text
        content = sent.json()
        assert content["InstancesCount"] == 3 and content["FailedInstancesCount"] == 0
        assert content["ParentResources"] == [study] and content["Compress"] is False
        assert content["Peer"] == [server.url + "/", "alice", ""]  # no password shown
        assert int(content["Size"]) > 0
        same_files(api, target, ids)

        # as a job, gzip'd bodies, a bare ID as the body
        other_study, other_ids = upload_series(api, 2, study_uid="1.2.3.99")
        body = {"Resources": [other_study], "Synchronous": False, "Compress": True}
        submitted = api.post("/peers/target/store", json=body)
        assert submitted.status_code == 200, submitted.text
        job_id = submitted.json()["ID"]
        wait_for(lambda: api.get(f"/jobs/{job_id}").json()["State"] == "Success", timeout=60)
        job = api.get(f"/jobs/{job_id}").json()
        assert job["Type"] == "OrthancPeerStore" and job["Progress"] == 100
        assert job["Content"]["InstancesCount"] == 2 and job["Content"]["Compress"] is True
        same_files(api, target, other_ids)
        instance = ids[0]
        assert target.delete(f"/instances/{instance}").status_code == 200
        assert api.post("/peers/target/store", content=instance).status_code == 200
        same_files(api, target, [instance])

        # store-straight: the file in the body, the peer's answer
        data = make_dicom(patient_id="STRAIGHT", sop_uid="1.2.3.4.5.6")
        straight = api.post("/peers/target/store-straight", content=data)
        assert straight.status_code == 200, straight.text
        assert straight.json()["Status"] == "Success"
        assert target.get(f"/instances/{straight.json()['ID']}/file").content == data

        # errors
        unknown = error_of(api.post("/peers/nope/store", json=[study]), 404)
        assert "nope" in unknown["Details"]
        error_of(api.get("/peers/nope/system"), 404)
        error_of(api.post("/peers/target/store", content=b"{not json"), 400)
        error_of(api.post("/peers/target/store", json={"Resources": ["x" * 44]}), 400)
        missing = "0" * 8 + "-" + "-".join(["0" * 8] * 4)
        error_of(api.post("/peers/target/store", json=[missing]), 404)
        error_of(
            api.post("/peers/target/store", json={"Resources": [study], "Transcode": "1.2"}), 400
        )
        refused = error_of(api.get("/peers/nopassword/system"), 502)
        assert refused["OrthancError"] == "Bad credentials were provided to an HTTP request"
        assert "401" in refused["Details"]
        unreachable = error_of(api.post("/peers/down/store", json=[study]), 502)
        assert unreachable["OrthancStatus"] == 9 and down in unreachable["Details"]
        error_of(api.get("/peers/down/system"), 502)

        # a failing job: the peer refuses the credentials
        body = {"Resources": [study], "Asynchronous": True}
        failing = api.post("/peers/nopassword/store", json=body).json()["ID"]
        wait_for(lambda: api.get(f"/jobs/{failing}").json()["State"] == "Failure", timeout=60)
        assert api.get(f"/jobs/{failing}").json()["ErrorCode"] == 29


def test_peers_registry(api_factory: Any) -> None:
    """PUT/DELETE: until restart from the configuration; kept in the index (on both backends)
    with OrthancPeersInDatabase, which then ignores OrthancPeers."""
    volatile: Api = api_factory(OrthancPeers={"one": ["http://127.0.0.1:1/"]})
    assert volatile.put("/peers/two", json=["http://127.0.0.1:2"]).status_code == 200
    assert volatile.get("/peers").json() == ["one", "two"]
    assert volatile.delete("/peers/one").status_code == 200
    assert volatile.get("/peers").json() == ["two"]
    error_of(volatile.delete("/peers/one"), 404)
    error_of(volatile.put("/peers/bad", json=["ftp://x/"]), 400)
    error_of(volatile.put("/peers/bad", json=["http://x/", "user"]), 400)
    error_of(volatile.put("/peers/bad", json={"Url": "http://x/", "Timeout": "1"}), 400)
    error_of(volatile.put("/peers/bad", content=b"[oops"), 400)
    assert volatile.get("/peers").json() == ["two"]
    volatile.server.stop()  # the next server uses the same database

    stored: Api = api_factory(
        OrthancPeersInDatabase=True, OrthancPeers={"ignored": ["http://127.0.0.1:1/"]}
    )
    assert stored.get("/peers").json() == []
    definition = {
        "Url": "http://127.0.0.1:3",
        "Username": "bob",
        "Password": "pw",
        "HttpHeaders": {"Token": "x"},
        "HasThing": True,
    }
    assert stored.put("/peers/kept", json=definition).status_code == 200
    stored.server.stop()
    stored.server.start(timeout=120)  # a loaded machine may be slow to start it
    assert stored.get("/peers").json() == ["kept"]
    assert stored.get("/peers/kept/configuration").json() == {
        "Url": "http://127.0.0.1:3/",
        "Username": "bob",
        "Password": None,
        "Pkcs11": False,
        "Timeout": 0,
        "HttpHeaders": ["Token"],
        "HasThing": "1",
    }
    assert stored.delete("/peers/kept").status_code == 200
    assert stored.get("/peers").json() == []


def test_unusable_peer_stops_the_start_up(tmp_path: Path) -> None:
    for section in (
        {"OrthancPeers": {"typo": ["http://127.0.0.1:8043/", "alice"]}},
        {"DicomWeb": {"Servers": {"typo": {"Url": "ftp://127.0.0.1/"}}}},
    ):
        config = tmp_path / "config.json"
        config.write_text(
            json.dumps({"HttpPort": free_port(), "DicomPort": free_port(), **section})
        )
        result = run_cli("serve", "--config", str(config), cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "typo" in result.stderr and "configuration error" in result.stderr
