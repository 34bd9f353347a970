"""DICOM TLS (PS3.15 Annex B), configured as Orthanc 1.9 and 1.10 configure it:

- `DicomTlsCertificate` and `DicomTlsPrivateKey` (PEM, two files, the key unencrypted) are
  Pharos's identity, and `DicomTlsTrustedCertificates` (concatenated PEM certificates, of the
  peers or of the authorities signing theirs) says whom it trusts, in both directions;
- `DicomTlsEnabled`: the server on `DicomPort` speaks TLS only (and then needs all three);
- `DicomTlsRemoteCertificateRequired`: true refuses a peer without a certificate (dcmtk's
  `--require-peer-cert`); false lets it in, though a certificate it does present must be
  trusted (`--verify-peer-cert`);
- a modality with `UseDicomTls` is called over TLS with the same files; its certificate must
  be trusted. As in dcmtk and Orthanc, host names are not checked against certificates:
  trust is the list of trusted certificates.

The files are read once, at start-up, so that a missing or bad one stops it with a message
naming the option, rather than failing each association.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from pharos.config import Config
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.modalities import Modality

CERTIFICATE = "DicomTlsCertificate"
PRIVATE_KEY = "DicomTlsPrivateKey"
TRUSTED = "DicomTlsTrustedCertificates"
_FILES = (CERTIFICATE, PRIVATE_KEY, TRUSTED)

# What OpenSSL says when the first bytes are not a TLS handshake (plain DICOM among them).
_NOT_TLS = frozenset(
    (
        "WRONG_VERSION_NUMBER",
        "UNKNOWN_PROTOCOL",
        "HTTP_REQUEST",
        "HTTPS_PROXY_REQUEST",
        "PACKET_LENGTH_TOO_LONG",
        "RECORD_LAYER_FAILURE",
    )
)
# TLS alerts the peer sends when it refuses Pharos's side of the handshake
_ALERTS = {
    "UNKNOWN_CA": "it does not trust the certificate of Pharos",
    "BAD_CERTIFICATE": "it does not trust the certificate of Pharos",
    "CERTIFICATE_UNKNOWN": "it does not trust the certificate of Pharos",
    "CERTIFICATE_EXPIRED": "it finds the certificate of Pharos expired",
    "CERTIFICATE_REQUIRED": "it requires a certificate from Pharos",
    "PROTOCOL_VERSION": "no TLS version in common",
    "HANDSHAKE_FAILURE": "no TLS version or cipher suite in common",
}


@dataclass(frozen=True, slots=True)
class DicomTlsOptions:
    enabled: bool = False  # DicomTlsEnabled: the server speaks TLS
    certificate: Path | None = None
    private_key: Path | None = None
    trusted: Path | None = None
    remote_certificate_required: bool = True

    @classmethod
    def from_config(cls, config: Config, base: Path) -> DicomTlsOptions:
        """The options, paths relative to `base` (the working directory, as Orthanc)."""

        def path(name: str) -> Path | None:
            value = config.get_str(name, None)
            return base / value if value else None

        return cls(
            enabled=config.get_bool("DicomTlsEnabled"),
            certificate=path(CERTIFICATE),
            private_key=path(PRIVATE_KEY),
            trusted=path(TRUSTED),
            remote_certificate_required=config.get_bool("DicomTlsRemoteCertificateRequired"),
        )


class DicomTls:
    """The TLS contexts of the DICOM server (`server`, None unless `DicomTlsEnabled`) and of
    the associations to modalities with `UseDicomTls` (`client`, None without the files)."""

    def __init__(self, server: ssl.SSLContext | None = None, client: ssl.SSLContext | None = None):
        self.server = server
        self.client = client

    @classmethod
    def load(cls, options: DicomTlsOptions) -> DicomTls:
        """Read the files. Raises ValueError naming the option when one is missing, unreadable
        or not what it should be."""
        paths = {
            CERTIFICATE: options.certificate,
            PRIVATE_KEY: options.private_key,
            TRUSTED: options.trusted,
        }
        given = {name: path for name, path in paths.items() if path is not None}
        if not given and not options.enabled:
            return cls()  # no DICOM TLS at all
        missing = [name for name in _FILES if name not in given]
        if missing:
            why = "DicomTlsEnabled is true" if options.enabled else f"{next(iter(given))} is set"
            names = ", ".join(missing[:-1]) + " and " + missing[-1] if missing[1:] else missing[0]
            verb = "are" if missing[1:] else "is"
            raise ValueError(f"{why} but {names} {verb} not set: DICOM TLS needs all three")
        for name, path in given.items():
            _check_pem(name, path)
        certificate, key, trusted = (given[name] for name in _FILES)
        client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        client.check_hostname = False  # trust is the list of trusted certificates (see above)
        _configure(client, certificate, key, trusted)
        server = None
        if options.enabled:
            server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            _configure(server, certificate, key, trusted)
            server.verify_mode = (
                ssl.CERT_REQUIRED if options.remote_certificate_required else ssl.CERT_OPTIONAL
            )
        return cls(server, client)

    def client_args(self, modality: Modality) -> tuple[ssl.SSLContext, str] | None:
        """pynetdicom's `tls_args` to call `modality` (None: in clear). Raises PharosError for
        a modality with `UseDicomTls` when the TLS files are not configured."""
        if not modality.use_dicom_tls:
            return None
        if self.client is None:
            raise PharosError(
                ErrorCode.BAD_SEQUENCE_OF_CALLS,
                f'Modality "{modality.name}" has UseDicomTls, but {", ".join(_FILES)} are not '
                "configured",
            )
        # The host name goes in the handshake (SNI, for proxies routing by name); Python
        # refuses an empty one, which then means no name.
        host = modality.host if modality.host and not modality.host.startswith(".") else None
        return self.client, cast(str, host)


def _check_pem(name: str, path: Path) -> None:
    """Whether `path` can be read and holds what `name` needs, for a clear start-up error
    (OpenSSL's own says "PEM lib" whatever the problem)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc.strerror or exc}") from None
    wanted = "PRIVATE KEY-----" if name == PRIVATE_KEY else "-----BEGIN CERTIFICATE-----"
    if wanted not in text:
        what = "private key" if name == PRIVATE_KEY else "certificate"
        raise ValueError(f"{name}: {path} holds no PEM {what}")
    if name == PRIVATE_KEY and "ENCRYPTED" in text:
        raise ValueError(f"{name}: {path} is encrypted; DICOM TLS needs an unencrypted key")


def _configure(context: ssl.SSLContext, certificate: Path, key: Path, trusted: Path) -> None:
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # as dcmtk's default BCP 195 profile
    try:
        # A password callback that fails: OpenSSL would otherwise prompt on the terminal.
        context.load_cert_chain(certificate, key, password=_no_password)
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise ValueError(
                f"{PRIVATE_KEY}: {key} is not the private key of {CERTIFICATE} {certificate}"
            ) from None
        raise ValueError(
            f"{CERTIFICATE}/{PRIVATE_KEY}: cannot use {certificate} and {key}: {exc}"
        ) from None
    except _Encrypted:
        raise ValueError(
            f"{PRIVATE_KEY}: {key} is encrypted; DICOM TLS needs an unencrypted key"
        ) from None
    try:
        context.load_verify_locations(cafile=trusted)
    except ssl.SSLError as exc:
        raise ValueError(f"{TRUSTED}: cannot use {trusted}: {exc}") from None


class _Encrypted(Exception):
    pass


def _no_password() -> str:
    raise _Encrypted


def failure_reason(exc: BaseException) -> str:
    """Why a TLS handshake (or the TLS under an association) failed, in words."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the certificate of the peer is not trusted ({exc.verify_message})"
    reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return "the peer sent no certificate (DicomTlsRemoteCertificateRequired is true)"
    if reason in _NOT_TLS:
        return "the peer does not speak TLS (plain DICOM?)"
    if reason == "NO_SHARED_CIPHER" or reason == "UNSUPPORTED_PROTOCOL":
        return "no TLS version or cipher suite in common"
    if isinstance(reason, str) and "_ALERT_" in reason:
        alert = reason.split("_ALERT_", 1)[1]
        said = alert.lower().replace("_", " ")
        hint = _ALERTS.get(alert)
        if hint:
            return f'the peer refused the handshake ("{said}": {hint})'
        return f'the peer ended the handshake ("{said}")'
    if (
        isinstance(exc, ssl.SSLEOFError | ConnectionError)
        or reason == "UNEXPECTED_EOF_WHILE_READING"
    ):
        return "the peer closed the connection during the TLS handshake"
    if isinstance(exc, TimeoutError):
        return "no TLS handshake in time"
    return str(exc) or type(exc).__name__
