"""DICOM TLS: the options read at start-up (in process), and real `pharos serve` processes with
dcmtk's tools over TLS both ways, Pharos to Pharos, and peers that must be refused."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.dimse_primitives import C_ECHO

from pharos.dimse.tls import DicomTls, DicomTlsOptions, failure_reason
from pharos.model.errors import PharosError
from pharos.services.modalities import Modality
from tests.conftest import free_port
from tests.dicomgen import make_dataset, to_bytes
from tests.dimse.certificates import Certificates, make_certificates, requires_openssl
from tests.dimse.peers import PHAROS_AET, StoreScp, dcmtk, dicom_port, requires_dcmtk

pytestmark = requires_openssl

VERIFICATION = "1.2.840.10008.1.1"


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@pytest.fixture
def backend_config() -> dict[str, object]:
    """These tests are about the network, not the index: SQLite only."""
    return {}


def echoscu_tls(api: Any, tls: list[str], certificates: Certificates) -> Any:
    """echoscu with the TLS options `tls`, trusting the test authority."""
    return dcmtk(
        "echoscu", *tls, "+cf", certificates.authority,
        "-aet", "ECHOSCU", "-aec", PHAROS_AET, "127.0.0.1", dicom_port(api),
    )  # fmt: skip


def storescu_tls(api: Any, tls: list[str], certificates: Certificates, *paths: Path) -> Any:
    return dcmtk(
        "storescu", *tls, "+cf", certificates.authority,
        "-aet", "STORESCU", "-aec", PHAROS_AET, "127.0.0.1", dicom_port(api), *paths,
    )  # fmt: skip


def instance_file(folder: Path, name: str = "ct.dcm", **kwargs: Any) -> Path:
    path = folder / name
    path.write_bytes(to_bytes(make_dataset(**kwargs)))
    return path


def wait_for_log(api: Any, text: str, timeout: float = 10.0) -> str:
    """The server's log once it holds `text` (the refusal is logged as the peer is told)."""
    deadline = time.monotonic() + timeout
    while True:
        log: str = api.server.log()
        if text in log or time.monotonic() > deadline:
            assert text in log, log
            return log
        time.sleep(0.05)


# -- the options, in process --------------------------------------------------------------------


def test_no_option_means_no_tls() -> None:
    tls = DicomTls.load(DicomTlsOptions())
    assert tls.server is None and tls.client is None
    plain = Modality(name="pacs", aet="PACS", host="h", port=104)
    assert tls.client_args(plain) is None


def test_the_contexts_follow_the_options(certificates: Certificates) -> None:
    pair = certificates.server
    files = (pair.certificate, pair.key, certificates.authority)
    required = DicomTls.load(DicomTlsOptions(True, *files))
    assert required.server is not None and required.server.verify_mode == ssl.CERT_REQUIRED
    optional = DicomTls.load(DicomTlsOptions(True, *files, remote_certificate_required=False))
    assert optional.server is not None and optional.server.verify_mode == ssl.CERT_OPTIONAL
    client_only = DicomTls.load(DicomTlsOptions(False, *files))
    assert client_only.server is None
    assert client_only.client is not None
    assert client_only.client.verify_mode == ssl.CERT_REQUIRED  # the peer's is always checked
    modality = Modality(name="pacs", aet="PACS", host="pacs.example", port=104, use_dicom_tls=True)
    assert client_only.client_args(modality) == (client_only.client, "pacs.example")


def test_use_dicom_tls_without_the_files_is_an_error() -> None:
    modality = Modality(name="pacs", aet="PACS", host="h", port=104, use_dicom_tls=True)
    with pytest.raises(PharosError, match='"pacs" has UseDicomTls, but DicomTlsCertificate'):
        DicomTls().client_args(modality)


