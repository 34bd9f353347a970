"""Real DICOM peers for the tests: dcmtk's command-line tools, and pynetdicom where a test needs
to see exact statuses or to misbehave on purpose."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.events import Event

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


# How long storescp may take to note a file it has saved and answered.
SAVED_WAIT = 30.0


class StoreScp:
    """dcmtk's storescp on a free port, accepting every transfer syntax, writing what it
    receives in `folder`. A file appears there before it is whole; storescp notes each name in
    `done` once the file is saved, so `complete` and `received` never read a file mid-write.
    It notes it just after sending the C-STORE response: `complete` waits for that."""

    def __init__(self, folder: Path, aet: str = "STORESCP", accept: Sequence[str] = ("+xa",)):
        self.folder = folder
        self.aet = aet
        self.accept = tuple(accept)  # storescp's options choosing the transfer syntaxes
        self.port = free_port()
        self.log = folder.parent / f"{folder.name}-storescp.log"
        self.done = folder.parent / f"{folder.name}-saved.txt"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> StoreScp:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.done.touch()
        with open(self.log, "wb") as log:
            command = ["storescp", "-v", "-aet", self.aet, *self.accept, "-od", str(self.folder)]
            # Run by /bin/sh once each file is saved and answered, one at a time (-xs); #f: its
            # name.
            command += ["-xs", "-xcr", f"echo '#f' >> '{self.done}'"]
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

    def complete(self) -> list[Path]:
        """The files saved whole so far (and not deleted since), by name. A file in the
        folder but not noted yet may have been answered already: wait (up to `SAVED_WAIT`)
        until every file there is noted."""
        deadline = time.monotonic() + SAVED_WAIT
        while True:
            names = set(self.done.read_text().split())
            present = {path.name for path in self.folder.iterdir()}
            if present <= names or time.monotonic() > deadline:
                return [self.folder / name for name in sorted(names & present)]
            time.sleep(0.01)

    def received(self) -> list[Dataset]:
        return [pydicom.dcmread(path) for path in self.complete()]


class QrScp:
    """dcmtk's dcmqrscp on a free port: a query/retrieve archive (`aet`, any calling AE
    title) whose database is in `folder`, moving to the AE titles of `destinations`
    ({AET: port} on 127.0.0.1). Fill it with `store`."""

    def __init__(self, folder: Path, destinations: dict[str, int], aet: str = "QRSCP"):
        self.folder = folder
        self.aet = aet
        self.port = free_port()
        self.destinations = destinations
        self.log = folder.parent / f"{folder.name}-dcmqrscp.log"
        self._process: subprocess.Popen[bytes] | None = None

    def _config(self) -> Path:
        hosts = "\n".join(
            f"peer{n} = ({aet}, 127.0.0.1, {port})"
            for n, (aet, port) in enumerate(self.destinations.items())
        )
        config = self.folder / "dcmqrscp.cfg"
        config.write_text(
            f"NetworkTCPPort = {self.port}\nMaxPDUSize = 16384\nMaxAssociations = 16\n"
            f"HostTable BEGIN\n{hosts}\nHostTable END\n"
            "VendorTable BEGIN\nVendorTable END\n"
            f"AETable BEGIN\n{self.aet} {self.folder / 'db'} RW (200, 1024mb) ANY\n"
            "AETable END\n"
        )
        return config

    def __enter__(self) -> QrScp:
        (self.folder / "db").mkdir(parents=True, exist_ok=True)
        config = self._config()
        with open(self.log, "wb") as log:
            self._process = subprocess.Popen(
                ["dcmqrscp", "-v", "-c", str(config)],  # a process per association
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

    def store(self, paths: Iterable[Path]) -> None:
        result = dcmtk("storescu", "-aec", self.aet, "127.0.0.1", self.port, *paths)
        assert result.returncode == 0 and "Store Response (Success)" in result.stdout, result.stdout

    def modality(self) -> list[object]:
        """Its `DicomModalities` entry."""
        return [self.aet, "127.0.0.1", self.port]


# The uncompressed transfer syntaxes, and the query/retrieve models ScriptedPeer supports
UNCOMPRESSED = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", "1.2.840.10008.1.2.2"]
_QUERY_RETRIEVE = (
    "1.2.840.10008.5.1.4.1.2.1.1",  # Patient Root FIND
    "1.2.840.10008.5.1.4.1.2.2.1",  # Study Root FIND
    "1.2.840.10008.5.1.4.1.2.2.2",  # Study Root MOVE
)


class ScriptedPeer:
    """A pynetdicom SCP on a free port, recording what it is asked and answering as told."""

    def __init__(
        self,
        aet: str = "PEER",
        store: Callable[[Event], int | Dataset] | None = None,
        find: Callable[[Event], Iterator[Any]] | None = None,
        move: Callable[[Event], Iterator[Any]] | None = None,
        syntaxes: Sequence[str] = UNCOMPRESSED,
    ):
        self.aet = aet
        self.port = free_port()
        self.stores: list[tuple[str, Any, Any, str]] = []  # calling AET, originator, id, UID
        self.established = 0
        self.released = 0
        self._store = store
        ae = AE(ae_title=aet)
        ae.add_supported_context("1.2.840.10008.1.1")
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(str(cx.abstract_syntax), syntaxes)
        for uid in _QUERY_RETRIEVE:
            ae.add_supported_context(uid, UNCOMPRESSED)
        handlers: list[Any] = [
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_ESTABLISHED, self._count),
            (evt.EVT_RELEASED, self._count),
        ]
        if find is not None:
            handlers.append((evt.EVT_C_FIND, find))
        if move is not None:
            handlers.append((evt.EVT_C_MOVE, move))
        server = ae.start_server(("127.0.0.1", self.port), block=False, evt_handlers=handlers)
        assert server is not None
        self.server = server

    def _count(self, event: Event) -> None:
        if event.event is evt.EVT_ESTABLISHED:
            self.established += 1
        else:
            self.released += 1

    def _on_store(self, event: Event) -> int | Dataset:
        request: Any = event.request
        self.stores.append(
            (
                event.assoc.requestor.ae_title,
                request.MoveOriginatorApplicationEntityTitle,
                request.MoveOriginatorMessageID,
                str(request.AffectedSOPInstanceUID),
            )
        )
        return self._store(event) if self._store else 0x0000

    def close(self) -> None:
        self.server.shutdown()
