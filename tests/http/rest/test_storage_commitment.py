"""The storage commitment routes: bad bodies and unknown transactions answered as Orthanc
answers them, and nothing sent to the modality meanwhile."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Api
from tests.dimse.commitment_peers import CommitmentPeer
from tests.dimse.peers import dicom_port

CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture
def backend_config() -> dict[str, object]:
    return {}


@pytest.fixture
def peer() -> Iterator[CommitmentPeer]:
    created = CommitmentPeer()
    yield created
    created.close()


@pytest.fixture
def api(api_factory: Any, peer: CommitmentPeer) -> Api:
    started: Api = api_factory(DicomModalities={"modality": peer.modality()})
    peer.pharos_port = dicom_port(started)
    return started


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"DicomInstances": {}}',
        b'{"DicomInstances": [{"SOPClassUID": "1.2"}]}',
        b'{"DicomInstances": [["1.2", 3]]}',
        b'{"DicomInstances": [["1.2", "not a uid"]]}',
        b'{"Resources": "abc"}',
        b'{"DicomInstances": [], "Timeout": -1}',
    ],
)
def test_bad_bodies(api: Api, peer: CommitmentPeer, body: bytes) -> None:
    answer = api.post("/modalities/modality/storage-commitment", content=body)
    assert answer.status_code == 400, answer.text
    assert answer.json()["HttpStatus"] == 400
    assert peer.requests == []


def test_unknown_resources_and_modalities(api: Api, peer: CommitmentPeer) -> None:
    unknown = "-".join(["0" * 8] * 5)
    answer = api.post("/modalities/modality/storage-commitment", json={"Resources": [unknown]})
    assert answer.status_code == 404
    answer = api.post("/modalities/nope/storage-commitment", json={"DicomInstances": []})
    assert answer.status_code == 404
    assert peer.requests == []


def test_unknown_transactions(api: Api) -> None:
    for answer in (
        api.get("/storage-commitment/2.25.404"),
        api.post("/storage-commitment/2.25.404/remove"),
    ):
        assert answer.status_code == 404
        assert "No storage commitment transaction" in answer.json()["Details"]


def test_listed_with_the_operations_of_a_modality(api: Api) -> None:
    assert "storage-commitment" in api.get("/modalities/modality").json()


def test_a_modality_that_cannot_be_reached(api_factory: Any) -> None:
    api: Api = api_factory(DicomModalities={"gone": ["GONE", "127.0.0.1", 1]})
    answer = api.post("/modalities/gone/storage-commitment", json={"DicomInstances": [[CT, "1.2"]]})
    assert (
        answer.status_code == 500
        and answer.json()["OrthancError"] == "Error in the network protocol"
    )
