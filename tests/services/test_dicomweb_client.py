"""The DICOMweb client's pure parts: reading multipart answers chunk by chunk, URIs, run
modes, STOW-RS answers, and the request bodies it refuses before any request."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
import pytest

from pharos.model.errors import ErrorCode, PharosError
from pharos.services.dicomweb_client import (
    DicomWebClient,
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
