"""Query/retrieve and the other DICOM client operations through REST, end to end: Pharos
against a second Pharos (C-FIND, C-MOVE, C-GET, C-STORE), against dcmtk's storescp, and
against a peer that is down (Orthanc's NetworkProtocol error, nothing stored)."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, free_port
from tests.dicomgen import make_dicom
from tests.dimse.peers import QrScp, StoreScp, requires_dcmtk, wait_for_port

pytestmark = requires_dcmtk

STUDY = "1.2.826.0.1.3680043.8.498.1"
SERIES = "1.2.826.0.1.3680043.8.498.1.1"


@pytest.fixture
def backend_config() -> dict[str, object]:
    """These tests are about the network, not the index: SQLite only."""
    return {}


def upload(api: Api, count: int = 2, **tags: Any) -> list[str]:
    ids = []
    for i in range(count):
        data = make_dicom(
            patient_id="PAT1", study_uid=STUDY, series_uid=SERIES, instance_number=i, **tags
        )
        response = api.post("/instances", content=data)
        assert response.status_code == 200, response.text
        ids.append(response.json()["ID"])
    return ids


@pytest.fixture
def pair(api_factory: Any) -> tuple[Api, Api]:
    """`here` (PHAROSA) knows `there` (PHAROSB, holding a study) as "b"; "there" knows
    "here" as "a", so that it accepts its requests and can C-MOVE to it."""
    here_port, there_port = free_port(), free_port()
    here: Api = api_factory(
        DicomAet="PHAROSA",
        DicomPort=here_port,
        DicomModalities={"b": ["PHAROSB", "127.0.0.1", there_port]},
    )
    there: Api = api_factory(
        DicomAet="PHAROSB",
        DicomPort=there_port,
        DicomModalities={"a": ["PHAROSA", "127.0.0.1", here_port]},
    )
    upload(there)
    return here, there


def test_echo_query_answers_and_retrieve(pair: tuple[Api, Api]) -> None:
    here, there = pair
    assert here.post("/modalities/b/echo", content=b"").json() == {}
    assert here.post("/modalities/b/echo", json={"CheckFind": True, "Timeout": 5}).json() == {}

    created = here.post(
        "/modalities/b/query", json={"Level": "Study", "Query": {"PatientID": "PAT*"}}
    )
    assert created.status_code == 200, created.text
    query_id = created.json()["ID"]
    assert created.json()["Path"] == f"/queries/{query_id}"
    assert here.get("/queries").json() == [query_id]
    assert here.get(f"/queries/{query_id}/level").text == "Study"
    assert here.get(f"/queries/{query_id}/modality").text == "b"
    assert here.get(f"/queries/{query_id}/query?simplify").json() == {"PatientID": "PAT*"}
    assert here.get(f"/queries/{query_id}/answers").json() == ["0"]
    assert here.get(f"/queries/{query_id}").json() == [
        "answers", "level", "modality", "query", "retrieve",
    ]  # fmt: skip
    assert here.get(f"/queries/{query_id}/answers/0").json() == [
        "content", "retrieve", "query-series", "query-instances",
    ]  # fmt: skip
    assert here.get(f"/queries/{query_id}/answers/1").status_code == 400
    assert here.get(f"/queries/{query_id}/answers/x/content").status_code == 400
    short = here.get(f"/queries/{query_id}/answers?expand&short").json()
    assert short[0]["0020,000d"] == STUDY
    assert here.get(f"/queries/{query_id}/query").json() == {
        "0010,0020": {"Name": "PatientID", "Type": "String", "Value": "PAT*"}
    }
    answers = here.get(f"/queries/{query_id}/answers?expand&simplify").json()
    assert answers[0]["StudyInstanceUID"] == STUDY and answers[0]["PatientID"] == "PAT1"
    content = here.get(f"/queries/{query_id}/answers/0/content").json()
    assert content["0020,000d"] == {"Name": "StudyInstanceUID", "Type": "String", "Value": STUDY}

    child = here.post(f"/queries/{query_id}/answers/0/query-series", json={"Query": {}}).json()
    series = here.get(f"/queries/{child['ID']}/answers?expand&simplify").json()
    assert [s["SeriesInstanceUID"] for s in series] == [SERIES]
    instances = here.post(f"/queries/{child['ID']}/answers/0/query-instances", json={}).json()
    assert len(here.get(f"/queries/{instances['ID']}/answers").json()) == 2

    assert here.get("/instances").json() == []
    retrieved = here.post(f"/queries/{query_id}/retrieve", content=b"PHAROSA")
    assert retrieved.status_code == 200, retrieved.text
    assert retrieved.json()["RemoteAet"] == "PHAROSB"
    assert retrieved.json()["Query"][0]["0020,000d"] == STUDY
    assert sorted(here.get("/instances").json()) == sorted(there.get("/instances").json())

    assert here.delete(f"/queries/{query_id}").status_code == 200
    assert here.get(f"/queries/{query_id}").status_code == 404


def test_get_stores_with_the_peer_as_origin(pair: tuple[Api, Api]) -> None:
    here, there = pair
    response = here.post(
        "/modalities/b/get", json={"Level": "Series", "Resources": [{"SeriesInstanceUID": SERIES}]}
    )
    assert response.status_code == 200, response.text
    ids = here.get("/instances").json()
    assert sorted(ids) == sorted(there.get("/instances").json())
    metadata = here.get(f"/instances/{ids[0]}/metadata?expand").json()
    assert metadata["Origin"] == "DicomProtocol" and metadata["RemoteAET"] == "PHAROSB"


def test_move_and_store_between_servers(pair: tuple[Api, Api]) -> None:
    here, there = pair
    moved = here.post(
        "/modalities/b/move",
        json={"Level": "Study", "Resources": [{"StudyInstanceUID": STUDY}], "TargetAet": "PHAROSA"},
    )
    assert moved.status_code == 200, moved.text
    assert moved.json() == {}
    assert len(here.get("/instances").json()) == 2
    # and back: C-STORE of a new study from here to there
    new = upload(here, 1, sop_uid="1.2.826.0.1.3680043.8.498.99")
    parent = here.get(f"/instances/{new[0]}/study").json()["ID"]
    sent = here.post("/modalities/b/store", json={"Resources": [parent], "Synchronous": True})
    assert sent.status_code == 200, sent.text
    assert sent.json()["InstancesCount"] == 3 and sent.json()["FailedInstancesCount"] == 0
    assert new[0] in there.get("/instances").json()


def test_legacy_find_routes(pair: tuple[Api, Api]) -> None:
    here, _ = pair
    studies = here.post("/modalities/b/find-study", json={"PatientID": "PAT1"}).json()
    assert [s["StudyInstanceUID"] for s in studies] == [STUDY]
    assert here.post("/modalities/b/find-study", json={}).json() == []  # too wide: not asked
    tree = here.post("/modalities/b/find", json={"PatientID": "PAT1"}).json()
    assert tree[0]["Studies"][0]["Series"][0]["SeriesInstanceUID"] == SERIES


def test_store_to_dcmtk_storescp(api_factory: Any, tmp_path: Path) -> None:
    with StoreScp(tmp_path / "scp") as scp:
        api: Api = api_factory(DicomModalities={"scp": scp.modality()}, LogExportedResources=True)
        ids = upload(api)
        study = api.get(f"/instances/{ids[0]}/study").json()["ID"]
        assert api.post("/modalities/scp/echo", json={}).json() == {}
        unregistered = {"AET": scp.aet, "Host": "127.0.0.1", "Port": scp.port, "Timeout": 5}
        assert api.post("/tools/dicom-echo", json=unregistered).json() == {}
        missing = api.post("/tools/dicom-echo", json={"AET": "X", "Host": "127.0.0.1"})
        assert missing.status_code == 400 and "Port" in missing.json()["Details"]
        sent = api.post("/modalities/scp/store", content=study.encode())
        assert sent.status_code == 200, sent.text
        assert sent.json() == {
            "Description": "REST API",
            "FailedInstancesCount": 0,
            "InstancesCount": 2,
            "LocalAet": "ORTHANC",
            "ParentResources": [study],
            "RemoteAet": "STORESCP",
        }
        exported = api.get("/exports").json()["Exports"]
        assert [(e["ID"], e["RemoteModality"], e["ResourceType"]) for e in exported] == [
            (study, "scp", "Study")
        ]
        assert exported[0]["PatientID"] == "PAT1" and exported[0]["StudyInstanceUID"] == STUDY
        straight = api.post(
            "/modalities/scp/store-straight",
            content=make_dicom(sop_uid="1.2.826.0.1.3680043.8.498.77"),
            headers={"Content-Type": "application/dicom"},
        )
        assert straight.json()["SOPInstanceUID"] == "1.2.826.0.1.3680043.8.498.77"
        received = {str(ds.SOPInstanceUID) for ds in scp.received()}
        assert len(received) == 3 and "1.2.826.0.1.3680043.8.498.77" in received


class ForkingQrScp(QrScp):
    """dcmqrscp serving every association (with `-s` it exits after the first one)."""

    def __enter__(self) -> ForkingQrScp:
        (self.folder / "db").mkdir(parents=True, exist_ok=True)
        config = self._config()
        with open(self.log, "wb") as log:
            self._process = subprocess.Popen(
                ["dcmqrscp", "-v", "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        wait_for_port(self.port)
        return self


def test_query_retrieve_with_dcmqrscp(api_factory: Any, tmp_path: Path) -> None:
    port = free_port()
    files = []
    for i in range(2):
        path = tmp_path / f"{i}.dcm"
        path.write_bytes(
            make_dicom(patient_id="PAT1", study_uid=STUDY, series_uid=SERIES, instance_number=i)
        )
        files.append(path)
    with ForkingQrScp(tmp_path / "qr", {"ORTHANC": port}) as qr:
        qr.store(files)
        api: Api = api_factory(DicomPort=port, DicomModalities={"qr": qr.modality()})
        created = api.post(
            "/modalities/qr/query", json={"Level": "Series", "Query": {"PatientID": "PAT1"}}
        )
        assert created.status_code == 200, created.text
        query_id = created.json()["ID"]
        answers = api.get(f"/queries/{query_id}/answers?expand&simplify").json()
        assert [a["SeriesInstanceUID"] for a in answers] == [SERIES]
        retrieved = api.post(
            f"/queries/{query_id}/answers/0/retrieve", json={"TargetAet": "ORTHANC"}
        )
        assert retrieved.status_code == 200, retrieved.text
        assert len(api.get("/instances").json()) == 2
        for instance in api.get("/instances").json():
            assert api.delete(f"/instances/{instance}").status_code == 200
        got = api.post(
            "/modalities/qr/get",
            json={"Level": "Study", "Resources": [{"StudyInstanceUID": STUDY}]},
        )
        assert got.status_code == 200, got.text
        assert len(api.get("/instances").json()) == 2


def test_peer_down(api_factory: Any) -> None:
    down = free_port()  # nothing listens there
    api: Api = api_factory(
        DicomModalities={"down": ["DOWN", "127.0.0.1", down]}, LogExportedResources=True
    )
    ids = upload(api, 1)
    for path, body in (
        ("/modalities/down/echo", {}),
        ("/modalities/down/store", {"Resources": ids}),
        ("/modalities/down/query", {"Level": "Study", "Query": {}}),
        ("/modalities/down/move", {"Level": "Study", "Resources": [{"StudyInstanceUID": "1"}]}),
        ("/modalities/down/get", {"Level": "Study", "Resources": [{"StudyInstanceUID": "1"}]}),
    ):
        response = api.post(path, json=body)
        assert response.status_code == 500, (path, response.text)
        error = response.json()
        assert error["OrthancError"] == "Error in the network protocol", error
        assert error["OrthancStatus"] == 9 and "DOWN" in error["Details"], error
    assert api.get("/queries").json() == []  # a failed query is not kept
    assert api.get("/exports").json()["Exports"] == []  # nothing was sent
    assert api.get("/instances").json() == ids  # nothing stored


def test_peer_that_never_answers(api_factory: Any) -> None:
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        port = silent.getsockname()[1]
        api: Api = api_factory(DicomModalities={"mute": ["MUTE", "127.0.0.1", port]})
        response = api.post("/modalities/mute/echo", json={"Timeout": 1})
        assert response.status_code == 504, response.text
        assert response.json()["OrthancError"] == "Timeout" and "MUTE" in response.json()["Details"]
        query = api.post("/modalities/mute/query", json={"Level": "Patient", "Timeout": 1})
        assert query.status_code == 504, query.text
        assert api.get("/queries").json() == []


def test_bad_query_requests(api_factory: Any) -> None:
    api: Api = api_factory(DicomModalities={"x": ["X", "127.0.0.1", free_port()]})
    for body, status in (
        (b"nope", 400),
        (b'{"Query": {}}', 400),
        (b'{"Level": "Study", "Query": {"NotATag": "1"}}', 404),
        (b'{"Level": "Study", "Normalize": 1}', 400),
        (b'{"Level": "Planet"}', 400),
    ):
        response = api.post("/modalities/x/query", content=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["Details"]
    for path in ("/queries/nope", "/queries/nope/answers", "/queries/nope/answers/0/content"):
        assert api.get(path).status_code == 404
    response = api.post(
        "/modalities/x/get", json={"Level": "Study", "Resources": [], "Synchronous": 0}
    )
    assert response.status_code == 400 and "Synchronous" in response.json()["Details"]
