"""The DicomWeb section: Enable and Root, as in Orthanc's DICOMweb plugin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pharos.config import load_config
from tests.dicomgen import make_dicom


@pytest.fixture
def backend() -> str:
    return "sqlite"


def test_root_moves_the_api(api_factory: Any) -> None:
    api = api_factory(DicomWeb={"Root": "/dw/"})
    assert api.get("/dw/studies").json() == []
    assert api.get("/dicom-web/studies").status_code == 404


def test_disabled(api_factory: Any) -> None:
    api = api_factory(DicomWeb={"Enable": False})
    assert api.get("/dicom-web/studies").status_code == 404


def test_bad_root_stops_the_start_up(server_factory: Any) -> None:
    with pytest.raises(RuntimeError, match=r"DicomWeb\.Root"):
        server_factory({"DicomWeb": {"Root": "/"}})


def test_plugin_options_pharos_lacks_are_reported_as_such(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"DicomWeb": {"Root": "/dw/", "ReadOnly": True, "Bogus": 1}}))
    config = load_config([path])
    assert config.section("DicomWeb").get_str("Root") == "/dw/"
    assert config.section("DicomWeb").get_bool("Enable")
    (read_only, bogus) = config.warnings
    assert "DicomWeb.ReadOnly" in read_only and "not supported by Pharos yet" in read_only
    assert "Unknown option" in bogus and "DicomWeb.Bogus" in bogus


def test_host_and_ssl_fix_the_urls_of_answers(api_factory: Any) -> None:
    # For clients whose Host header lacks the port (dicomweb-client sends "localhost") and
    # for reverse proxies: the RetrieveURLs and BulkDataURIs use DicomWeb.Host and Ssl.
    api = api_factory(DicomWeb={"Host": "pacs.example.org:8443", "Ssl": True})
    assert api.post("/instances", content=make_dicom(study_uid="1.2.3")).is_success
    (study,) = api.get("/dicom-web/studies", headers={"Host": "localhost"}).json()
    url = "https://pacs.example.org:8443/dicom-web/studies/1.2.3"
    assert study["00081190"]["Value"] == [url]


def test_urls_of_answers_follow_the_request_by_default(api_factory: Any) -> None:
    api = api_factory()
    assert api.post("/instances", content=make_dicom(study_uid="1.2.3")).is_success
    (study,) = api.get("/dicom-web/studies", headers={"Host": "viewer.test:81"}).json()
    assert study["00081190"]["Value"] == ["http://viewer.test:81/dicom-web/studies/1.2.3"]


def test_bad_host_stops_the_start_up(server_factory: Any) -> None:
    with pytest.raises(RuntimeError, match=r"DicomWeb\.Host"):
        server_factory({"DicomWeb": {"Host": "https://pacs.example.org/"}})


def test_forwarded_headers_of_a_reverse_proxy_make_the_urls(api_factory: Any) -> None:
    api = api_factory()
    assert api.post("/instances", content=make_dicom(study_uid="1.2.3")).is_success

    def url(**headers: str) -> str:
        (study,) = api.get("/dicom-web/studies", headers=headers).json()
        return str(study["00081190"]["Value"][0])

    assert url(Forwarded='for=10.0.0.1;proto=https;host="pacs.example.org", for=10.0.0.2') == (
        "https://pacs.example.org/dicom-web/studies/1.2.3"
    )
    assert url(**{"X-Forwarded-Host": "pacs.example.org:8443", "X-Forwarded-Proto": "https"}) == (
        "https://pacs.example.org:8443/dicom-web/studies/1.2.3"
    )
    # Malformed values are ignored, never copied into the URLs.
    assert url(Forwarded="proto=gopher;host=evil.test/x?y", Host="viewer.test") == (
        "http://viewer.test/dicom-web/studies/1.2.3"
    )


def test_public_root_is_the_path_of_the_urls(api_factory: Any) -> None:
    api = api_factory(DicomWeb={"PublicRoot": "/pacs/dicom-web/", "Host": "example.org"})
    assert api.post("/instances", content=make_dicom(study_uid="1.2.3")).is_success
    (study,) = api.get("/dicom-web/studies").json()
    assert study["00081190"]["Value"] == ["http://example.org/pacs/dicom-web/studies/1.2.3"]
    assert api.get("/pacs/dicom-web/studies").status_code == 404  # still served at Root


def test_stow_limits_must_not_be_negative(server_factory: Any) -> None:
    with pytest.raises(RuntimeError, match=r"DicomWeb\.StowMaxInstances"):
        server_factory({"DicomWeb": {"StowMaxInstances": -1}})
