"""Refused associations and requests, as Orthanc refuses them, and what the log says."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.dicomgen import make_dataset
from tests.dimse.peers import PHAROS_AET, dcmtk, dicom_port, echoscu, requires_dcmtk, storescu

pytestmark = requires_dcmtk

NOTHING_ALWAYS_ALLOWED = {
    "DicomAlwaysAllowEcho": False,
    "DicomAlwaysAllowStore": False,
    "DicomAlwaysAllowFind": False,
    "DicomAlwaysAllowMove": False,
    "DicomAlwaysAllowGet": False,
}


@pytest.fixture
def backend_config() -> dict[str, object]:
    """These tests are about the network, not the index: SQLite only."""
    return {}


def test_wrong_called_aet_is_rejected(api_factory: Any) -> None:
    api = api_factory(DicomCheckCalledAet=True)
    refused = echoscu(api, aec="SOMEONE")
    assert refused.returncode != 0
    assert "Association Rejected" in refused.stdout
    assert "Called AE Title Not Recognized" in refused.stdout
    assert 'calling "SOMEONE": it called the AE title "SOMEONE", not "ORTHANC"' in (
        api.server.log()
    )
    assert echoscu(api, aec="orthanc").returncode == 0  # AE titles compare case-insensitively


def test_unknown_calling_aet_is_rejected_when_nothing_is_always_allowed(api_factory: Any) -> None:
    api = api_factory(
        **NOTHING_ALWAYS_ALLOWED,
        DicomModalities={"known": ["KNOWN", "127.0.0.1", 104]},
    )
    refused = echoscu(api, aet="STRANGER")
    assert refused.returncode != 0
    assert "Calling AE Title Not Recognized" in refused.stdout
    assert '"STRANGER" is not declared in DicomModalities' in api.server.log()
    assert echoscu(api, aet="KNOWN").returncode == 0


def test_modality_host_is_checked(api_factory: Any) -> None:
    api = api_factory(
        **NOTHING_ALWAYS_ALLOWED,
        DicomCheckModalityHost=True,
        DicomModalities={
            "remote": ["REMOTE", "10.254.254.254", 104],
            "here": ["HERE", "127.0.0.1", 1],
        },
    )
    assert echoscu(api, aet="REMOTE").returncode != 0
    assert "connects from 127.0.0.1, but DicomModalities declares it at 10.254.254.254" in (
        api.server.log()
    )
    assert echoscu(api, aet="HERE").returncode == 0


def test_forbidden_operations(api_factory: Any, tmp_path: Path) -> None:
    api = api_factory(
        DicomAlwaysAllowStore=False,
        DicomModalities={
            "viewer": {
                "AET": "VIEWER",
                "Host": "127.0.0.1",
                "Port": 104,
                "AllowStore": False,
                "AllowEcho": False,
                "AllowFind": False,
            },
            "modality": ["MODALITY", "127.0.0.1", 104],
        },
    )
    path = tmp_path / "ct.dcm"
    make_dataset().save_as(path, enforce_file_format=True)

    # C-STORE from a modality without AllowStore, and from one that is not declared at all
    # (DicomAlwaysAllowStore is false): the association is aborted, nothing is stored.
    for aet in ("VIEWER", "STRANGER"):
        result = storescu(api, [path], aet=aet)
        assert result.returncode != 0, result.stdout
        assert "peer aborted association" in result.stdout.lower(), result.stdout
    assert api.get("/instances").json() == []
    log = api.server.log()
    assert 'Refused C-STORE from AET "VIEWER" (127.0.0.1): C-STORE is not allowed' in log
    assert 'Refused C-STORE from AET "STRANGER" (127.0.0.1): the AE title "STRANGER" is not' in log

    # C-ECHO stays allowed by DicomAlwaysAllowEcho, whatever AllowEcho says (as Orthanc).
    assert echoscu(api, aet="VIEWER").returncode == 0

    find = dcmtk(
        "findscu", "-aet", "VIEWER", "-aec", PHAROS_AET, "-S", "-k", "QueryRetrieveLevel=STUDY",
        "127.0.0.1", dicom_port(api),
    )  # fmt: skip
    assert "peer aborted association" in find.stdout.lower(), find.stdout  # findscu exits with 0
    assert 'Refused C-FIND from AET "VIEWER"' in api.server.log()

    result = storescu(api, [path], aet="MODALITY")
    assert result.returncode == 0, result.stdout
    assert len(api.get("/instances").json()) == 1


def test_echo_refused_when_not_allowed(api_factory: Any) -> None:
    api = api_factory(
        DicomAlwaysAllowEcho=False,
        DicomModalities={
            "mute": {"AET": "MUTE", "Host": "127.0.0.1", "Port": 104, "AllowEcho": False}
        },
    )
    result = echoscu(api, aet="MUTE")
    assert "peer aborted association" in result.stdout.lower()  # echoscu exits with 0 all the same
    assert 'Refused C-ECHO from AET "MUTE"' in api.server.log()
