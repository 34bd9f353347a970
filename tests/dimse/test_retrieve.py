"""C-MOVE to a dcmtk storescp the test starts, and C-GET, driven by movescu and getscu."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.dicomgen import make_series
from tests.dimse.peers import (
    PHAROS_AET,
    ScriptedPeer,
    StoreScp,
    dcmtk,
    dicom_port,
    requires_dcmtk,
)

pytestmark = requires_dcmtk


@pytest.fixture
def backend_config() -> dict[str, object]:
    """These tests are about the network, not the index: SQLite only."""
    return {}


def movescu(api: Any, destination: str, *keys: str, model: str = "-S", aet: str = "MOVESCU") -> str:
    arguments: list[str] = []
    for key in keys:
        arguments += ["-k", key]
    result = dcmtk(
        "movescu", "-aet", aet, "-aec", PHAROS_AET, "-aem", destination, model, *arguments,
        "127.0.0.1", dicom_port(api),
    )  # fmt: skip
    return result.stdout


def store(api: Any, files: list[bytes]) -> list[str]:
    """Upload; the SOP Instance UIDs."""
    uids = []
    for data in files:
        answer = api.post("/instances", content=data).json()
        uids.append(api.get(f"/instances/{answer['ID']}/simplified-tags").json()["SOPInstanceUID"])
    return uids


def uids(datasets: list[Any]) -> list[str]:
    return sorted(str(ds.SOPInstanceUID) for ds in datasets)


def test_move_to_a_declared_modality(api_factory: Any, tmp_path: Path) -> None:
    with StoreScp(tmp_path / "received") as scp:
        api = api_factory(
            DicomModalities={"archive": scp.modality(), "mover": ["MOVESCU", "127.0.0.1", 104]}
        )
        first = store(api, make_series(3, patient_id="PM"))
        second = store(api, make_series(2, patient_id="PM"))
        other = store(api, make_series(1, patient_id="PO"))
        j2k = get_testdata_file("JPEG2000.dcm")
        assert j2k is not None
        (compressed,) = store(api, [Path(str(j2k)).read_bytes()])
        assert len(api.get("/instances").json()) == 7

        def study_of(uid: str) -> str:
            (match,) = api.post(
                "/tools/find",
                json={"Level": "Instance", "Query": {"SOPInstanceUID": uid}, "Expand": True},
            ).json()
            study = api.get(f"/instances/{match['ID']}/study").json()
            return str(study["MainDicomTags"]["StudyInstanceUID"])

        # A study.
        study = study_of(first[0])
        out = movescu(api, "STORESCP", "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study}")
        assert "Received Final Move Response (Success)" in out, out
        assert uids(scp.received()) == sorted(first)

        # A patient (Patient Root), whose two studies go.
        for path in scp.folder.iterdir():
            path.unlink()
        out = movescu(api, "STORESCP", "QueryRetrieveLevel=PATIENT", "PatientID=PM", model="-P")
        assert "Received Final Move Response (Success)" in out, out
        assert uids(scp.received()) == sorted(first + second)

        # Instances listed by UID; the compressed one goes as it is stored.
        for path in scp.folder.iterdir():
            path.unlink()
        listed = f"SOPInstanceUID={other[0]}\\{compressed}"
        out = movescu(api, "STORESCP", "QueryRetrieveLevel=IMAGE", listed)
        assert "Received Final Move Response (Success)" in out, out
        received = scp.received()
        assert uids(received) == sorted([other[0], compressed])
        j2k_received = next(ds for ds in received if ds.SOPInstanceUID == compressed)
        assert j2k_received.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.91"

        # Nothing matches: a success with no sub-operation.
        out = movescu(api, "STORESCP", "QueryRetrieveLevel=STUDY", "StudyInstanceUID=1.2.3.4")
        assert "Received Final Move Response (Success)" in out, out

        # No identifier for the level: a failure.
        out = movescu(api, "STORESCP", "QueryRetrieveLevel=STUDY", "PatientName=*")
        assert "Received Final Move Response" in out, out
        assert "Final Move Response (Success)" not in out, out
        assert "C-MOVE request at the study level without StudyInstanceUID" in api.server.log()

        # An AE title that DicomModalities does not declare.
        out = movescu(api, "NOWHERE", "QueryRetrieveLevel=PATIENT", "PatientID=PM", model="-P")
        assert "MoveDestinationUnknown" in out, out
        assert 'the destination "NOWHERE" is not declared in DicomModalities' in api.server.log()


def test_move_refused(api_factory: Any, tmp_path: Path) -> None:
    with StoreScp(tmp_path / "received") as scp:
        api = api_factory(
            DicomModalities={
                "archive": scp.modality(),
                "viewer": {"AET": "VIEWER", "Host": "127.0.0.1", "Port": 104, "AllowMove": False},
            }
        )
        store(api, make_series(1, patient_id="PR"))
        for aet in ("VIEWER", "STRANGER"):  # DicomAlwaysAllowMove is false by default
            out = movescu(
                api, "STORESCP", "QueryRetrieveLevel=PATIENT", "PatientID=PR", model="-P", aet=aet
            )
            assert "peer aborted association" in out.lower(), out
        assert scp.received() == []
        log = api.server.log()
        assert 'Refused C-MOVE from AET "VIEWER" (127.0.0.1): C-MOVE is not allowed' in log
        assert 'Refused C-MOVE from AET "STRANGER"' in log


def test_get(api_factory: Any, tmp_path: Path) -> None:
    api = api_factory(DicomModalities={"getter": ["GETSCU", "127.0.0.1", 104]})
    sent = store(api, make_series(3, patient_id="PG"))
    store(api, make_series(2, patient_id="PX"))
    folder = tmp_path / "got"
    folder.mkdir()
    result = dcmtk(
        "getscu", "-aet", "GETSCU", "-aec", PHAROS_AET, "-P", "-od", folder,
        "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=PG", "127.0.0.1", dicom_port(api),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    assert "Number of Completed Suboperations : 3" in result.stdout, result.stdout
    assert uids([pydicom.dcmread(path) for path in folder.iterdir()]) == sorted(sent)

    # Unknown AE titles may not C-GET (DicomAlwaysAllowGet is false by default).
    refused = dcmtk(
        "getscu", "-aet", "STRANGER", "-aec", PHAROS_AET, "-P", "-od", folder,
        "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=PG", "127.0.0.1", dicom_port(api),
    )  # fmt: skip
    assert "peer aborted association" in refused.stdout.lower(), refused.stdout
    assert 'Refused C-GET from AET "STRANGER"' in api.server.log()


def j2k_file() -> bytes:
    path = get_testdata_file("JPEG2000.dcm")  # JPEG 2000 (lossy)
    assert path is not None
    return Path(str(path)).read_bytes()


def test_move_as_the_destination_wants_it(api_factory: Any, tmp_path: Path) -> None:
    """The destination's LocalAet calls it, and each C-STORE names the C-MOVE requester and
    its message as the Move Originator."""
    destination = ScriptedPeer(aet="DEST")
    try:
        api = api_factory(
            DicomModalities={
                "dest": {
                    "AET": "DEST",
                    "Host": "127.0.0.1",
                    "Port": destination.port,
                    "LocalAet": "PHAROSOUT",
                    "Timeout": 5,
                },
                "mover": ["MOVESCU", "127.0.0.1", 104],
            }
        )
        sent = store(api, make_series(2, patient_id="PD"))
        out = movescu(api, "DEST", "QueryRetrieveLevel=PATIENT", "PatientID=PD", model="-P")
        assert "Received Final Move Response (Success)" in out, out
    finally:
        destination.close()
    assert sorted(uid for *_, uid in destination.stores) == sorted(sent)
    message_ids = re.findall(r"Sending Move Request \(MsgID (\d+)\)", out)
    assert message_ids, out
    assert {tuple(s[:3]) for s in destination.stores} == {
        ("PHAROSOUT", "MOVESCU", int(message_ids[0]))
    }


def test_move_transcodes_for_the_destination(api_factory: Any, tmp_path: Path) -> None:
    """A destination accepting only implicit VR little endian gets the compressed instance
    decompressed, unless its AllowTranscoding is false."""
    with (
        StoreScp(tmp_path / "loose", aet="LOOSE", accept=["+xi"]) as loose,
        StoreScp(tmp_path / "strict", aet="STRICT", accept=["+xi"]) as strict,
    ):
        api = api_factory(
            DicomModalities={
                "loose": loose.modality(),
                "strict": {
                    "AET": "STRICT",
                    "Host": "127.0.0.1",
                    "Port": strict.port,
                    "AllowTranscoding": False,
                },
                "mover": ["MOVESCU", "127.0.0.1", 104],
            }
        )
        (plain,) = store(api, make_series(1, patient_id="PT"))
        (compressed,) = store(api, [j2k_file()])
        listed = f"SOPInstanceUID={plain}\\{compressed}"
        out = movescu(api, "LOOSE", "QueryRetrieveLevel=IMAGE", listed)
        assert "Received Final Move Response (Success)" in out, out
        received = {str(ds.SOPInstanceUID): ds for ds in loose.received()}
        assert sorted(received) == sorted([plain, compressed])
        for ds in received.values():
            assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
        source = pydicom.dcmread(io.BytesIO(j2k_file()))
        assert np.array_equal(received[compressed].pixel_array, source.pixel_array)

        out = movescu(api, "STRICT", "QueryRetrieveLevel=IMAGE", listed)
        assert "Final Move Response (Warning: SubOperationsCompleteOneOrMoreFailures)" in out, out
        assert uids(strict.received()) == [plain]
        assert "transcoding is disabled for this modality" in api.server.log()


def test_get_transcodes_for_the_requester(api_factory: Any, tmp_path: Path) -> None:
    """getscu proposes the uncompressed syntaxes only: the compressed instance comes
    decompressed."""
    api = api_factory(DicomModalities={"getter": ["GETSCU", "127.0.0.1", 104]})
    (compressed,) = store(api, [j2k_file()])
    folder = tmp_path / "got"
    folder.mkdir()
    result = dcmtk(
        "getscu", "-aet", "GETSCU", "-aec", PHAROS_AET, "-od", folder,
        "-k", "QueryRetrieveLevel=IMAGE", "-k", f"SOPInstanceUID={compressed}",
        "127.0.0.1", dicom_port(api),
    )  # fmt: skip
    assert "Number of Completed Suboperations : 1" in result.stdout, result.stdout
    (got,) = [pydicom.dcmread(path) for path in folder.iterdir()]
    assert got.SOPInstanceUID == compressed
    assert not got.file_meta.TransferSyntaxUID.is_compressed
    source = pydicom.dcmread(io.BytesIO(j2k_file()))
    assert np.array_equal(got.pixel_array, source.pixel_array)
