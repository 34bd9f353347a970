"""Orthanc peers and DICOMweb servers as `WebServiceParameters` reads them: both forms, the
public rendering without secrets, the registry, and the HTTP errors of remote services."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from pharos.model.errors import ErrorCode, PharosError
from pharos.services.web_services import (
    HttpClientFactory,
    HttpSettings,
    WebServiceRegistry,
    check_answer,
    format_public,
    parse_configured,
    parse_web_service,
    serialize,
    transport_error,
)


def test_array_forms() -> None:
    peer = parse_web_service("p", ["http://host:8042"])
    assert (peer.url, peer.username, peer.password) == ("http://host:8042/", "", "")
    peer = parse_web_service("p", ["https://host/orthanc/", "alice", "pw"])
    assert (peer.url, peer.username, peer.password) == ("https://host/orthanc/", "alice", "pw")
    assert parse_web_service("p", ["host:8042"]).url == "http://host:8042/"  # as curl


@pytest.mark.parametrize(
    "value",
    [
        [],
        ["http://h/", "user"],  # Orthanc: "The HTTP password is not provided"
        ["http://h/", "", "password"],
        ["ftp://h/"],
        [""],
        [8042],
        "http://h/",
        {"Url": "http://h/", "Timeout": -1},
        {"Url": "http://h/", "Timeout": "5"},
        {"Url": "http://h/", "HttpHeaders": {"A": 1}},
        {"Url": "http://h/", "HttpHeaders": ["A"]},
        {"Url": "http://h/", "Pkcs11": "yes"},
        {"Url": "http://h/", "Other": [1]},
        {"Username": "a"},
    ],
)
def test_invalid_definitions(value: Any) -> None:
    with pytest.raises(PharosError) as caught:
        parse_web_service("p", value)
    assert caught.value.code is ErrorCode.BAD_FILE_FORMAT


def test_object_form_and_renderings() -> None:
    value = {
        "URL": "http://h:1",
        "Username": "u",
        "Password": "pw",
        "HttpHeaders": {"Token": "secret"},
        "CertificateFile": "c.pem",
        "CertificateKeyFile": "k.pem",
        "CertificateKeyPassword": "kp",
        "Timeout": 42,
        "HasDelete": True,
        "Number": 3,
    }
    service = parse_web_service("s", value, "DICOMweb server")
    assert service.properties == {"HasDelete": "1", "Number": "3"}
    assert service.bool_property("HasDelete", False) is True
    assert service.bool_property("ChunkedTransfers", True) is True
    assert format_public(service) == {
        "Url": "http://h:1/",
        "Username": "u",
        "Password": None,
        "CertificateFile": "c.pem",
        "CertificateKeyFile": None,
        "CertificateKeyPassword": None,
        "Pkcs11": False,
        "Timeout": 42,
        "HttpHeaders": ["Token"],
        "HasDelete": "1",
        "Number": "3",
    }
    # what the index and saved jobs keep gives the same service back
    assert parse_web_service("s", serialize(service), "DICOMweb server") == service
    assert "Password" not in serialize(service, include_passwords=False)
    with pytest.raises(PharosError):
        parse_web_service("s", {"Url": "http://h/", "Flag": "maybe"}).bool_property("Flag", True)


def test_configured_section_errors_stop_the_start() -> None:
    assert list(parse_configured("OrthancPeers", {"a": ["http://a/"]})) == ["a"]
    with pytest.raises(ValueError, match="OrthancPeers 'b'"):
        parse_configured("OrthancPeers", {"b": ["http://b/", "user"]})


class MemoryStore:
    def __init__(self) -> None:
        self.rows: dict[str, str] = {}

    def stored_services(self) -> dict[str, str]:
        return dict(sorted(self.rows.items()))

    def stored_service(self, name: str) -> str | None:
        return self.rows.get(name)

    def put_service(self, name: str, definition: str) -> None:
        self.rows[name] = definition

    def delete_service(self, name: str) -> bool:
        return self.rows.pop(name, None) is not None


@pytest.mark.parametrize("stored", [False, True])
def test_registry(stored: bool) -> None:
    store = MemoryStore() if stored else None
    registry = WebServiceRegistry("Orthanc peer", {}, store)
    registry.put("b", ["http://b/"])
    registry.put("a", {"Url": "http://a/", "Username": "u", "Password": "p"})
    assert [s.name for s in registry.snapshot()] == ["a", "b"]
    assert registry.require("a").password == "p"
    registry.put("b", ["http://b2/"])
    assert registry.require("b").url == "http://b2/"
    registry.delete("b")
    with pytest.raises(PharosError) as caught:
        registry.require("b")
    assert caught.value.code is ErrorCode.UNKNOWN_RESOURCE
    assert "No Orthanc peer with symbolic name: b" in str(caught.value)
    with pytest.raises(PharosError):
        registry.delete("b")
    for bad in ("", "a/b", "x" * 256):
        with pytest.raises(PharosError):
            registry.put(bad, ["http://x/"])
    with pytest.raises(PharosError):
        registry.put("c", ["nope://x/"])
    assert [s.name for s in registry.snapshot()] == ["a"]
    if store is not None:
        store.rows["broken"] = "{not json"  # a manual edit: left out, not fatal
        assert [s.name for s in registry.snapshot()] == ["a"]


def test_remote_refusals() -> None:
    peer = parse_web_service("p", ["http://h/"], "Orthanc peer")

    def refused(status: int, body: bytes = b"") -> PharosError:
        with pytest.raises(PharosError) as caught:
            check_answer(peer, httpx.Response(status, content=body), "GET /system")
        return caught.value

    check_answer(peer, httpx.Response(200), "GET /system")
    unauthorized = refused(401)
    assert (unauthorized.code, unauthorized.http_status) == (ErrorCode.UNAUTHORIZED, 502)
    assert refused(404).code is ErrorCode.UNKNOWN_RESOURCE
    failed = refused(400, b'{"Details": "Bad file format"}')
    assert (failed.code, failed.http_status) == (ErrorCode.NETWORK_PROTOCOL, 502)
    assert "Bad file format" in str(failed)
    timeout = transport_error(peer, httpx.ReadTimeout("slow"))
    assert (timeout.code, timeout.http_status) == (ErrorCode.TIMEOUT, 504)
    down = transport_error(peer, httpx.ConnectError("refused"))
    assert (down.code, down.http_status) == (ErrorCode.NETWORK_PROTOCOL, 502)


def test_client_settings() -> None:
    factory = HttpClientFactory(HttpSettings(timeout=7, verify_peers=False))
    peer = parse_web_service("p", {"Url": "http://h/", "Username": "u", "Password": "p"})
    with factory.client(peer) as client:
        assert client.timeout.read == 7
        assert client.base_url == "http://h/"
    with factory.client(parse_web_service("p", {"Url": "http://h/", "Timeout": 3})) as client:
        assert client.timeout.read == 3
    with pytest.raises(PharosError) as caught:
        factory.client(parse_web_service("p", {"Url": "http://h/", "Pkcs11": True}))
    assert caught.value.code is ErrorCode.NOT_IMPLEMENTED
    missing = parse_web_service("p", {"Url": "https://h/", "CertificateFile": "/nonexistent"})
    with pytest.raises(PharosError) as caught:
        factory.client(missing)
    assert caught.value.code is ErrorCode.BAD_FILE_FORMAT
