"""/system, /tools/*, security."""

from __future__ import annotations

import base64
from typing import Any

from starlette.testclient import TestClient

from pharos import __version__


def test_system_reports_orthanc_compatibility_and_pharos(api: Any) -> None:
    system = api.get("/system").json()
    assert system["Version"] == "1.10.1"
    assert isinstance(system["ApiVersion"], int)
    assert system["Name"] == "MyOrthanc"
    assert system["DicomAet"] == "ORTHANC"
    assert system["DicomPort"] == 4242
    assert system["HttpPort"] == 8042
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
    from dicomgen import make_dataset, to_bytes

    ds = make_dataset(patient_id="P-ENC")
    ds.PatientName = "placeholder"
    # Same length as the placeholder, so the element length stays right.
    raw = to_bytes(ds).replace(b"placeholder ", "Gérard^A".encode("latin-1").ljust(12))
    assert b"\xe9" in raw
    item = api.post("/instances", content=raw).json()
    name = api.get(f"/patients/{item['ParentPatient']}").json()["MainDicomTags"]["PatientName"]
    assert name == "Gérard^A"


def test_authentication(context_factory: Any) -> None:
    context = context_factory(AuthenticationEnabled=True, RegisteredUsers={"alice": "secret"})
    with TestClient(context.create_app()) as client:
        refused = client.get("/system")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
        assert refused.json()["HttpStatus"] == 401
        bad = base64.b64encode(b"alice:wrong").decode()
        assert client.get("/system", headers={"Authorization": f"Basic {bad}"}).status_code == 401
        good = base64.b64encode(b"alice:secret").decode()
        assert client.get("/system", headers={"Authorization": f"Basic {good}"}).status_code == 200


def test_remote_access_refused_unless_allowed(context_factory: Any) -> None:
    context = context_factory()
    with TestClient(context.create_app(), client=("10.1.2.3", 5000)) as client:
        response = client.get("/system")
        assert response.status_code == 403
        assert "RemoteAccessAllowed" in response.json()["Details"]
    allowed = context_factory(RemoteAccessAllowed=True, AuthenticationEnabled=False)
    with TestClient(allowed.create_app(), client=("10.1.2.3", 5000)) as client:
        assert client.get("/system").status_code == 200


def test_http_compression(api: Any) -> None:
    response = api.get("/openapi.json", headers={"Accept-Encoding": "gzip"})
    assert response.headers.get("content-encoding") == "gzip"
    assert response.json()["info"]["title"] == "Pharos"