def test_unusable_files_are_named(certificates: Certificates, tmp_path: Path) -> None:
    server, client = certificates.server, certificates.client
    trusted = certificates.authority
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n")
    for options, message in (
        (DicomTlsOptions(True), "DicomTlsEnabled is true but DicomTlsCertificate, "),
        (DicomTlsOptions(certificate=server.certificate), "DicomTlsCertificate is set but Dicom"),
        (
            DicomTlsOptions(True, tmp_path / "none.crt", server.key, trusted),
            f"DicomTlsCertificate: cannot read {tmp_path / 'none.crt'}: No such file",
        ),
        (
            DicomTlsOptions(True, server.key, server.key, trusted),
            f"DicomTlsCertificate: {server.key} holds no PEM certificate",
        ),
        (
            DicomTlsOptions(True, server.certificate, client.key, trusted),
            f"DicomTlsPrivateKey: {client.key} is not the private key of DicomTlsCertificate",
        ),
        (
            DicomTlsOptions(True, server.certificate, encrypted, trusted),
            "DicomTlsPrivateKey: " + str(encrypted) + " is encrypted",
        ),
        (
            DicomTlsOptions(True, server.certificate, server.key, tmp_path),
            f"DicomTlsTrustedCertificates: cannot read {tmp_path}",
        ),
    ):
        with pytest.raises(ValueError) as raised:
            DicomTls.load(options)
        assert message in str(raised.value)


def test_failure_reasons_are_in_words() -> None:
    missing = ssl.SSLError(1, "peer did not return a certificate")
    missing.reason = "PEER_DID_NOT_RETURN_A_CERTIFICATE"  # type: ignore[misc]
    assert "sent no certificate" in failure_reason(missing)
    alert = ssl.SSLError(1, "tlsv1 alert unknown ca")
    alert.reason = "TLSV1_ALERT_UNKNOWN_CA"  # type: ignore[misc]
    assert "does not trust the certificate of Pharos" in failure_reason(alert)
    assert "closed the connection" in failure_reason(ConnectionResetError())


# -- the server, with dcmtk ---------------------------------------------------------------------


@requires_dcmtk
def test_echo_and_store_with_a_trusted_certificate(
    api_factory: Any, certificates: Certificates, tmp_path: Path
) -> None:
    api = api_factory(**certificates.options())
    client = certificates.client.dcmtk()
    result = echoscu_tls(api, client, certificates)
    assert result.returncode == 0, result.stdout
    files = [instance_file(tmp_path, f"{n}.dcm", rows=16, columns=16) for n in range(3)]
    result = storescu_tls(api, client, certificates, *files)
    assert result.returncode == 0, result.stdout
    instances = api.get("/instances").json()
    assert len(instances) == 3
    assert api.get(f"/instances/{instances[0]}/metadata/RemoteAET").text == "STORESCU"
    assert "(DICOM TLS)" in api.server.log()  # the start-up line


@requires_dcmtk
def test_a_peer_without_certificate_is_refused_when_one_is_required(
    api_factory: Any, certificates: Certificates, tmp_path: Path
) -> None:
    api = api_factory(**certificates.options())
    anonymous = ["+tla"]  # TLS without a certificate
    result = storescu_tls(api, anonymous, certificates, instance_file(tmp_path))
    assert result.returncode != 0, result.stdout
    wait_for_log(api, "refused: the peer sent no certificate (DicomTlsRemoteCertificateRequired")
    assert api.get("/instances").json() == []


@requires_dcmtk
def test_a_peer_without_certificate_is_let_in_when_none_is_required(
    api_factory: Any, certificates: Certificates, tmp_path: Path
) -> None:
    api = api_factory(**certificates.options(DicomTlsRemoteCertificateRequired=False))
    result = storescu_tls(api, ["+tla"], certificates, instance_file(tmp_path))
    assert result.returncode == 0, result.stdout
    assert len(api.get("/instances").json()) == 1
    # A certificate it does present must still be trusted (dcmtk's --verify-peer-cert).
    result = echoscu_tls(api, certificates.rogue.dcmtk(), certificates)
    assert result.returncode != 0, result.stdout
    wait_for_log(api, "refused: the certificate of the peer is not trusted")


@requires_dcmtk
def test_an_untrusted_certificate_is_refused(
    api_factory: Any, certificates: Certificates, tmp_path: Path
) -> None:
    api = api_factory(**certificates.options())
    rogue = certificates.rogue.dcmtk()
    result = storescu_tls(api, rogue, certificates, instance_file(tmp_path))
    assert result.returncode != 0, result.stdout
    log = wait_for_log(api, "refused: the certificate of the peer is not trusted")
    assert "DICOM TLS connection from 127.0.0.1:" in log
    assert api.get("/instances").json() == []


