"""Real DICOM peers for the tests: dcmtk's command-line tools, and pynetdicom where a test needs
to see exact statuses or to misbehave on purpose."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

import pydicom
import pytest
from pydicom.dataset import Dataset

from tests.conftest import Api, free_port

requires_dcmtk = pytest.mark.skipif(
    shutil.which("storescu") is None, reason="dcmtk's network tools are not installed"
)

PHAROS_AET = "ORTHANC"  # DicomAet's default


def dicom_port(api: Api) -> int:
    return int(api.server.config["DicomPort"])  # type: ignore[call-overload]


def dcmtk(tool: str, *args: object, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a dcmtk tool verbosely; its output (stdout and stderr) is in `.stdout`."""
    return subprocess.run(
        [tool, "-v", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        check=False,
    )


def echoscu(
    api: Api, aet: str = "ECHOSCU", aec: str = PHAROS_AET
) -> subprocess.CompletedProcess[str]:
    return dcmtk("echoscu", "-aet", aet, "-aec", aec, "127.0.0.1", dicom_port(api))


def storescu(
    api: Api, paths: Iterable[Path], *options: str, aet: str = "STORESCU"
) -> subprocess.CompletedProcess[str]:
    return dcmtk(
        "storescu", "-aet", aet, "-aec", PHAROS_AET, *options, "127.0.0.1", dicom_port(api), *paths
    )


def findscu(
    api: Api,
    folder: Path,
    keys: Sequence[str],
    model: str = "-S",
    aet: str = "FINDSCU",
) -> list[Dataset]:
    """C-FIND with `keys` ("Tag=value" or "Tag"); the answers as data sets, in order."""
    for old in folder.glob("rsp*.dcm"):
        old.unlink()
    arguments: list[str] = []
    for key in keys:
        arguments += ["-k", key]
    result = dcmtk(
        "findscu", "-aet", aet, "-aec", PHAROS_AET, model, "-X", "-od", folder,
        *arguments, "127.0.0.1", dicom_port(api),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout
    return [pydicom.dcmread(path) for path in sorted(folder.glob("rsp*.dcm"))]


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Poll until something listens on `port` (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


class StoreScp:
    """dcmtk's storescp on a free port, accepting every transfer syntax, writing what it
    receives in `folder`."""

    def __init__(self, folder: Path, aet: str = "STORESCP"):
        self.folder = folder
        self.aet = aet
        self.port = free_port()
        self.log = folder.parent / f"{folder.name}-storescp.log"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> StoreScp:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.log, "wb") as log:
            command = ["storescp", "-v", "-aet", self.aet, "+xa", "-od", str(self.folder)]
            self._process = subprocess.Popen(
                [*command, str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=20)

    def modality(self) -> list[object]:
        """Its `DicomModalities` entry."""
        return [self.aet, "127.0.0.1", self.port]

    def received(self) -> list[Dataset]:
        return [pydicom.dcmread(path) for path in sorted(self.folder.iterdir()) if path.is_file()]
