"""Python plugins in a real `pharos serve`, listed in `Plugins` (a folder of .py files):
routing every stored instance to dcmtk's storescp through the in-process REST API, refusing
instances by tag (REST and C-STORE), a listener that fails, an HTTP request filter, C-FIND
filters both ways, transfer syntaxes and unknown SOP classes per peer, routes of their own,
and a plugin that cannot be loaded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, JPEGBaseline8Bit
from pynetdicom import AE, build_context

from tests.conftest import Api, ServerProcess
from tests.dicomgen import make_dataset, make_dicom, to_bytes
from tests.dimse.peers import (
    PHAROS_AET,
    ScriptedPeer,
    StoreScp,
    dcmtk,
    dicom_port,
    findscu,
    requires_dcmtk,
    storescu,
)

pytestmark = requires_dcmtk

ROUTER = '''
"""Routes every instance of a patient ROUTE* to the modality "scp"."""
from pharos.plugins import hookimpl

__version__ = "2.0"
REST = []


@hookimpl
def pharos_startup(context):
    REST.append(context.rest)


@hookimpl
def pharos_on_stored_instance(instance_id, simplified_tags):
    if simplified_tags.get("PatientID", "").startswith("ROUTE"):
        status, _, body = REST[0].call(
            "POST", "/modalities/scp/store", instance_id.encode(), {}, False
        )
        if status != 200:
            raise RuntimeError(f"routing failed: {status} {body!r}")


@hookimpl
def pharos_plugin_info():
    return {"ID": "router", "Description": "Routes to scp"}


JOBS = []


@hookimpl
def pharos_on_job(event, job_id, job_type):
    JOBS.append([event, job_id, job_type])


@hookimpl
def pharos_routes():
    from fastapi import APIRouter

    api = APIRouter()

    @api.get("/router/jobs")
    def jobs():
        return JOBS

    return [api]
'''

GATE = '''
"""Filters: no MR, no DELETE, C-FIND aliases, no JPEG for NOJPEG, private classes for FRIEND."""
from fastapi import APIRouter
from pharos.plugins import hookimpl


@hookimpl
def pharos_incoming_instance_filter(instance):
    return instance.dataset.Modality != "MR"


@hookimpl
def pharos_incoming_http_request_filter(request):
    return request.method != "DELETE" and request.get.get("block") != "1"


@hookimpl
def pharos_incoming_find_filter(query, origin):
    if origin.get("RemoteAet") == "INTRUDER":
        return False
    if query.get("0010,0020") == "ALIAS":
        return {**query, "0010,0020": "FINDME"}
    return None


@hookimpl
def pharos_outgoing_find_filter(query, modality):
    return {**query, "0008,1030": "Rewritten for " + modality}


@hookimpl
def pharos_accept_transfer_syntax(aet, syntax_group):
    return False if aet == "NOJPEG" and syntax_group == "Jpeg" else None


@hookimpl
def pharos_accept_unknown_sop_class(aet):
    return aet == "FRIEND"


@hookimpl
def pharos_routes():
    api = APIRouter()

    @api.get("/gate/hello")
    def hello():
        return {"Hello": "from a plugin"}

    return [api]
'''

CRASHING = """
from pharos.plugins import hookimpl


@hookimpl
def pharos_on_stored_instance(instance_id, simplified_tags):
    if simplified_tags.get("PatientID") == "CRASH":
        raise RuntimeError("crashing listener for " + instance_id)
