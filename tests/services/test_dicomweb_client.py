"""The DICOMweb client's pure parts: reading multipart answers chunk by chunk, URIs, run
modes, STOW-RS answers, and the request bodies it refuses before any request."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from pharos.index.base import Attachment, ResourceRef
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.dicomweb_client import (
    DicomWebClient,
    StowLimits,
    StowPlan,
    _boundary,
    _check_stow_answer,
    _run_mode,
    encode_uri,
    read_parts,
)
from pharos.services.web_services import (
    HttpClientFactory,
    HttpSettings,
    WebServiceRegistry,
    parse_web_service,
)

SERVER = parse_web_service("s", ["http://remote/dicom-web/"], "DICOMweb server")


def multipart(boundary: str, *parts: bytes) -> bytes:
    body = b""
    for part in parts:
        body += f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
def test_read_parts_in_any_chunking(chunk: int) -> None:
    parts = [b"first part", b"", b"--boundar not quite\r\n--bound", b"\x00" * 300]
    body = multipart("boundary", *parts)
    chunks = [body[i : i + chunk] for i in range(0, len(body), chunk)]
    found = list(read_parts(chunks, "boundary"))
    assert [data for _, data in found] == parts
    assert all(headers["content-type"] == "application/dicom" for headers, _ in found)


def test_read_parts_empty_and_malformed() -> None:
    assert list(read_parts([], "b")) == []
    assert list(read_parts([b"--b--\r\n"], "b")) == []
    for broken in (b"no boundary here", multipart("b", b"data")[:-12], b"--b\r\nX: y"):
        with pytest.raises(PharosError) as caught:
            list(read_parts([broken], "b"))
        assert caught.value.code is ErrorCode.NETWORK_PROTOCOL


def test_boundary_of_the_answer() -> None:
    assert _boundary(SERVER, 'multipart/related; type="application/dicom"; boundary="a b"') == "a b"
    assert _boundary(SERVER, "Multipart/Related;boundary=xyz") == "xyz"
    for bad in ("application/dicom+json", "multipart/related", ""):
        with pytest.raises(PharosError):
            _boundary(SERVER, bad)


def test_encode_uri() -> None:
    assert encode_uri("/studies", {}) == "studies"
    assert encode_uri("studies", {"PatientID": "A B&C", "limit": "2"}) == (
        "studies?PatientID=A%20B%26C&limit=2"
    )
    assert encode_uri("/studies?limit=1", {"offset": "2"}) == "studies?limit=1&offset=2"
    for bad in ("/../system", "studies/../../x", "http://elsewhere/studies"):
        with pytest.raises(PharosError):
            encode_uri(bad, {})


def test_run_mode() -> None:
    assert _run_mode({}, True).asynchronous is False
    assert _run_mode({}, False).asynchronous is True
    assert _run_mode({"Synchronous": False}, True).asynchronous is True
    assert _run_mode({"Asynchronous": True, "Priority": 3}, True).priority == 3
    assert _run_mode({"Asynchronous": False}, False).asynchronous is False
    for bad in ({"Synchronous": "no"}, {"Asynchronous": 1}, {"Priority": "high"}):
        with pytest.raises(PharosError):
            _run_mode(bad, True)


def stow_answer(referenced: int, failed: int = 0) -> httpx.Response:
    value = {"00081199": {"vr": "SQ", "Value": [{}] * referenced}}
    if failed:
        value["00081198"] = {"vr": "SQ", "Value": [{}] * failed}
    return httpx.Response(200, content=orjson.dumps(value))


def test_stow_answer_checks() -> None:
    _check_stow_answer(SERVER, stow_answer(2), 2)
    for response, count in (
        (stow_answer(1), 2),
        (stow_answer(2, failed=1), 2),
        (httpx.Response(200, content=b"not json"), 1),
        (httpx.Response(200, content=b"[]"), 1),
    ):
        with pytest.raises(PharosError) as caught:
            _check_stow_answer(SERVER, response, count)
        assert caught.value.http_status == 502


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("get", b"{}"),
        ("get", b'{"Uri": 1}'),
        ("get", b'{"Uri": "/studies", "Arguments": {"a": 1}}'),
        ("get", b'{"Uri": "/studies", "HttpHeaders": []}'),
        ("qido", b"[]"),
        ("stow", b'{"Resources": "x"}'),
        ("stow", b'{"Resources": [1]}'),
        ("retrieve", b'{"Resources": {}}'),
        ("retrieve", b'{"Resources": [{"Series": "1.2"}]}'),
        ("retrieve", b'{"Resources": [{"Study": "1", "Instance": "3"}]}'),
        ("retrieve", b'{"Resources": [{"Study": "1", "Series": 2}]}'),
        ("wado", b'{"Uri": "/studies/1", "Synchronous": "yes"}'),
    ],
)
def test_bad_bodies(tmp_path: Path, route: str, body: bytes) -> None:
    def no_request(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"no request expected, got {request.url}")

    class Clients(HttpClientFactory):
        def client(self, service: object) -> httpx.Client:
            return httpx.Client(transport=httpx.MockTransport(no_request))

    registry = WebServiceRegistry("DICOMweb server", {"s": SERVER})
    client = DicomWebClient(registry, Clients(HttpSettings()), None, None, None)  # type: ignore[arg-type]
    method = {
        "get": client.get,
        "qido": client.qido,
        "stow": client.stow_plan,
        "retrieve": client.retrieve_plan,
        "wado": client.wado_plan,
    }[route]
    with pytest.raises(PharosError) as caught:
        method("s", body)
    assert caught.value.http_status == 400
    with pytest.raises(PharosError) as caught:
        method("unknown", body)
    assert caught.value.code is ErrorCode.UNKNOWN_RESOURCE


class FakeStore:
    """The index and file service of `count` instances of `size` bytes each."""

    def __init__(self, count: int, size: int):
        self.files = {f"i{n}": bytes([n]) * size for n in range(count)}

    def lookup(self, public_id: str) -> ResourceRef | None:
        if public_id not in self.files:
            return None
        return ResourceRef(0, Level.INSTANCE, public_id, None)

    def dicom_attachment(self, ref: ResourceRef) -> Attachment:
        size = len(self.files[ref.public_id])
        return Attachment(1, "uuid", size, size, 1, None, None)

    def read_dicom(self, ref: ResourceRef) -> bytes:
        return self.files[ref.public_id]


def stow_requests(limits: StowLimits, count: int, size: int) -> list[int]:
    """The number of instances in each STOW-RS request for `count` instances of `size`."""
    requests: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        parts = request.read().count(b"Content-Type: application/dicom\r\n")
        requests.append(parts)
        return stow_answer(parts)

    class Clients(HttpClientFactory):
        def client(self, service: object) -> httpx.Client:
            return httpx.Client(transport=httpx.MockTransport(answer), base_url=SERVER.url)

    store = FakeStore(count, size)
    registry = WebServiceRegistry("DICOMweb server", {"s": SERVER})
    client = DicomWebClient(registry, Clients(HttpSettings()), store, store, None, limits)  # type: ignore[arg-type]
    plan = StowPlan(SERVER, list(store.files), {}, None)  # type: ignore[arg-type]
    assert client.run_stow(plan) == {"InstancesCount": str(count), "NetworkSizeMB": "0"}
    return requests


def test_stow_requests_follow_the_limits() -> None:
    assert stow_requests(StowLimits(), 25, 100) == [10, 10, 5]  # Orthanc's defaults
    assert stow_requests(StowLimits(instances=4, size=0), 9, 100) == [4, 4, 1]
    # The instance that reaches the size is the last of its request.
    assert stow_requests(StowLimits(instances=0, size=250), 7, 100) == [3, 3, 1]
    assert stow_requests(StowLimits(instances=2, size=250), 5, 100) == [2, 2, 1]
    assert stow_requests(StowLimits(instances=0, size=0), 30, 100) == [30]


def test_delete_on_a_server_declared_with_has_delete() -> None:
    deleting = parse_web_service(
        "d", {"Url": "http://remote/dicom-web/", "HasDelete": True}, "DICOMweb server"
    )
    seen: list[tuple[str, str, str | None]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.headers.get("x-token")))
        return httpx.Response(404 if "404" in request.url.path else 204)

    class Clients(HttpClientFactory):
        def client(self, service: object) -> httpx.Client:
            return httpx.Client(transport=httpx.MockTransport(answer), base_url=deleting.url)

    registry = WebServiceRegistry("DICOMweb server", {"s": SERVER, "d": deleting})
    client = DicomWebClient(registry, Clients(HttpSettings()), None, None, None)  # type: ignore[arg-type]
    assert client.operations("d")[0] == "delete"
    assert "delete" not in client.operations("s")
    client.delete("d", b'{"Level": "Study", "StudyInstanceUID": "1.2"}')
    client.delete(
        "d",
        b'{"Level": "instance", "StudyInstanceUID": "1.2", "SeriesInstanceUID": "1.2.3",'
        b' "SOPInstanceUID": "1.2.3.4", "HttpHeaders": {"X-Token": "t"}}',
    )
    assert seen == [
        ("DELETE", "/dicom-web/studies/1.2", None),
        ("DELETE", "/dicom-web/studies/1.2/series/1.2.3/instances/1.2.3.4", "t"),
    ]
    for body in (
        b"{}",
        b'{"Level": "Patient", "StudyInstanceUID": "1.2"}',
        b'{"Level": "Series", "StudyInstanceUID": "1.2"}',
        b'{"Level": "Study", "StudyInstanceUID": 12}',
    ):
        with pytest.raises(PharosError) as caught:
            client.delete("d", body)
        assert caught.value.http_status == 400, body
    with pytest.raises(PharosError) as caught:
        client.delete("s", b'{"Level": "Study", "StudyInstanceUID": "1.2"}')
    assert caught.value.http_status == 400 and "HasDelete" in caught.value.details
    with pytest.raises(PharosError) as caught:
        client.delete("d", b'{"Level": "Study", "StudyInstanceUID": "404"}')
    assert caught.value.code is ErrorCode.UNKNOWN_RESOURCE
    assert len(seen) == 3
