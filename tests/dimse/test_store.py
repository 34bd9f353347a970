"""C-ECHO and C-STORE against a real `pharos serve`, with dcmtk's echoscu and storescu."""

from __future__ import annotations

import io
import socket
import time
from pathlib import Path
from typing import Any

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
)
from pynetdicom import AE
from pynetdicom.dimse_messages import C_STORE_RQ
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode
from pynetdicom.pdu import P_DATA_TF

from tests.dicomgen import make_dataset, to_bytes
from tests.dimse.peers import PHAROS_AET, dicom_port, echoscu, requires_dcmtk, storescu

pytestmark = requires_dcmtk

# storescu's option proposing each transfer syntax (with -R: only what the files need)
PROPOSE = {
    ExplicitVRLittleEndian: "-xe",
    ImplicitVRLittleEndian: "-xi",
    ExplicitVRBigEndian: "-xb",
    DeflatedExplicitVRLittleEndian: "-xd",
    JPEGBaseline8Bit: "-xy",
    "1.2.840.10008.1.2.4.91": "-xw",  # JPEG 2000
    "1.2.840.10008.1.2.5": "-xr",  # RLE lossless
}


def write(path: Path, ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> Path:
    ds.file_meta.TransferSyntaxUID = syntax
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def sample(name: str) -> Path:
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(str(path))


def test_echo(api: Any) -> None:
    result = echoscu(api)
    assert result.returncode == 0, result.stdout
    assert "Received Echo Response (Success)" in result.stdout
    # DicomCheckCalledAet is false by default: any called AE title will do.
    assert "Success" in echoscu(api, aec="SOMEONE").stdout


def test_store_a_folder_and_several_transfer_syntaxes(api: Any, tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    study, series = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    sent: dict[str, str] = {}  # SOP Instance UID -> transfer syntax
    for i in range(4):
        ds = make_dataset(patient_id="P-STORE", study_uid=study, series_uid=series, seed=i)
        write(folder / f"sub{i % 2}" / f"{i}.dcm", ds)
        sent[ds.SOPInstanceUID] = ExplicitVRLittleEndian
    result = storescu(api, [folder], "+sd", "+r")
    assert result.returncode == 0, result.stdout

    singles = tmp_path / "singles"
    files: list[tuple[Path, str]] = []
    for syntax in (ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian):
        ds = make_dataset(patient_id="P-STORE", study_uid=study, series_uid=series)
        files.append((write(singles / f"{syntax}.dcm", ds, syntax), syntax))
    for name in ("SC_rgb_jpeg_dcmtk.dcm", "JPEG2000.dcm", "MR_small_RLE.dcm"):
        path = sample(name)
        files.append((path, str(pydicom.dcmread(path).file_meta.TransferSyntaxUID)))
    for path, syntax in files:
        result = storescu(api, [path], "-R", PROPOSE[syntax])
        assert result.returncode == 0, result.stdout
        sent[str(pydicom.dcmread(path).SOPInstanceUID)] = syntax

    instances = api.get("/instances", params={"expand": ""}).json()
    assert len(instances) == len(sent) == 10
    for instance in instances:
        uid = instance["MainDicomTags"]["SOPInstanceUID"]
        metadata = api.get(f"/instances/{instance['ID']}/metadata", params={"expand": ""}).json()
        assert metadata["TransferSyntax"] == sent[uid], uid
        assert metadata["RemoteAET"] == "STORESCU"
        assert metadata["CalledAET"] == PHAROS_AET
        assert metadata["RemoteIP"] == "127.0.0.1"
        assert metadata["Origin"] == "DicomProtocol"
        stored = pydicom.dcmread(io.BytesIO(api.get(f"/instances/{instance['ID']}/file").content))
        assert stored.SOPInstanceUID == uid
        assert stored.file_meta.TransferSyntaxUID == sent[uid]
    changes = api.get("/changes", params={"limit": 1000}).json()["Changes"]
    new = {c["ID"] for c in changes if c["ChangeType"] == "NewInstance"}
    assert new == {instance["ID"] for instance in instances}


def test_resent_instance_is_a_success(api: Any, tmp_path: Path) -> None:
    path = write(tmp_path / "a.dcm", make_dataset())
    for _ in range(2):
        result = storescu(api, [path])
        assert result.returncode == 0, result.stdout
        assert "Received Store Response (Success)" in result.stdout
    assert len(api.get("/instances").json()) == 1


def _associate(api: Any, *contexts: tuple[str, str], aet: str = "PYNETDICOM") -> Any:
    ae = AE(ae_title=aet)
    for sop_class, syntax in contexts:
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate("127.0.0.1", dicom_port(api), ae_title=PHAROS_AET)
    assert assoc.is_established
    return assoc


def test_bad_instance_gets_a_failure_status_and_stores_nothing(api: Any) -> None:
    ds = make_dataset()
    del ds.StudyInstanceUID  # Orthanc's identifiers cannot be computed
    assoc = _associate(api, (CTImageStorage, ExplicitVRLittleEndian))
    try:
        answer = assoc.send_c_store(ds)
    finally:
        assoc.release()
    assert answer.Status == 0xC000  # Error: Cannot understand
    assert "StudyInstanceUID" in answer.ErrorComment
    assert api.get("/instances").json() == []
    assert api.stored_files() == []


def test_peer_vanishing_mid_store_leaves_nothing(api: Any) -> None:
    assoc = _associate(api, (CTImageStorage, ExplicitVRLittleEndian))
    ds = make_dataset(rows=512, columns=512)  # 512 KB of pixel data: several PDUs
    request = C_STORE()
    request.MessageID = 1
    request.AffectedSOPClassUID = CTImageStorage
    request.AffectedSOPInstanceUID = ds.SOPInstanceUID
    request.Priority = 2
    request.DataSet = io.BytesIO(encode(ds, False, True))
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    context = assoc.accepted_contexts[0].context_id
    fragments = list(message.encode_msg(context, assoc.acceptor.maximum_length))
    assert len(fragments) > 3
    sock = assoc.dul.socket.socket
    for primitive in fragments[: len(fragments) // 2]:
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        sock.sendall(pdu.encode())
    # The peer disappears: no A-ABORT, no A-RELEASE, the connection just drops.
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    assoc.kill()

    assert echoscu(api).returncode == 0  # the server goes on
    assert api.get("/instances").json() == []
    assert api.get("/changes").json()["Changes"] == []
    assert api.stored_files() == []


def test_unknown_sop_classes_only_when_accepted(api_factory: Any) -> None:
    private = "1.2.826.0.1.3680043.9.9999.1"  # a SOP class no dictionary knows
    ds = make_dataset(SOPClassUID=private)
    for accepted in (False, True):
        api = api_factory(UnknownSopClassAccepted=accepted)
        ae = AE(ae_title="PRIVATE")
        ae.add_requested_context(private, ExplicitVRLittleEndian)
        ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
        assoc = ae.associate("127.0.0.1", dicom_port(api), ae_title=PHAROS_AET)
        assert assoc.is_established
        try:
            syntaxes = [str(cx.abstract_syntax) for cx in assoc.accepted_contexts]
            assert (private in syntaxes) is accepted
            if accepted:
                assert assoc.send_c_store(ds).Status == 0x0000
        finally:
            assoc.release()
        stored = api.get("/instances").json()
        assert len(stored) == (1 if accepted else 0)


def test_transfer_syntax_groups_and_timeouts(api_factory: Any) -> None:
    api = api_factory(JpegTransferSyntaxAccepted=False, DicomScpTimeout=1, MaximumPduLength=65536)
    ae = AE(ae_title="SYNTAXES")
    ae.add_requested_context(CTImageStorage, JPEGBaseline8Bit)
    ae.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.4.90")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", dicom_port(api), ae_title=PHAROS_AET)
    assert assoc.is_established
    accepted = {str(cx.transfer_syntax[0]) for cx in assoc.accepted_contexts}
    assert accepted == {"1.2.840.10008.1.2.4.90", ExplicitVRLittleEndian}
    assert assoc.acceptor.maximum_length == 65536
    # DicomScpTimeout: an association without requests is closed by the server.
    deadline = time.monotonic() + 15
    while assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not assoc.is_established
    assert assoc.is_aborted


def test_dicom_server_disabled(server_factory: Any) -> None:
    server = server_factory({"DicomServerEnabled": False})
    with socket.socket() as probe:
        probe.bind(("0.0.0.0", int(server.config["DicomPort"])))  # nobody listens there


def test_dicom_port_in_use_stops_the_start_up(server_factory: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        try:
            server_factory({"DicomPort": taken.getsockname()[1]})
        except RuntimeError as exc:
            assert "Cannot listen for DICOM on port" in str(exc)
        else:
            raise AssertionError("the server started without its DICOM port")


def test_store_bytes_are_kept(api: Any, tmp_path: Path) -> None:
    """The data set is stored as received: same bytes after the meta header."""
    data = to_bytes(make_dataset(rows=32, columns=32))
    path = tmp_path / "x.dcm"
    path.write_bytes(data)
    assert storescu(api, [path], "-R", "-xe").returncode == 0
    (instance,) = api.get("/instances").json()
    stored = api.get(f"/instances/{instance}/file").content
    assert dataset_part(stored) == dataset_part(data)


def dataset_part(data: bytes) -> bytes:
    """What follows the file meta information (its group length is at offset 140)."""
    assert data[128:132] == b"DICM"
    return data[144 + int.from_bytes(data[140:144], "little") :]


def test_unusable_settings_stop_the_start_up(server_factory: Any, tmp_path: Path) -> None:
    for i, (config, message) in enumerate(
        (
            ({"DicomTlsEnabled": True}, "DicomTlsEnabled is true but DicomTlsCertificate,"),
            ({"DicomModalities": {"pacs": ["PACS", "host", "http"]}}, 'modality "pacs": the port'),
            ({"MaximumPduLength": 1000}, "MaximumPduLength must be in [4096, 131072]"),
        )
    ):
        workdir = tmp_path / f"unusable{i}"
        workdir.mkdir()
        try:
            server_factory(config, workdir)
        except RuntimeError as exc:
            assert f"pharos: configuration error: {message}" in str(exc)
        else:
            raise AssertionError(f"the server started with {config}")
