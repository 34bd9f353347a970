"""The Lua routing flows (tests/plugins/lua/test_plugin.py) as a Python plugin in a real
server, against dcmtk's storescp: modify then forward (POST /instances/{id}/modify, then
/modalities/{id}/store-straight with the modified file, through the in-process REST API),
and routing by tags (CT to one modality, MR to another, the rest nowhere)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Api, ServerProcess
from tests.dicomgen import make_dataset, to_bytes
from tests.dimse.peers import StoreScp, requires_dcmtk
from tests.jobs.fakes import wait_for

pytestmark = requires_dcmtk

FLOWS = '''
"""Modify then forward MODIFY* patients to "pacs"; route CT to "ct" and MR to "mr"."""
import json

from pharos.plugins import hookimpl

REST = []


@hookimpl
def pharos_startup(context):
    REST.append(context.rest)


def call(method, uri, body=b""):
    status, _, answer = REST[0].call(method, uri, body, {}, False)
    if status != 200:
        raise RuntimeError(f"{method} {uri}: {status} {answer!r}")
    return answer


@hookimpl
def pharos_on_stored_instance(instance_id, simplified_tags):
    if simplified_tags.get("PatientID", "").startswith("MODIFY"):
        change = {"Replace": {"StationName": "ROUTED"}, "Remove": ["SeriesDescription"]}
        modified = call("POST", f"/instances/{instance_id}/modify", json.dumps(change).encode())
        call("POST", "/modalities/pacs/store-straight", modified)
        return
    target = {"CT": "ct", "MR": "mr"}.get(simplified_tags.get("Modality"))
    if target is not None:
        call("POST", f"/modalities/{target}/store", instance_id.encode())
'''


class World:
    def __init__(self, api: Api, pacs: StoreScp, ct: StoreScp, mr: StoreScp):
        self.api = api
        self.pacs = pacs
        self.ct = ct
        self.mr = mr


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("flows")
    (root / "flows.py").write_text(FLOWS)
    with (
        StoreScp(root / "pacs", aet="PACS") as pacs,
        StoreScp(root / "ct", aet="CTSCP") as ct,
        StoreScp(root / "mr", aet="MRSCP") as mr,
    ):
        config = {
            "Plugins": ["flows.py"],
            "DicomModalities": {
                "pacs": pacs.modality(),
                "ct": ct.modality(),
                "mr": mr.modality(),
            },
        }
        server = ServerProcess(root, config).start(timeout=120)
        api = Api(base_url=server.url, timeout=60)
        api.server = server
        try:
            yield World(api, pacs, ct, mr)
        finally:
            api.close()
            server.stop()


def test_modify_then_forward(world: World) -> None:
    original = make_dataset(patient_id="MODIFY1", SeriesDescription="Original")
    stored = world.api.post("/instances", content=to_bytes(original)).json()["ID"]
    wait_for(lambda: len(world.pacs.received()) == 1, timeout=60)
    (sent,) = world.pacs.received()
    assert sent.StationName == "ROUTED"
    assert "SeriesDescription" not in sent
    assert sent.PatientID == "MODIFY1"
    assert sent.SOPInstanceUID != original.SOPInstanceUID  # a new instance, as Orthanc
    # The original stays as it was; the modified file was never stored here.
    assert world.api.get("/instances").json() == [stored]
    tags = world.api.get(f"/instances/{stored}/simplified-tags").json()
    assert tags["SeriesDescription"] == "Original"


def test_routing_by_tags(world: World) -> None:
    sent = {
        modality: make_dataset(patient_id=f"ROUTE-{modality}", Modality=modality)
        for modality in ("US", "CT", "MR")  # US first: told before the others
    }
    for dataset in sent.values():
        assert world.api.post("/instances", content=to_bytes(dataset)).status_code == 200
    wait_for(lambda: len(world.ct.received()) == 1 and len(world.mr.received()) == 1, 60)
    assert [ds.SOPInstanceUID for ds in world.ct.received()] == [sent["CT"].SOPInstanceUID]
    assert [ds.SOPInstanceUID for ds in world.mr.received()] == [sent["MR"].SOPInstanceUID]
    # US went nowhere (its listener ran before those of CT and MR: one thread, in order).
    assert all(ds.Modality != "US" for ds in world.pacs.received())
