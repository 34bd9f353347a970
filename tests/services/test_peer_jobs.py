"""Sending to an Orthanc peer in-process, over httpx's mock transport standing for the peer:
what is posted (as stored, gzip'd, transcoded), Permissive, failures, and the OrthancPeerStore
job stepped by hand, serialized and re-created."""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pydicom
import pytest

from pharos.index.base import Reception
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.jobs import StepStatus, StopReason, Submission
from pharos.services.files import FileService
from pharos.services.options import ServiceOptions
from pharos.services.peer_jobs import PEER_STORE_JOB, PeerJobs
from pharos.services.peers import PeerService
from pharos.services.store import StoreService
from pharos.services.web_services import (
    HttpClientFactory,
    HttpSettings,
    WebService,
    WebServiceRegistry,
    parse_web_service,
)
from pharos.storage.filesystem import FileSystemStorage
from tests.dicomgen import make_series

Handler = Callable[[httpx.Request], httpx.Response]


class MockClients(HttpClientFactory):
    """Clients whose transport is a function standing for the peer."""

    def __init__(self, handler: Handler):
        super().__init__(HttpSettings())
        self.handler = handler

    def client(self, service: WebService) -> httpx.Client:
        return httpx.Client(
            base_url=service.url, transport=httpx.MockTransport(lambda r: self.handler(r))
        )


class World:
    def __init__(self, tmp_path: Path):
        self.index: SqlIndex = open_sqlite_index(tmp_path / "index")
        storage = FileSystemStorage(tmp_path / "files")
        self.store = StoreService(self.index, storage, ServiceOptions())
        self.received: list[httpx.Request] = []
        self.status = 200
        self.clients = MockClients(self.peer)
        registry = WebServiceRegistry(
            "Orthanc peer", {"peer": parse_web_service("peer", ["http://peer:8042/"])}
        )
        self.peers = PeerService(
            registry, self.clients, self.index, FileService(self.index, storage), 90
        )
        self.jobs = PeerJobs(self.peers)
        self.files = make_series(3)
        self.ids = [self.store.store(data, Reception("RestApi")).ids for data in self.files]

    def peer(self, request: httpx.Request) -> httpx.Response:
        self.received.append(request)
        if self.status != 200:
            return httpx.Response(self.status, json={"Details": "refused by the peer"})
        return httpx.Response(200, json={"ID": "x", "Status": "Success"})

    def close(self) -> None:
        self.store.close()
        self.index.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    created = World(tmp_path)
    yield created
    created.close()


def test_synchronous_store_posts_each_file_as_stored(world: World) -> None:
    study = world.ids[0].study
    content = world.jobs.store("peer", orjson.dumps({"Resources": [study]}))
    assert isinstance(content, dict)
    assert [r.url.path for r in world.received] == ["/instances"] * 3
    assert [r.content for r in world.received] == world.files
    assert world.received[0].headers["content-type"] == "application/dicom"
    assert content == {
        "Compress": False,
        "Description": "REST API",
        "FailedInstancesCount": 0,
        "InstancesCount": 3,
        "ParentResources": [study],
        "Peer": ["http://peer:8042/"],
        "Size": str(sum(len(f) for f in world.files)),
        "SizeMB": 0,
    }


def test_compressed_and_transcoded(world: World) -> None:
    body = {
        "Resources": [world.ids[0].instance],
        "Compress": True,
        "Transcode": "1.2.840.10008.1.2.5",  # RLE lossless
    }
    content = world.jobs.store("peer", orjson.dumps(body))
    assert isinstance(content, dict) and content["Transcode"] == "1.2.840.10008.1.2.5"
    (request,) = world.received
    assert request.headers["content-encoding"] == "gzip"
    sent = pydicom.dcmread(io.BytesIO(gzip.decompress(request.content)))
    assert sent.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
    assert int(content["Size"]) == len(request.content)


def test_refusals(world: World) -> None:
    study = world.ids[0].study
    world.status = 400
    with pytest.raises(PharosError) as caught:
        world.jobs.store("peer", orjson.dumps([study]))
    assert caught.value.code is ErrorCode.NETWORK_PROTOCOL and caught.value.http_status == 502
    assert "refused by the peer" in str(caught.value)
    assert len(world.received) == 1  # stopped at the first refusal
    permissive = world.jobs.store("peer", orjson.dumps({"Resources": [study], "Permissive": True}))
    assert isinstance(permissive, dict) and permissive["FailedInstancesCount"] == 3
    assert permissive["FailedInstances"] == [ids.instance for ids in world.ids]
    world.status = 401  # bad credentials are never ignored
    with pytest.raises(PharosError) as caught:
        world.jobs.store("peer", orjson.dumps({"Resources": [study], "Permissive": True}))
    assert caught.value.code is ErrorCode.UNAUTHORIZED


@pytest.mark.parametrize(
    ("name", "body", "code"),
    [
        ("nope", b'["x"]', ErrorCode.UNKNOWN_RESOURCE),
        ("peer", b"{", ErrorCode.BAD_FILE_FORMAT),
        ("peer", b'{"Resources": ["' + b"0" * 8 + b'-0-0-0-0"]}', ErrorCode.BAD_FILE_FORMAT),
        ("peer", b'{"Resources": [], "Transcode": 1}', ErrorCode.BAD_FILE_FORMAT),
        ("peer", b'{"Resources": [], "Transcode": "1.2.3"}', ErrorCode.BAD_FILE_FORMAT),
        ("peer", b'{"Resources": [], "Compress": "yes"}', ErrorCode.BAD_FILE_FORMAT),
        (
            "peer",
            b'["00000000-00000000-00000000-00000000-00000000"]',
            ErrorCode.UNKNOWN_RESOURCE,
        ),
    ],
)
def test_bad_requests_send_nothing(world: World, name: str, body: bytes, code: ErrorCode) -> None:
    with pytest.raises(PharosError) as caught:
        world.jobs.store(name, body)
    assert caught.value.code is code
    assert world.received == []


def test_job_steps_serializes_and_resumes(world: World) -> None:
    study = world.ids[0].study
    submitted = world.jobs.store(
        "peer", orjson.dumps({"Resources": [study], "Synchronous": False, "Priority": 4})
    )
    assert isinstance(submitted, Submission) and submitted.priority == 4
    job = submitted.job
    assert job.job_type == PEER_STORE_JOB
    job.start()
    assert job.step().status is StepStatus.CONTINUE
    assert job.progress() == pytest.approx(1 / 3)
    saved = orjson.loads(orjson.dumps(job.serialize()))
    assert saved["Peer"]["Url"] == "http://peer:8042/"
    resumed = world.jobs.factories()[PEER_STORE_JOB](saved)
    resumed.start()
    statuses = [resumed.step().status for _ in range(3)]
    assert statuses == [StepStatus.CONTINUE, StepStatus.CONTINUE, StepStatus.SUCCESS]
    resumed.stop(StopReason.SUCCESS)
    assert [r.content for r in world.received] == world.files  # each sent once
    assert resumed.public_content()["InstancesCount"] == 3
    assert resumed.public_content()["Size"] == str(sum(len(f) for f in world.files))
    resumed.reset()
    assert resumed.progress() == 0.0


def test_peer_down(world: World) -> None:
    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    world.clients.handler = down
    with pytest.raises(PharosError) as caught:
        world.jobs.store("peer", orjson.dumps([world.ids[0].study]))
    assert caught.value.code is ErrorCode.NETWORK_PROTOCOL and caught.value.http_status == 502
    with pytest.raises(PharosError) as caught:
        world.peers.system("peer")
    assert caught.value.http_status == 502