"""


class World:
    def __init__(self, server: ServerProcess, api: Api, scp: StoreScp, peer: ScriptedPeer):
        self.server = server
        self.api = api
        self.scp = scp
        self.peer = peer
        self.queries: list[Dataset] = []


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("plugins")
    folder = root / "plugins"
    folder.mkdir()
    (folder / "router.py").write_text(ROUTER)
    (folder / "gate.py").write_text(GATE)
    (folder / "crashing.py").write_text(CRASHING)
    (folder / "broken.py").write_text("raise ImportError('this plugin is broken')\n")
    queries: list[Dataset] = []

    def on_find(event: Any) -> Iterator[tuple[int, Dataset | None]]:
        queries.append(event.identifier)
        yield 0x0000, None

    peer = ScriptedPeer(aet="QRPEER", find=on_find)
    with StoreScp(root / "received") as scp:
        config = {
            "Plugins": [str(folder)],
            "DicomModalities": {
                "scp": scp.modality(),
                "qr": ["QRPEER", "127.0.0.1", peer.port],
            },
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowFind": True,
        }
        server = ServerProcess(root, config).start(timeout=120)
        api = Api(base_url=server.url, timeout=60)
        api.server = server
        made = World(server, api, scp, peer)
        made.queries = queries
        try:
            yield made
        finally:
            api.close()
            server.stop()
            peer.close()


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def upload(api: Api, **tags: Any) -> httpx.Response:
    return api.post("/instances", content=make_dicom(**tags))


def test_plugins_listed_broken_one_only_logged(world: World) -> None:
    assert world.api.get("/plugins").json() == ["crashing", "gate", "router"]
    assert world.api.get("/plugins/router").json() == {
        "ID": "router",
        "Version": "2.0",
        "Description": "Routes to scp",
    }
    missing = world.api.get("/plugins/broken")
    assert missing.status_code == 404
    assert missing.json()["Details"] == "Unknown plugin: broken"
    assert "Plugin broken not loaded" in world.server.log()
    assert "this plugin is broken" in world.server.log()


def test_routing_every_stored_instance_to_storescp(world: World) -> None:
    uids = []
    for number in range(3):
        dataset = make_dataset(patient_id="ROUTE1", instance_number=number + 1)
        uids.append(dataset.SOPInstanceUID)
        assert world.api.post("/instances", content=to_bytes(dataset)).status_code == 200
    wait_for(lambda: len(world.scp.received()) >= 3)
    assert sorted(ds.SOPInstanceUID for ds in world.scp.received()) == sorted(uids)


def test_refused_by_tag_over_rest_and_c_store(world: World, tmp_path: Path) -> None:
    refused = upload(world.api, PatientID="MR1", Modality="MR")
    assert refused.status_code == 403
    assert refused.json()["OrthancError"] == "Access to a resource is forbidden"
    assert refused.json()["Details"] == "Instance refused by plugin gate: filtered out"
    path = tmp_path / "mr.dcm"
    path.write_bytes(make_dicom(PatientID="MR2", Modality="MR"))
    result = storescu(world.api, [path])
    assert "Store Response (Refused: OutOfResources)" in result.stdout, result.stdout
    ids = world.api.post("/tools/lookup", content=b"MR1").json()
    ids += world.api.post("/tools/lookup", content=b"MR2").json()
    assert ids == []
    accepted = tmp_path / "ct.dcm"
    accepted.write_bytes(make_dicom(PatientID="CT1", Modality="CT"))
    assert "Store Response (Success)" in storescu(world.api, [accepted]).stdout


def test_failing_listener_keeps_instance_and_server(world: World) -> None:
    stored = upload(world.api, PatientID="CRASH")
    assert stored.status_code == 200
    instance = stored.json()["ID"]
    wait_for(lambda: f"crashing listener for {instance}" in world.server.log())
    assert world.api.get(f"/instances/{instance}").status_code == 200
    assert upload(world.api, PatientID="AFTER").status_code == 200


def test_http_filter_refuses_with_orthanc_error(world: World) -> None:
    instance = upload(world.api, PatientID="KEEP").json()["ID"]
    refused = world.api.delete(f"/instances/{instance}")
    assert refused.status_code == 403
    body = refused.json()
    assert body["HttpStatus"] == 403 and body["Method"] == "DELETE"
    assert body["Uri"] == f"/instances/{instance}"
    assert body["Details"] == f"DELETE /instances/{instance} refused by plugin gate: filtered out"
    assert world.api.get(f"/instances/{instance}").status_code == 200
    assert world.api.get("/system", params={"block": "1"}).status_code == 403
    assert world.api.get("/system", params={"block": "0"}).status_code == 200


def test_incoming_find_filter_rewrites_and_refuses(world: World, tmp_path: Path) -> None:
    upload(world.api, PatientID="FINDME", StudyDescription="Found")
    answers = findscu(
        world.api, tmp_path, ["QueryRetrieveLevel=STUDY", "PatientID=ALIAS", "StudyDescription"]
    )
    assert [(a.PatientID, a.StudyDescription) for a in answers] == [("FINDME", "Found")]
    result = dcmtk(
        "findscu", "-aet", "INTRUDER", "-aec", PHAROS_AET, "-S", "-k", "QueryRetrieveLevel=STUDY",
        "-k", "PatientID", "127.0.0.1", dicom_port(world.api),
    )  # fmt: skip
    assert "Final Find Response (Failed: UnableToProcess)" in result.stdout, result.stdout
    assert "C-FIND refused by plugin gate: filtered out" in world.server.log()


def test_outgoing_find_filter_rewrites_the_query(world: World) -> None:
    answer = world.api.post(
        "/modalities/qr/query", json={"Level": "Study", "Query": {"PatientID": "X*"}}
    )
    assert answer.status_code == 200, answer.text
    sent = world.queries[-1]
    assert sent.StudyDescription == "Rewritten for qr"
    assert sent.PatientID == "X*"
    assert sent.QueryRetrieveLevel == "STUDY"


def _accepted(world: World, aet: str, sop_class: str, syntax: str) -> bool:
    """Whether Pharos accepts the one context proposed (else pynetdicom aborts, as the
    association would be of no use)."""
    ae = AE(ae_title=aet)
    ae.requested_contexts = [build_context(sop_class, [syntax])]
    assoc = ae.associate("127.0.0.1", dicom_port(world.api), ae_title=PHAROS_AET)
    if not assoc.is_established:
        return False
    accepted = bool(assoc.accepted_contexts)
    assoc.release()
    return accepted


def test_transfer_syntaxes_and_unknown_sop_classes_per_peer(world: World) -> None:
    assert _accepted(world, "ANY", CTImageStorage, JPEGBaseline8Bit)
    assert not _accepted(world, "NOJPEG", CTImageStorage, JPEGBaseline8Bit)
    assert _accepted(world, "NOJPEG", CTImageStorage, ExplicitVRLittleEndian)
    private = "1.2.826.0.1.3680043.9.9999.1"
    assert _accepted(world, "FRIEND", private, ExplicitVRLittleEndian)
    assert not _accepted(world, "STRANGER", private, ExplicitVRLittleEndian)


def test_job_events(world: World) -> None:
    instance = upload(world.api, PatientID="JOB").json()["ID"]
    submitted = world.api.post(
        "/modalities/scp/store", json={"Resources": [instance], "Asynchronous": True}
    )
    assert submitted.status_code == 200, submitted.text
    job = submitted.json()["ID"]

    def events() -> list[list[str]]:
        return [e for e in world.api.get("/router/jobs").json() if e[1] == job]

    wait_for(lambda: len(events()) == 2)
    assert events() == [
        ["Submitted", job, "DicomModalityStore"],
        ["Success", job, "DicomModalityStore"],
    ]


def test_plugin_routes(world: World) -> None:
    assert world.api.get("/gate/hello").json() == {"Hello": "from a plugin"}
