"""Event-driven associations (`pharos.dimse.reactor`), in process: a bare pynetdicom server
with the connection handler of the DICOM server, real loopback associations from pynetdicom.
Correctness only (every request answered, releases, aborts and timeouts still end the
association); the CPU saved is measured by bench/dimse.py."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.association import Association

from pharos.dimse.reactor import READ_AHEAD, UPFRONT, EventDrivenSocket, make_event_driven
from tests.dicomgen import to_bytes
from tests.dimse.loopback import (
    WAIT,
    Scp,
    associate,
    instance,
    loopback_scp,
    server_side,
)
from tests.dimse.peers import requires_dcmtk


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
    for scp in loopback_scp(network_timeout=0.3):
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


def _reading_socket(peer_data: bytes) -> EventDrivenSocket:
    """An EventDrivenSocket on one end of a socket pair; the other end sends `peer_data` (from
    a thread: more than the pair's buffers hold) and closes."""
    ours, theirs = socket.socketpair()

    def send() -> None:
        with theirs:
            theirs.sendall(peer_data)

    threading.Thread(target=send, daemon=True).start()
    sock = object.__new__(EventDrivenSocket)  # only what recv uses
    sock.socket = ours
    sock._read_view = memoryview(bytearray(READ_AHEAD))
    return sock


def test_reads_are_served_from_the_read_ahead_buffer() -> None:
    data = bytes(range(256)) * 1024  # 256 KB, more than the read-ahead
    sock = _reading_socket(data)
    parts = [sock.recv(6), sock.recv(100), sock.recv(READ_AHEAD + 10), sock.recv(3)]
    rest = sock.recv(len(data))  # more than is left: the connection is closed
    assert b"".join([*parts, rest]) == data
    assert [len(part) for part in parts] == [6, 100, READ_AHEAD + 10, 3]
    assert len(rest) == len(data) - sum(map(len, parts))
    assert sock.recv(6) == b""  # closed: nothing more, no error
    sock.socket.close()


def test_a_closed_socket_reads_nothing() -> None:
    sock = object.__new__(EventDrivenSocket)
    sock.socket = None
    assert sock.recv(6) == b""


@pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="TCP_QUICKACK: Linux")
def test_each_answer_leaves_delayed_acks_off(scp: Scp) -> None:
    """Having answered, the server's socket would delay its ACKs (Linux's "pingpong" mode,
    which TCP_QUICKACK reads as 0): a peer with Nagle's algorithm on would then wait for
    them. After each answer it is out of that mode."""
    assoc = associate(scp)
    try:
        served = server_side(scp).dul.socket
        assert served is not None and served.socket is not None
        sock = served.socket

        def quick_ack() -> bool:  # set just after the answer is sent: the client may be first
            deadline = time.monotonic() + WAIT
            while sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK) != 1:
                if time.monotonic() > deadline:
                    return False
                time.sleep(0.001)
            return True

        for i in range(3):
            assert assoc.send_c_store(instance(i)).get("Status") == 0x0000
            assert quick_ack()
        assert assoc.send_c_echo().get("Status") == 0x0000  # sent by the DUL thread
        assert quick_ack()
    finally:
        assoc.release()


def test_a_read_larger_than_allocated_up_front_grows_with_the_data() -> None:
    data = bytes(range(256)) * (3 * UPFRONT // 256 + 7)  # three times and a bit
    sock = _reading_socket(data)
    assert sock.recv(6) == data[:6]
    assert sock.recv(len(data) - 6) == data[6:]
    sock.socket.close()


def test_a_declared_length_allocates_only_what_arrives() -> None:
    """A peer's PDU header declaring 2 GB, followed by 100 bytes and a close: the read gives
    the 100 bytes, having allocated about `UPFRONT`, not 2 GB."""
    sock = _reading_socket(b"x" * 100)
    tracemalloc.start()
    try:
        assert sock.recv(2**31) == b"x" * 100
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * UPFRONT
    sock.socket.close()
