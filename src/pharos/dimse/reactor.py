"""Event-driven waiting for pynetdicom's two threads per association.

pynetdicom 3 polls: the DUL thread sleeps 1 ms whenever it finds nothing to do, and checks the
socket with a zero-timeout `select`; the association thread sleeps 1 ms on every turn before
looking for a DIMSE message. With a few associations open that is thousands of wake-ups a
second, each taking the GIL from the threads doing the real work (measured: 4 idle
associations cost the server 18 % of a core; 2 % once event-driven). It also reads PDUs 4 KB
at a time (about 130 `recv` calls for a 0.5 MB instance).

`make_event_driven(assoc)`, called when the connection opens (before the threads start),
changes one association in place:
- the DUL thread blocks in `select` on its socket *and* a wake-up socket pair, which the
  other threads poke when they queue something for it (a primitive to send, an event, a stop);
- the association thread waits on an `Event` set when a DIMSE message, a release request or
  an abort arrives, instead of finding its queue empty a thousand times a second (its loop
  still sleeps 1 ms once per request: that is pynetdicom's code; skipping it, with a copy of
  that loop, made no measurable difference);
- PDUs are read with `recv_into`, through a read-ahead buffer (`EventDrivenSocket.recv`).
Both still wake every `IDLE_WAIT` seconds to check their timers (ARTIM, network timeout), so
a missed poke could cost latency, never correctness.

It relies on pynetdicom internals (3.0): when they are not as expected the association is left
as pynetdicom made it, which works, only slower.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, cast

from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.transport import AssociationSocket

from pharos.dimse.pdu_reader import drop_unheard_logging, read_data_directly
from pharos.dimse.store_request import assemble_store_requests
from pharos.dimse.store_response import send_store_responses_directly

log = logging.getLogger(__name__)

# How long a thread with nothing to do sleeps before checking its timers again.
IDLE_WAIT = 0.05
# pynetdicom's own polling delay, kept for a DUL thread whose socket is closed.
CLOSED_POLL = 0.001
# The most read from the socket at once for small reads (per association).
READ_AHEAD = 64 * 1024
# The most allocated for a read before its bytes arrive (PDUs are up to MaximumPduLength,
# 128 KB at most, or an association request with its presentation contexts).
UPFRONT = 1 << 20
# Linux only.
_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)

_DUL_ATTRIBUTES = (
    "_run_loop_delay",
    "_kill_thread",
    "to_provider_queue",
    "to_user_queue",
    "event_queue",
    "state_machine",
    "kill_dul",
    "stop_dul",
)


class _NotifyingQueue(queue.Queue[Any]):
    """A queue that calls `notify` after each put."""

    def __init__(self, notify: Callable[[], None]):
        super().__init__()
        self._notify = notify

    @classmethod
    def replacing(cls, old: queue.Queue[Any], notify: Callable[[], None]) -> _NotifyingQueue:
        """A queue to use instead of `old`, holding what it holds (the connection's first
        event is queued before the threads start)."""
        new = cls(notify)
        new.queue.extend(old.queue)
        new.unfinished_tasks = old.unfinished_tasks
        return new

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        self._notify()


class _Wakeup:
    """A socket pair the DUL thread selects on; `poke` makes its `select` return. Socket
    objects (not raw descriptors): a poke after `close` fails harmlessly instead of writing
    to a descriptor number reused meanwhile."""

    def __init__(self) -> None:
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)

    def poke(self) -> None:
        with contextlib.suppress(OSError):  # closed, or already full of pokes
            self._writer.send(b"\0")

    def drain(self) -> None:
        with contextlib.suppress(OSError):
            while self.reader.recv(4096):
                pass

    def close(self) -> None:
        self.reader.close()
        self._writer.close()


class EventDrivenSocket(AssociationSocket):
    """An `AssociationSocket` whose `ready` waits (up to `IDLE_WAIT`) instead of polling, whose
    `recv` reads through a read-ahead buffer, and whose `send` is one thread's at a time.
    Installed by changing the class of pynetdicom's socket object, so everything else it
    holds stays as pynetdicom set it."""

    _wakeup: _Wakeup
    _send_lock: threading.Lock
    # The read-ahead buffer and its unread part.
    _read_view: memoryview
    _read_start = 0
    _read_end = 0

    @property
    def ready(self) -> bool:
        sock = self.socket
        if sock is None or self._is_connected is False:
            # Closed: the DUL thread runs until it is stopped; pace it as pynetdicom does.
            time.sleep(CLOSED_POLL)
            return False
        if self._read_end > self._read_start:
            return True  # read ahead, not handled yet
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True  # decrypted data select() does not see
        dul = self.assoc.dul
        # Something already queued for the DUL thread: only look, do not wait.
        busy = not dul.event_queue.empty() or not dul.to_provider_queue.empty()
        try:
            readable, _, _ = select.select(
                [sock, self._wakeup.reader], [], [], 0 if busy else IDLE_WAIT
            )
        except (OSError, TimeoutError, ValueError):
            # Evt17: Transport connection closed
            self.event_queue.put("Evt17")
            return False
        if self._wakeup.reader in readable:
            self._wakeup.drain()
        return sock in readable

    def send(self, bytestream: bytes) -> None:
        """pynetdicom's, one thread at a time: the association thread sends C-STORE
        responses itself (`store_response.py`), the DUL thread everything else."""
        with self._send_lock:
            super().send(bytestream)
            _ack_at_once(self.socket)

    def recv(self, nr_bytes: int) -> bytearray:
        """`nr_bytes` from the socket (blocking), or fewer if the connection is broken. Small
        reads are served from a buffer filled with whatever the socket holds, up to
        `READ_AHEAD` bytes: a PDU's header comes with the start of its body, and small PDUs
        (a command, a response, 16 KB of data) several at a time, one system call (and one
        handover of the GIL) for all. Beyond `UPFRONT` bytes, the buffer grows as the bytes
        arrive: a PDU header declaring 4 GB costs nothing until they come."""
        sock = self.socket
        if sock is None:  # closed meanwhile: read as a broken connection (Evt17)
            return bytearray()
        buffer = bytearray(min(nr_bytes, UPFRONT))
        received = 0
        while received < nr_bytes:
            if received == len(buffer):  # doubles, up to nr_bytes
                buffer.extend(bytes(min(received, nr_bytes - received)))
            count = self._recv_into(sock, buffer, received)
            if not count:
                break
            received += count
        if received < len(buffer):
            del buffer[received:]
        return buffer

    def _recv_into(self, sock: socket.socket, buffer: bytearray, offset: int) -> int:
        """Bytes into `buffer` from `offset` on, from the read-ahead buffer (refilled when
        empty) or, for large reads, straight from `sock`; how many (0: closed)."""
        wanted = len(buffer) - offset
        with memoryview(buffer) as view:
            if self._read_end == self._read_start:
                if wanted >= READ_AHEAD:  # large: straight into the result
                    return sock.recv_into(view[offset:], wanted)
                filled = sock.recv_into(self._read_view, READ_AHEAD)
                if not filled:
                    return 0
                self._read_start, self._read_end = 0, filled
            start = self._read_start
            count = min(wanted, self._read_end - start)
            view[offset : offset + count] = self._read_view[start : start + count]
            self._read_start = start + count
            return count

    def close(self) -> None:
        super().close()
        self._wakeup.close()


def _ack_at_once(sock: socket.socket | None) -> None:
    """Acknowledge the peer's next data at once. Having just answered, the socket expects
    to answer again soon and delays its ACKs (Linux's "pingpong" mode, up to 40 ms). A peer
    that leaves Nagle's algorithm on, as dcmtk's tools do, then holds the small tail of its
    next request until that ACK comes: one `storescu` sent 63-90 C-STOREs/s in some runs
    here, instead of 169-207. TCP_QUICKACK leaves that mode until the socket answers again."""
    if sock is not None and _QUICKACK is not None:
        with contextlib.suppress(OSError):  # closed meanwhile
            sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


def make_event_driven(assoc: Association) -> bool:
    """Make `assoc` (not started yet) wait for events instead of polling; whether it was
    done (False: pynetdicom's internals are not those expected, the association is left as
    it is)."""
    dul = assoc.dul
    sock = dul.socket
    dimse = assoc.dimse
    if (
        type(sock) is not AssociationSocket
        or sock.socket is None
        or dul.is_alive()
        or not all(hasattr(dul, name) for name in _DUL_ATTRIBUTES)
        or not hasattr(dimse, "msg_queue")
        or not hasattr(dimse, "get_msg")
    ):
        log.debug("pynetdicom internals not as expected: association left polling")
        return False

    wakeup = _Wakeup()
    activity = threading.Event()  # for the association thread

    def poke_dul() -> None:
        if threading.current_thread() is not dul:  # the DUL thread is not waiting
            wakeup.poke()

    # The DUL thread: woken when given something to send, an event or a stop.
    dul.to_provider_queue = _NotifyingQueue.replacing(dul.to_provider_queue, poke_dul)
    dul.event_queue = _NotifyingQueue.replacing(dul.event_queue, poke_dul)
    dul._run_loop_delay = 0  # its idle sleep: `ready` waits instead
    kill_dul = dul.kill_dul

    def kill() -> None:
        kill_dul()
        wakeup.poke()
        activity.set()

    def stop_dul() -> bool:
        """pynetdicom's, joining the thread instead of polling it."""
        if dul.state_machine.current_state != "Sta1":
            return False
        kill()
        if threading.current_thread() is not dul:
            dul.join()
        return True

    # Instance attributes shadowing the methods, for this association only.
    setattr(dul, "kill_dul", kill)  # noqa: B010
    setattr(dul, "stop_dul", stop_dul)  # noqa: B010

    # The association thread: woken by a DIMSE message (or the (None, None) of an abort) and
    # by a release request or abort handed up by the DUL.
    dimse.msg_queue = _NotifyingQueue.replacing(dimse.msg_queue, activity.set)
    dul.to_user_queue = _NotifyingQueue.replacing(dul.to_user_queue, activity.set)
    get_msg = dimse.get_msg

    def get_msg_waiting(block: bool = False) -> Any:
        if block:
            return get_msg(block=True)
        try:
            return dimse.msg_queue.get_nowait()
        except queue.Empty:
            pass
        activity.wait(IDLE_WAIT)
        # Cleared before the queue and the release/abort checks that follow: a later set
        # makes the next wait return at once, so nothing is missed.
        activity.clear()
        try:
            return dimse.msg_queue.get_nowait()
        except queue.Empty:
            return None, None

    setattr(dimse, "get_msg", get_msg_waiting)  # noqa: B010

    sock.__class__ = EventDrivenSocket
    cast(EventDrivenSocket, sock)._wakeup = wakeup
    cast(EventDrivenSocket, sock)._send_lock = threading.Lock()
    cast(EventDrivenSocket, sock)._read_view = memoryview(bytearray(READ_AHEAD))
    return True


def on_connection_open(event: Event) -> None:
    """EVT_CONN_OPEN handler of the server: its associations wait for events, and their data
    PDUs take the short way to DIMSE (`pdu_reader.py`), and their C-STORE requests and
    responses are decoded and encoded by hand (`store_request.py`, `store_response.py`), the
    responses sent from the association thread unless the connection is TLS."""
    assoc = event.assoc
    exclusive_sends = make_event_driven(assoc)
    drop_unheard_logging(assoc)
    read_data_directly(assoc)
    assemble_store_requests(assoc)
    sock = assoc.dul.socket
    tls = sock is not None and isinstance(sock.socket, ssl.SSLSocket)
    send_store_responses_directly(assoc, to_socket=exclusive_sends and not tls)
