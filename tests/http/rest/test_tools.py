"""Orthanc's run-time tools on a real `pharos serve`: accepted transfer syntaxes and unknown
SOP classes (applied from the next association), log levels by category, restart with the
configuration read again, shutdown; and the requests they refuse without changing anything."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)
from pynetdicom import AE, build_context

from pharos.dicom.transfer_syntaxes import KNOWN
from tests.conftest import Api, ServerProcess
from tests.dimse.peers import PHAROS_AET, dicom_port, findscu, requires_dcmtk

PRIVATE_SOP_CLASS = "1.2.826.0.1.3680043.9.9999.1"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    config = {"DicomModalities": {"find": ["FINDSCU", "127.0.0.1", 104]}}
    server = ServerProcess(tmp_path_factory.mktemp("tools"), config).start(timeout=120)
    client = Api(base_url=server.url, timeout=60)
    client.server = server
    try:
        yield client
    finally:
        client.close()
        server.stop()


def accepted(api: Api, sop_class: str, syntax: str) -> bool:
    """Whether the DICOM server accepts this one context (pynetdicom aborts otherwise)."""
    ae = AE(ae_title="TOOLS")
    ae.requested_contexts = [build_context(sop_class, [syntax])]
    assoc = ae.associate("127.0.0.1", dicom_port(api), ae_title=PHAROS_AET)
    if not assoc.is_established:
        return False
    result = bool(assoc.accepted_contexts)
    assoc.release()
    return result


def test_accepted_transfer_syntaxes(api: Api) -> None:
    assert api.get("/tools/accepted-transfer-syntaxes").json() == list(KNOWN)
    assert accepted(api, CTImageStorage, JPEGBaseline8Bit)
    answer = api.put(
        "/tools/accepted-transfer-syntaxes",
        json=[ImplicitVRLittleEndian, "1.2.840.10008.1.2.4.5?"],
    )
    jpeg = [f"1.2.840.10008.1.2.4.{n}" for n in range(50, 60)]
    assert answer.status_code == 200
    assert answer.json() == [ImplicitVRLittleEndian, *jpeg]
    assert api.get("/tools/accepted-transfer-syntaxes").json() == answer.json()
    try:
        assert accepted(api, CTImageStorage, ImplicitVRLittleEndian)
        assert accepted(api, CTImageStorage, JPEGBaseline8Bit)
        assert not accepted(api, CTImageStorage, ExplicitVRLittleEndian)
        # One UID as plain text
        one = api.put("/tools/accepted-transfer-syntaxes", content=ExplicitVRLittleEndian)
        assert one.json() == [ExplicitVRLittleEndian]
        assert accepted(api, CTImageStorage, ExplicitVRLittleEndian)
        assert not accepted(api, CTImageStorage, ImplicitVRLittleEndian)
        # Nothing at all: no storage, the other services still there
        assert api.put("/tools/accepted-transfer-syntaxes", json=[]).json() == []
        assert not accepted(api, CTImageStorage, ExplicitVRLittleEndian)
        assert accepted(api, "1.2.840.10008.1.1", ImplicitVRLittleEndian)  # Verification
    finally:
        restored = api.put("/tools/accepted-transfer-syntaxes", json=["*"])
    assert restored.json() == list(KNOWN)


@pytest.mark.parametrize(
    ("body", "status", "details"),
    [
        (b'["9.9.9.9"]', 400, "Unknown transfer syntax: '9.9.9.9'"),
        (b"[42]", 400, "A transfer syntax must be a non-empty string, not 42"),
        (b'["1.2.840.10008.1.2", ""]', 400, "A transfer syntax must be a non-empty string"),
        (b'{"UID": "1.2.840.10008.1.2"}', 400, "Expected a JSON array"),
        (b"[1.2", 400, "Invalid JSON"),
        (b"", 400, "Expected a JSON array"),
    ],
)
def test_accepted_transfer_syntaxes_refused(
    api: Api, body: bytes, status: int, details: str
) -> None:
    before = api.get("/tools/accepted-transfer-syntaxes").json()
    answer = api.put("/tools/accepted-transfer-syntaxes", content=body)
    assert answer.status_code == status
    assert details in answer.json()["Details"]
    assert api.get("/tools/accepted-transfer-syntaxes").json() == before


def test_unknown_sop_class_accepted(api: Api) -> None:
    assert api.get("/tools/unknown-sop-class-accepted").text == "0"
    assert not accepted(api, PRIVATE_SOP_CLASS, ExplicitVRLittleEndian)
    try:
        assert api.put("/tools/unknown-sop-class-accepted", content=b"1").status_code == 200
        assert api.get("/tools/unknown-sop-class-accepted").text == "1"
        assert accepted(api, PRIVATE_SOP_CLASS, ExplicitVRLittleEndian)
        refused = api.put("/tools/unknown-sop-class-accepted", content=b"maybe")
        assert refused.status_code == 400
        assert "Expected 1, 0, true or false" in refused.json()["Details"]
        assert api.get("/tools/unknown-sop-class-accepted").text == "1"
    finally:
        api.put("/tools/unknown-sop-class-accepted", content=b"false")
    assert api.get("/tools/unknown-sop-class-accepted").text == "0"
    assert not accepted(api, PRIVATE_SOP_CLASS, ExplicitVRLittleEndian)


@requires_dcmtk
def test_log_levels(api: Api, tmp_path: Path) -> None:
    assert api.get("/tools/log-level").text == "default"
    categories = ["generic", "plugins", "http", "dicom", "sqlite", "jobs", "lua"]
    for category in categories:
        assert api.get(f"/tools/log-level-{category}").text == "default"
    findscu(api, tmp_path, ["QueryRetrieveLevel=STUDY", "PatientID"])
    assert "at level STUDY" not in api.server.log()  # INFO: not shown by default

    assert api.put("/tools/log-level-dicom", content=b"verbose").status_code == 200
    assert api.get("/tools/log-level-dicom").text == "verbose"
    assert api.get("/tools/log-level-jobs").text == "default"
    findscu(api, tmp_path, ["QueryRetrieveLevel=STUDY", "PatientID"])
    assert 'C-FIND from AET "FINDSCU" (127.0.0.1) at level STUDY' in api.server.log()

    # generic leaves the other categories where they are; the main level sets them all
    assert api.put("/tools/log-level-generic", content=b"trace").status_code == 200
    assert api.get("/tools/log-level-generic").text == "trace"
    assert api.get("/tools/log-level-jobs").text == "default"
    assert api.get("/tools/log-level-dicom").text == "verbose"
    assert api.put("/tools/log-level", content=b"Trace\n").status_code == 200
    assert api.get("/tools/log-level").text == "trace"
    assert {api.get(f"/tools/log-level-{c}").text for c in categories} == {"trace"}

    refused = api.put("/tools/log-level-jobs", content=b"loud")
    assert refused.status_code == 400
    assert refused.json()["Details"] == "Unknown log level 'loud': default, verbose or trace"
    assert api.get("/tools/log-level-jobs").text == "trace"
    assert api.put("/tools/log-level", content=b"default").status_code == 200
    assert {api.get(f"/tools/log-level-{c}").text for c in categories} == {"default"}
    assert api.get("/tools/log-level-unknown").status_code == 404


def _wait_until(condition: object, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():  # type: ignore[operator]
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.1)


def test_reset_restarts_with_the_configuration_read_again(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, {"Name": "Before"}).start(timeout=120)
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            instance = client.post("/instances", content=_dicom()).json()["ID"]
            client.put("/tools/accepted-transfer-syntaxes", json=[ImplicitVRLittleEndian])
            config = json.loads(server.config_path.read_text())
            server.config_path.write_text(json.dumps({**config, "Name": "After"}))
            answer = client.post("/tools/reset")
            assert answer.status_code == 200 and answer.json() == {}
            _wait_until(lambda: client.get("/system").json()["Name"] == "After")
            assert server.process is not None and server.process.poll() is None  # same process
            assert client.get(f"/instances/{instance}").status_code == 200
            # run-time changes are gone: the configuration says every syntax
            assert client.get("/tools/accepted-transfer-syntaxes").json() == list(KNOWN)
        assert "Restarting: reading the configuration again" in server.log()
    finally:
        server.stop()


def test_shutdown_stops_the_process(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, {}).start(timeout=120)
    try:
        answer = httpx.post(server.url + "/tools/shutdown", timeout=60)
        assert answer.status_code == 200 and answer.json() == {}
        assert server.process is not None
        assert server.process.wait(timeout=60) == 0
        assert "Shutdown requested through the REST API" in server.log()
    finally:
        server.stop()


def _dicom() -> bytes:
    from tests.dicomgen import make_dicom

    return make_dicom()
