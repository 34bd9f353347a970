"""/modalities as Orthanc 1.10 answers it: the registry (in memory, or in the index with
DicomModalitiesInDatabase, shared between processes and kept across restarts), its effect
on the DICOM server, and bad requests (clear 4xx, nothing changed)."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from tests.conftest import Api
from tests.dimse.peers import echoscu, requires_dcmtk

PACS = {"AET": "PACS", "Host": "127.0.0.1", "Port": 11112}


def test_list_get_put_delete(api_factory: Any) -> None:
    api: Api = api_factory(DicomModalities={"sample": ["STORESCP", "127.0.0.1", 2000]})
    assert api.get("/modalities").json() == ["sample"]
    expanded = api.get("/modalities?expand").json()
    assert expanded["sample"]["AET"] == "STORESCP" and expanded["sample"]["AllowGet"] is True
    assert api.get("/modalities/sample/configuration").json() == expanded["sample"]
    assert "echo" in api.get("/modalities/sample").json()

    assert api.put("/modalities/pacs", json={**PACS, "AllowStore": False}).status_code == 200
    assert api.get("/modalities").json() == ["pacs", "sample"]
    assert api.get("/modalities/pacs/configuration").json()["AllowStore"] is False
    assert api.put("/modalities/pacs", json=["PACS2", "10.0.0.1", "104"]).status_code == 200
    configuration = api.get("/modalities/pacs/configuration").json()
    assert (configuration["AET"], configuration["Port"], configuration["AllowStore"]) == (
        "PACS2",
        104,
        True,
    )
    assert api.delete("/modalities/sample").status_code == 200
    assert api.get("/modalities").json() == ["pacs"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'"PACS"',
        b'["PACS", "host"]',
        b'{"AET": "PACS", "Host": "h", "Port": 0}',
        b'{"AET": "PACS", "Host": "h", "Port": 1, "AllowEcho": 1}',
        b'{"AET": "PACS", "Port": 1}',
    ],
)
def test_bad_definitions_are_refused(api: Api, body: bytes) -> None:
    response = api.put("/modalities/pacs", content=body)
    assert response.status_code == 400, response.text
    assert response.json()["Details"]
    assert api.get("/modalities").json() == []


def test_unknown_modality(api: Api) -> None:
    for method, path in (
        ("GET", "/modalities/nope"),
        ("GET", "/modalities/nope/configuration"),
        ("DELETE", "/modalities/nope"),
        ("POST", "/modalities/nope/echo"),
        ("POST", "/modalities/nope/store"),
        ("POST", "/modalities/nope/query"),
    ):
        response = api.request(method, path, content=b'{"Level": "Study"}')
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["OrthancError"] == "Accessing an inexistent item"
        assert "nope" in response.json()["Details"]


def same_config(api: Api) -> dict[str, object]:
    """The configuration of a stopped server, to start it again (on new ports)."""
    return {k: v for k, v in api.server.config.items() if k not in ("HttpPort", "DicomPort")}


def test_in_memory_changes_are_lost_at_restart(api_factory: Any, server_factory: Any) -> None:
    api: Api = api_factory()
    api.put("/modalities/pacs", json=PACS)
    api.server.stop()
    again = server_factory(same_config(api), workdir=api.server.workdir)
    with Api(base_url=again.url, timeout=30) as client:
        assert client.get("/modalities").json() == []


def test_in_database_changes_are_kept(api_factory: Any, server_factory: Any) -> None:
    api: Api = api_factory(
        DicomModalitiesInDatabase=True, DicomModalities={"conf": ["CONF", "127.0.0.1", 104]}
    )
    api.put("/modalities/pacs", json=PACS)
    api.delete("/modalities/conf")
    assert api.get("/modalities").json() == ["pacs"]
    api.server.stop()
    again = server_factory(same_config(api), workdir=api.server.workdir)
    with Api(base_url=again.url, timeout=30) as client:
        # the stored one is back; the configured one too (deleting it lasts until restart)
        assert client.get("/modalities").json() == ["conf", "pacs"]
        assert client.get("/modalities/pacs/configuration").json()["AET"] == "PACS"


def test_in_database_shared_by_two_processes(server_factory: Any, postgres_databases: Any) -> None:
    config = {
        "DicomModalitiesInDatabase": True,
        "PostgreSQL": postgres_databases.create(),
        "DicomAlwaysAllowEcho": False,
        "DicomAlwaysAllowStore": False,
    }
    first = server_factory(config)
    second = server_factory(config)
    with Api(base_url=first.url, timeout=30) as one, Api(base_url=second.url, timeout=30) as two:
        two.server = second
        dcmtk = shutil.which("echoscu") is not None
        assert not dcmtk or echoscu(two, aet="PACS").returncode != 0  # unknown: refused
        assert one.put("/modalities/pacs", json=PACS).status_code == 200
        assert two.get("/modalities").json() == ["pacs"]
        assert not dcmtk or echoscu(two, aet="PACS").returncode == 0  # known at once
        assert two.delete("/modalities/pacs").status_code == 200
        assert one.get("/modalities/pacs").status_code == 404


@requires_dcmtk
def test_dicom_server_sees_changes_at_once(api_factory: Any) -> None:
    api: Api = api_factory(DicomAlwaysAllowEcho=False, DicomAlwaysAllowStore=False)
    assert echoscu(api, aet="NEWPEER").returncode != 0
    api.put("/modalities/peer", json={"AET": "NEWPEER", "Host": "127.0.0.1", "Port": 104})
    assert echoscu(api, aet="NEWPEER").returncode == 0
    api.put(
        "/modalities/peer",
        json={"AET": "NEWPEER", "Host": "127.0.0.1", "Port": 104, "AllowEcho": False},
    )
    refused = echoscu(api, aet="NEWPEER")  # echoscu exits with 0 on an abort all the same
    assert "peer aborted association" in refused.stdout.lower()
    api.delete("/modalities/peer")
    assert echoscu(api, aet="NEWPEER").returncode != 0


@requires_dcmtk
def test_store_files_without_meta_header_and_with_sequences(api: Api, tmp_path: Any) -> None:
    """Found by hand: a stored file without File Meta Information (accepted at ingest) could
    not be sent, and an RLE instance with a sequence, transcoded for an implicit-VR-only peer,
    reached it with its items in explicit VR (storescp aborted the association)."""
    import io

    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.uid import ImplicitVRLittleEndian, RLELossless

    from tests.dicomgen import make_dataset
    from tests.dimse.peers import StoreScp

    bare = make_dataset(sop_uid="1.2.3.100")
    del bare.file_meta
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, bare, implicit_vr=True, little_endian=True)
    assert buffer.getvalue()[128:132] != b"DICM"
    rle = make_dataset(sop_uid="1.2.3.101")
    item = Dataset()
    item.ReferencedSOPClassUID = rle.SOPClassUID
    item.ReferencedSOPInstanceUID = "1.2.3.999"
    rle.SourceImageSequence = [item]
    rle.compress(RLELossless, generate_instance_uid=False)
    encoded = io.BytesIO()
    rle.save_as(encoded, enforce_file_format=True)
    ids = [
        api.post("/instances", content=data).json()["ID"]
        for data in (buffer.getvalue(), encoded.getvalue())
    ]
    with StoreScp(tmp_path / "received", accept=("+xi",)) as peer:
        api.put("/modalities/peer", json=["STORESCP", "127.0.0.1", peer.port]).raise_for_status()
        answer = api.post("/modalities/peer/store", json={"Resources": ids})
        assert answer.status_code == 200, answer.text
        assert answer.json()["FailedInstancesCount"] == 0
    received = {ds.SOPInstanceUID: ds for ds in map(pydicom.dcmread, peer.folder.iterdir())}
    assert set(received) == {"1.2.3.100", "1.2.3.101"}
    assert all(ds.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian for ds in received.values())
    copy = received["1.2.3.101"]
    assert copy.SourceImageSequence[0].ReferencedSOPInstanceUID == "1.2.3.999"
    assert copy.pixel_array.tolist() == rle.pixel_array.tolist()
