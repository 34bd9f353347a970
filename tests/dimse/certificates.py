"""Certificates for the DICOM TLS tests, made with the `openssl` command: a small authority
signing a server and a client certificate, and a self-signed "rogue" one nobody trusts."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

requires_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="the openssl command is not installed"
)

# Leaf certificates as X.509 v3 end entities (a bare `openssl x509 -req` makes v1 ones).
_LEAF_EXTENSIONS = "basicConstraints=critical,CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"


@dataclass(frozen=True)
class KeyPair:
    certificate: Path
    key: Path

    def dcmtk(self) -> list[str]:
        """dcmtk's options presenting this certificate."""
        return ["+tls", str(self.key), str(self.certificate)]


@dataclass(frozen=True)
class Certificates:
    authority: Path  # the CA certificate: the trusted certificates of every side
    server: KeyPair
    client: KeyPair
    rogue: KeyPair  # self-signed, trusted by no one

    def options(self, pair: KeyPair | None = None, **extra: object) -> dict[str, object]:
        """Pharos's options for DICOM TLS with `pair` (default: the server's)."""
        pair = pair or self.server
        return {
            "DicomTlsEnabled": True,
            "DicomTlsCertificate": str(pair.certificate),
            "DicomTlsPrivateKey": str(pair.key),
            "DicomTlsTrustedCertificates": str(self.authority),
            **extra,
        }


def _openssl(*args: object) -> None:
    result = subprocess.run(
        ["openssl", *map(str, args)], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr


def _self_signed(folder: Path, name: str) -> KeyPair:
    pair = KeyPair(folder / f"{name}.crt", folder / f"{name}.key")
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", f"/CN={name}", "-keyout", pair.key, "-out", pair.certificate,
    )  # fmt: skip
    return pair


def _signed(folder: Path, name: str, authority: KeyPair) -> KeyPair:
    pair = KeyPair(folder / f"{name}.crt", folder / f"{name}.key")
    request = folder / f"{name}.csr"
    extensions = folder / "leaf.ext"
    extensions.write_text(_LEAF_EXTENSIONS)
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
        "-keyout", pair.key, "-out", request,
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-in", request, "-CA", authority.certificate, "-CAkey", authority.key,
        "-CAcreateserial", "-days", "2", "-extfile", extensions, "-out", pair.certificate,
    )  # fmt: skip
    return pair


def make_certificates(folder: Path) -> Certificates:
    folder.mkdir(parents=True, exist_ok=True)
    authority = _self_signed(folder, "authority")
    return Certificates(
        authority=authority.certificate,
        server=_signed(folder, "server", authority),
        client=_signed(folder, "client", authority),
        rogue=_self_signed(folder, "rogue"),
    )
