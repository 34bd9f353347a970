"""The DicomWeb section: Enable and Root, as in Orthanc's DICOMweb plugin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pharos.config import load_config


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
    path.write_text(json.dumps({"DicomWeb": {"Root": "/dw/", "Ssl": True, "Bogus": 1}}))
    config = load_config([path])
    assert config.section("DicomWeb").get_str("Root") == "/dw/"
    assert config.section("DicomWeb").get_bool("Enable")
    (ssl, bogus) = config.warnings
    assert "DicomWeb.Ssl" in ssl and "not supported by Pharos yet" in ssl
    assert "Unknown option" in bogus and "DicomWeb.Bogus" in bogus
