"""/system, /tools/*, security."""

from __future__ import annotations

import base64
import socket
from typing import Any

import httpx
import psutil
import pytest

from pharos import __version__
from tests.dicomgen import make_dicom


def test_system_reports_orthanc_compatibility_and_pharos(api: Any) -> None:
    system = api.get("/system").json()
    assert system["Version"] == "1.10.1"
    assert isinstance(system["ApiVersion"], int)
    assert system["Name"] == "MyOrthanc"
    assert system["DicomAet"] == "ORTHANC"
    assert system["DicomPort"] == api.server.config["DicomPort"]
    assert system["HttpPort"] == api.server.port
    assert system["PharosName"] == "Pharos"
    assert system["PharosVersion"] == __version__
    assert set(system["Capabilities"]) >= {"HasLabels"}
    assert "StorageAreaPlugin" in system and "DatabaseBackendPlugin" in system


def test_tools(api: Any) -> None:
    tools = api.get("/tools").json()
    assert {"now", "now-local", "generate-uid", "default-encoding", "bulk-delete"} <= set(tools)
    now = api.get("/tools/now").text
    assert len(now) == 15 and now[8] == "T"
    uid = api.get("/tools/generate-uid", params={"level": "study"}).text
    assert uid.replace(".", "").isdigit() and len(uid) <= 64
    assert api.get("/tools/generate-uid", params={"level": "bogus"}).status_code == 400
    assert api.get("/tools/default-encoding").text == "Latin1"
    assert api.put("/tools/default-encoding", content=b"utf8").text == "Utf8"
    assert api.get("/tools/default-encoding").text == "Utf8"
    assert api.put("/tools/default-encoding", content=b"Klingon").status_code == 400


def test_default_encoding_decodes_files_without_charset(api: Any) -> None:
    from tests.dicomgen import make_dataset, to_bytes

    ds = make_dataset(patient_id="P-ENC")
    ds.PatientName = "placeholder"
    # Same length as the placeholder, so the element length stays right.
    raw = to_bytes(ds).replace(b"placeholder ", "Gérard^A".encode("latin-1").ljust(12))
    assert b"\xe9" in raw
    item = api.post("/instances", content=raw).json()
    name = api.get(f"/patients/{item['ParentPatient']}").json()["MainDicomTags"]["PatientName"]
    assert name == "Gérard^A"


def test_authentication(api_factory: Any) -> None:
    client = api_factory(AuthenticationEnabled=True, RegisteredUsers={"alice": "secret"})
    refused = client.get("/system")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Basic")
    assert refused.json()["HttpStatus"] == 401
    bad = base64.b64encode(b"alice:wrong").decode()
    assert client.get("/system", headers={"Authorization": f"Basic {bad}"}).status_code == 401
    assert client.get("/system", auth=("alice", "secret")).status_code == 200
    assert client.get("/system", headers={"Authorization": "Bearer x"}).status_code == 401


def _external_address() -> str | None:
    for addresses in psutil.net_if_addrs().values():
        for address in addresses:
            if address.family == socket.AF_INET and not address.address.startswith("127."):
                return str(address.address)
    return None


def test_remote_access_refused_unless_allowed(api_factory: Any) -> None:
    address = _external_address()
    if address is None:
        pytest.skip("this machine has no address but loopback")
    closed = api_factory()
    response = httpx.get(f"http://{address}:{closed.server.port}/system")
    assert response.status_code == 403
    assert "RemoteAccessAllowed" in response.json()["Details"]
    assert closed.get("/system").status_code == 200  # loopback is always allowed
    opened = api_factory(RemoteAccessAllowed=True, AuthenticationEnabled=False)
    assert httpx.get(f"http://{address}:{opened.server.port}/system").status_code == 200
    secured = api_factory(RemoteAccessAllowed=True, RegisteredUsers={"bob": "pw"})
    assert httpx.get(f"http://{address}:{secured.server.port}/system").status_code == 401


def test_http_compression(api: Any) -> None:
    response = api.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert response.headers.get("content-encoding") == "gzip"
    assert response.json()["info"]["title"] == "Pharos"


def test_http_compression_can_be_disabled(api_factory: Any) -> None:
    client = api_factory(HttpCompressionEnabled=False)
    response = client.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers


def test_index_directory_apart_from_storage(api_factory: Any, backend: str) -> None:
    if backend != "sqlite":
        pytest.skip("IndexDirectory only places the SQLite index")
    client = api_factory(IndexDirectory="my-index", StorageDirectory="my-files")
    client.post("/instances", content=make_dicom())
    assert (client.server.workdir / "my-index" / "index.db").is_file()
    assert not (client.server.workdir / "my-files" / "index.db").exists()
    assert len(client.stored_files()) == 1


def test_environment_overrides_the_configuration(server_factory: Any, tmp_path: Any) -> None:
    from tests.conftest import ServerProcess

    workdir = tmp_path / "env"
    workdir.mkdir()
    server = ServerProcess(workdir, {"Name": "FromFile"}, env={"PHAROS__NAME": "FromEnv"})
    server.start()
    try:
        assert httpx.get(server.url + "/system").json()["Name"] == "FromEnv"
    finally:
        server.stop()