@requires_dcmtk
def test_a_peer_not_trusting_pharos_is_logged(api_factory: Any, certificates: Certificates) -> None:
    api = api_factory(**certificates.options())
    result = dcmtk(
        "echoscu", *certificates.client.dcmtk(), "+cf", certificates.rogue.certificate,
        "-aec", PHAROS_AET, "127.0.0.1", dicom_port(api),
    )  # fmt: skip
    assert result.returncode != 0, result.stdout
    wait_for_log(api, "it does not trust the certificate of Pharos")


@requires_dcmtk
def test_plain_dicom_fails_and_the_server_keeps_serving(
    api_factory: Any, certificates: Certificates, tmp_path: Path
) -> None:
    api = api_factory(**certificates.options())
    result = dcmtk(
        "storescu", "-aec", PHAROS_AET, "127.0.0.1", dicom_port(api), instance_file(tmp_path)
    )
    assert result.returncode != 0, result.stdout
    wait_for_log(api, "refused: the peer does not speak TLS (plain DICOM?)")
    assert api.get("/instances").json() == []
    # A peer that connects and says nothing does not hold the others up: the handshake is
    # not made by the thread accepting connections.
    with socket.create_connection(("127.0.0.1", dicom_port(api))):
        result = echoscu_tls(api, certificates.client.dcmtk(), certificates)
        assert result.returncode == 0, result.stdout
    wait_for_log(api, "refused: the peer closed the connection during the TLS handshake")
    assert api.get("/system").status_code == 200


def test_decrypted_bytes_waiting_in_tls_are_read(
    api_factory: Any, certificates: Certificates
) -> None:
    """Two requests in one TLS record: once the first is read, the second is already
    decrypted in the socket, where `select` does not see it (`reactor.py` asks `pending()`)."""
    api = api_factory(**certificates.options())
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_cert_chain(certificates.client.certificate, certificates.client.key)
    context.load_verify_locations(certificates.authority)
    ae = AE("TWOINONE")
    ae.add_requested_context(VERIFICATION, ExplicitVRLittleEndian)
    ae.dimse_timeout = 10
    assoc = ae.associate(
        "127.0.0.1", dicom_port(api), ae_title=PHAROS_AET, tls_args=(context, "localhost")
    )
    assert assoc.is_established
    try:
        sock = assoc.dul.socket
        assert sock is not None
        send: Callable[[bytes], None] = sock.send
        held: list[bytes] = []

        def send_two_as_one(data: bytes) -> None:
            if data[:1] == b"\x04" and not held:  # the first P-DATA-TF waits for the second
                held.append(data)
                return
            send(b"".join([*held, data]))  # one write: one TLS record
            held.clear()

        sock.send = send_two_as_one  # type: ignore[method-assign]
        context_id = assoc.accepted_contexts[0].context_id
        # As send_c_echo does: pause the association's reactor, the answers are ours to read.
        assoc._reactor_checkpoint.clear()
        while not assoc._is_paused:
            time.sleep(0.001)
        for message_id in (1, 2):
            request = C_ECHO()
            request.MessageID = message_id
            request.AffectedSOPClassUID = VERIFICATION
            assoc.dimse.send_msg(request, context_id)
        answered = [assoc.dimse.get_msg(block=True)[1] for _ in range(2)]
        assert [getattr(a, "MessageIDBeingRespondedTo", None) for a in answered] == [1, 2]
        assert [a.Status for a in answered] == [0, 0]  # type: ignore[union-attr]
    finally:
        assoc._reactor_checkpoint.set()
        assoc.release()


# -- the client: Pharos calling over TLS ------------------------------------------------------


@requires_dcmtk
def test_echo_and_store_to_storescp_over_tls(
    api_factory: Any, certificates: Certificates, tmp_path: Path
) -> None:
    trust = ["+cf", str(certificates.authority)]
    with StoreScp(tmp_path / "tls", accept=("+xa", *certificates.server.dcmtk(), *trust)) as scp:
        api = api_factory(
            **certificates.options(certificates.client, DicomTlsEnabled=False),
            DicomModalities={"scp": {**_entry(scp.aet, scp.port), "UseDicomTls": True}},
        )
        assert api.post("/modalities/scp/echo", json={}).status_code == 200
        api.post("/instances", content=to_bytes(make_dataset())).raise_for_status()
        (instance,) = api.get("/instances").json()
        answer = api.post("/modalities/scp/store", json=[instance])
        assert answer.status_code == 200, answer.text
        assert answer.json()["InstancesCount"] == 1
        assert len(scp.received()) == 1


