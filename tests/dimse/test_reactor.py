"""Event-driven associations (`pharos.dimse.reactor`), in process: a bare pynetdicom server
with the connection handler of the DICOM server, real loopback associations from pynetdicom.
Correctness only (every request answered, releases, aborts and timeouts still end the
association); the CPU saved is measured by bench/dimse.py."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer

from pharos.dimse.handlers import set_no_delay
from pharos.dimse.reactor import EventDrivenSocket, make_event_driven, on_connection_open
from tests.dicomgen import make_dataset, to_bytes
from tests.dimse.peers import requires_dcmtk

VERIFICATION = "1.2.840.10008.1.1"
WAIT = 30.0  # generous bound for what should take milliseconds


@dataclass
class Scp:
    server: ThreadedAssociationServer
    port: int
    received: list[bytes] = field(default_factory=list)
    event_driven: list[bool] = field(default_factory=list)
    ended: threading.Event = field(default_factory=threading.Event)
    endings: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@pytest.fixture
def scp() -> Iterator[Scp]:
    yield from _scp()


def _scp(network_timeout: float | None = None) -> Iterator[Scp]:
    ae = AE("REACTOR")
    ae.add_supported_context(VERIFICATION)
    ae.add_supported_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.maximum_pdu_size = 16384  # several PDUs per instance
    ae.network_timeout = network_timeout
    holder: list[Scp] = []

    def opened(event: Event) -> None:
        on_connection_open(event)
        with holder[0].lock:
            holder[0].event_driven.append(isinstance(event.assoc.dul.socket, EventDrivenSocket))

    def stored(event: Event) -> int:
        with holder[0].lock:
            holder[0].received.append(event.encoded_dataset())
        return 0x0000

    def ended(kind: str) -> Any:
        def handler(_event: Event) -> None:
            holder[0].endings.append(kind)
            holder[0].ended.set()

        return handler

    server = ae.start_server(
        ("127.0.0.1", 0),
        block=False,
        evt_handlers=[
            (evt.EVT_CONN_OPEN, set_no_delay),
            (evt.EVT_CONN_OPEN, opened),
            (evt.EVT_C_STORE, stored),
            (evt.EVT_RELEASED, ended("released")),
            (evt.EVT_ABORTED, ended("aborted")),
        ],
    )
    holder.append(Scp(server, int(server.server_address[1])))
    try:
        yield holder[0]
    finally:
        running = list(server.active_associations)
        server.shutdown()
        for assoc in running:
            assoc.abort()
            assoc.join(timeout=WAIT)


def associate(scp: Scp) -> Association:
    ae = AE("TESTSCU")
    ae.add_requested_context(VERIFICATION)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = WAIT
    assoc = ae.associate("127.0.0.1", scp.port, evt_handlers=[(evt.EVT_CONN_OPEN, set_no_delay)])
    assert assoc.is_established
    return assoc


def instance(index: int, columns: int = 16) -> Dataset:
    return make_dataset(instance_number=index + 1, rows=64, columns=columns, seed=index)


def server_side(scp: Scp) -> Association:
    (assoc,) = scp.server.active_associations
    return assoc


@requires_dcmtk
def test_parallel_associations_answer_every_request(scp: Scp, tmp_path: Path) -> None:
    """4 storescu processes at once (dcmtk: pynetdicom's own requestor sometimes takes a
    response off its queue in its reactor thread, "Received unexpected ... message")."""
    sent: list[bytes] = []
    folders = []
    for part in range(4):
        folder = tmp_path / f"part{part}"
        folder.mkdir()
        folders.append(folder)
        for i in range(25):
            ds = instance(part * 100 + i, columns=512 if i % 5 == 0 else 16)
            ds.save_as(folder / f"{i:03d}.dcm", enforce_file_format=True)
            sent.append(to_bytes(ds))
    command = ["storescu", "-v", "-aet", "STORESCU", "-aec", "REACTOR", "+sd"]
    processes = [
        subprocess.Popen(
            [*command, "127.0.0.1", str(scp.port), str(folder)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for folder in folders
    ]
    outputs = [process.communicate(timeout=WAIT * 4)[0] for process in processes]
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output
        assert output.count("Received Store Response (Success)") == 25, output
    assert scp.event_driven == [True] * 4
    assert len(scp.received) == 100
    # Multi-PDU data sets arrive whole (PDUs are read at once, by size).
    assert {_pixel_data(data) for data in scp.received} == {_pixel_data(data) for data in sent}
    assert scp.ended.wait(WAIT)


def test_requests_after_requests_on_one_association(scp: Scp) -> None:
    assoc = associate(scp)
    try:
        for i in range(10):
            assert assoc.send_c_store(instance(i, columns=512)).get("Status") == 0x0000
    finally:
        assoc.release()
    assert len(scp.received) == 10
    assert scp.event_driven == [True]


def _pixel_data(data: bytes) -> bytes:
    return data[-2000:]  # the end of the pixel data: differs by seed


def test_release_by_the_peer_ends_the_association(scp: Scp) -> None:
    assoc = associate(scp)
    served = server_side(scp)
    assoc.release()
    assert scp.ended.wait(WAIT)
    assert scp.endings == ["released"]
    served.join(timeout=WAIT)
    assert not served.is_alive()
    assert not served.dul.is_alive()


def test_abort_by_the_peer_ends_the_association(scp: Scp) -> None:
    assoc = associate(scp)
    served = server_side(scp)
    assoc.abort()
    assert scp.ended.wait(WAIT)
    assert scp.endings == ["aborted"]
    served.join(timeout=WAIT)
    assert not served.is_alive()


def test_abort_by_the_server_ends_the_association(scp: Scp) -> None:
    assoc = associate(scp)
    served = server_side(scp)
    served.abort()  # what DicomServer.stop does, from another thread
    served.join(timeout=WAIT)
    assert not served.is_alive()
    assert not served.dul.is_alive()
    assoc.join(timeout=WAIT)
    assert assoc.is_aborted


def test_network_timeout_still_ends_an_idle_association() -> None:
    for scp in _scp(network_timeout=0.3):
        assoc = associate(scp)
        assert scp.ended.wait(WAIT)  # the idle timer is checked while waiting for events
        assert scp.endings == ["aborted"]
        assoc.join(timeout=WAIT)
        assert assoc.is_aborted


def test_unexpected_internals_are_left_alone() -> None:
    ae = AE("REACTOR")
    assoc = Association(ae, "acceptor")  # no socket: not what a server connection has
    assert make_event_driven(assoc) is False
    assert assoc.dul.socket is None
