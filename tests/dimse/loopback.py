"""A bare pynetdicom server with the connection handler of the DICOM server
(`reactor.on_connection_open`), in process, and loopback associations to it from pynetdicom:
for the tests of the per-association changes (event-driven waiting, the short way of data
PDUs, C-STORE responses encoded by hand)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian
from pynetdicom import AE, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.transport import ThreadedAssociationServer

from pharos.dimse.handlers import set_no_delay
from pharos.dimse.reactor import EventDrivenSocket, on_connection_open
from tests.dicomgen import make_dataset

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


def loopback_scp(
    network_timeout: float | None = None,
    answer: Callable[[Event], int | Dataset] = lambda _event: 0x0000,
    ssl_context: ssl.SSLContext | None = None,
) -> Iterator[Scp]:
    """The server (over TLS with `ssl_context`); `answer` gives the status of each C-STORE
    (stored first)."""
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
        return answer(event)

    def ended(kind: str) -> Any:
        def handler(_event: Event) -> None:
            holder[0].endings.append(kind)
            holder[0].ended.set()

        return handler

    server = ae.start_server(
        ("127.0.0.1", 0),
        block=False,
        ssl_context=ssl_context,
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


def associate(scp: Scp, ssl_context: ssl.SSLContext | None = None) -> Association:
    ae = AE("TESTSCU")
    ae.add_requested_context(VERIFICATION)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = WAIT
    tls = None if ssl_context is None else (ssl_context, "localhost")
    assoc = ae.associate(
        "127.0.0.1", scp.port, tls_args=tls, evt_handlers=[(evt.EVT_CONN_OPEN, set_no_delay)]
    )
    assert assoc.is_established
    return assoc


def instance(index: int, columns: int = 16) -> Dataset:
    return make_dataset(instance_number=index + 1, rows=64, columns=columns, seed=index)


def server_side(scp: Scp) -> Association:
    (assoc,) = scp.server.active_associations
    return assoc