@requires_dcmtk
def test_an_untrusted_or_plain_peer_is_refused_by_the_client(
    api_factory: Any, certificates: Certificates, tmp_path: Path
) -> None:
    rogue = ("+xa", *certificates.rogue.dcmtk(), "+cf", str(certificates.authority))
    with (
        StoreScp(tmp_path / "rogue", accept=rogue) as untrusted,
        StoreScp(tmp_path / "plain") as plain,
    ):
        api = api_factory(
            **certificates.options(certificates.client, DicomTlsEnabled=False),
            DicomModalities={
                "rogue": {**_entry(untrusted.aet, untrusted.port), "UseDicomTls": True},
                "plain": {**_entry(plain.aet, plain.port), "UseDicomTls": True},
            },
        )
        answer = api.post("/modalities/rogue/echo", json={})
        assert answer.status_code == 500
        assert "the certificate of the peer is not trusted" in answer.json()["Details"]
        answer = api.post("/modalities/plain/echo", json={})
        assert answer.status_code == 500
        assert "DICOM TLS with" in answer.json()["Details"], answer.json()


def test_pharos_to_pharos_over_tls(server_factory: Any, certificates: Certificates) -> None:
    """Store from A to B, then B has A move a study to B: the C-MOVE sub-association goes
    over TLS too."""
    ports = {"A": free_port(), "B": free_port()}

    def start(name: str, other: str) -> Any:
        server = server_factory(
            {
                **certificates.options(),
                "DicomAet": f"PHAROS{name}",
                "DicomPort": ports[name],
                "DicomModalities": {
                    other.lower(): {**_entry(f"PHAROS{other}", ports[other]), "UseDicomTls": True}
                },
            }
        )
        return httpx.Client(base_url=server.url, timeout=60)

    a, b = start("A", "B"), start("B", "A")
    first = to_bytes(make_dataset(study_uid="1.2.3.1", patient_id="P1"))
    second = to_bytes(make_dataset(study_uid="1.2.3.2", patient_id="P2"))
    sent = a.post("/instances", content=first).json()["ID"]
    a.post("/instances", content=second).raise_for_status()
    assert a.post("/modalities/b/echo", json={}).status_code == 200
    assert b.post("/modalities/a/echo", json={}).status_code == 200
    answer = a.post("/modalities/b/store", json=[sent])
    assert answer.status_code == 200, answer.text
    assert len(b.get("/instances").json()) == 1
    answer = b.post(
        "/modalities/a/move",
        json={
            "Level": "Study",
            "Resources": [{"StudyInstanceUID": "1.2.3.2"}],
            "TargetAet": "PHAROSB",
        },
    )
    assert answer.status_code == 200, answer.text
    assert len(b.get("/instances").json()) == 2
    a.close()
    b.close()


def _entry(aet: str, port: int) -> dict[str, object]:
    return {"AET": aet, "Host": "127.0.0.1", "Port": port}


# -- start-up ----------------------------------------------------------------------------------


def test_bad_tls_settings_stop_the_start_up(
    server_factory: Any, certificates: Certificates, tmp_path: Path
) -> None:
    for i, (config, message) in enumerate(
        (
            ({"DicomTlsEnabled": True}, "DicomTlsEnabled is true but DicomTlsCertificate, "),
            (
                certificates.options(DicomTlsCertificate="missing.crt"),
                "DicomTlsCertificate: cannot read ",
            ),
            (
                certificates.options(DicomTlsPrivateKey=str(certificates.client.key)),
                f"DicomTlsPrivateKey: {certificates.client.key} is not the private key of",
            ),
        )
    ):
        workdir = tmp_path / f"bad{i}"
        workdir.mkdir()
        with pytest.raises(RuntimeError) as raised:
            server_factory(config, workdir)
        assert f"pharos: configuration error: {message}" in str(raised.value)
