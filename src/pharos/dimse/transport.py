"""The server's listening socket: pynetdicom's threaded association server, with the TLS
handshake of DICOM TLS moved to the connection's own thread.

pynetdicom wraps each accepted socket in its `ssl_context` in `get_request`, on the thread
that accepts connections, and the handshake happens there: a peer that connects and says
nothing stops the server from accepting anyone else, and a failed handshake is dropped
without a word. Here the listening thread only accepts; each connection's thread does the
handshake with the association timeout, logs a refusal with its reason, and only a
connection that completed it becomes an association.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from typing import Any, cast

from pynetdicom import AE
from pynetdicom.presentation import PresentationContext
from pynetdicom.transport import RequestHandler, ThreadedAssociationServer
from pynetdicom.utils import make_target

from pharos.dimse.tls import failure_reason

log = logging.getLogger(__name__)


class DicomListener(ThreadedAssociationServer):
    """pynetdicom's server; with `tls`, every connection must first complete a handshake."""

    def __init__(
        self,
        ae: AE,
        address: tuple[str, int],
        ae_title: str,
        contexts: list[PresentationContext],
        ssl_context: None,  # pynetdicom's: never given, the handshake is ours
        evt_handlers: list[Any],
        *,
        tls: ssl.SSLContext | None,
        handshake_timeout: float | None,
    ):
        super().__init__(
            ae, address, ae_title, contexts, None, evt_handlers, request_handler=_RequestHandler
        )
        self.tls = tls
        self.handshake_timeout = handshake_timeout
        self._stopped = False
        # A connection's thread ends once its association has started (on threads of its own)
        # or its handshake failed: stopping need not wait for a silent peer's handshake.
        self.daemon_threads = True
        self.block_on_close = False

    def shutdown(self) -> None:
        self._stopped = True
        super().shutdown()

    def handshake(self, raw: socket.socket, address: tuple[str, int]) -> ssl.SSLSocket | None:
        """The TLS socket over `raw`, or None (logged, closed) if the handshake failed."""
        assert self.tls is not None
        try:
            secure = self.tls.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        except OSError as exc:  # the peer is gone already
            log.warning("DICOM TLS connection from %s failed: %s", _peer(address), exc)
            raw.close()
            return None
        try:
            secure.settimeout(self.handshake_timeout)
            secure.do_handshake()
            secure.settimeout(None)  # blocking, as pynetdicom expects its sockets
            if self._stopped:  # while the handshake went on
                secure.close()
                return None
        except (OSError, ValueError) as exc:
            reason = failure_reason(exc)
            if isinstance(exc, TimeoutError):
                reason = f"no TLS handshake within {self.handshake_timeout:g} s"
            log.warning("DICOM TLS connection from %s refused: %s", _peer(address), reason)
            with contextlib.suppress(OSError):
                secure.close()
            return None
        log.debug(
            "DICOM TLS connection from %s: %s, peer certificate %s",
            _peer(address),
            secure.version(),
            _subject(secure),
        )
        return secure


class _RequestHandler(RequestHandler):
    def handle(self) -> None:
        server = cast(DicomListener, self.server)
        if server.tls is not None:
            secure = server.handshake(cast(socket.socket, self.request), self.client_address)
            if secure is None:
                return
            self.request = secure
        super().handle()


def start_server(
    ae: AE,
    address: tuple[str, int],
    tls: ssl.SSLContext | None,
    handshake_timeout: float | None,
    **kwargs: Any,
) -> DicomListener:
    """Listen on `address` in a thread of its own, as `AE.start_server(block=False)`."""
    server = ae.make_server(
        address,
        server_class=DicomListener,
        tls=tls,
        handshake_timeout=handshake_timeout,
        **kwargs,
    )
    assert isinstance(server, DicomListener)
    target = make_target(server.serve_forever)  # pynetdicom's PASS_CONTEXTVARS, as it does
    thread = threading.Thread(target=target, name="AcceptorServer", daemon=True)
    thread.start()
    ae._servers.append(server)  # as start_server does: the server's shutdown() removes it
    return server


def _peer(address: tuple[str, int] | Any) -> str:
    try:
        return f"{address[0]}:{address[1]}"
    except (TypeError, IndexError):
        return str(address)


def _subject(secure: ssl.SSLSocket) -> str:
    certificate: dict[str, Any] | None = secure.getpeercert()
    if not certificate:
        return "none"
    subject: tuple[tuple[tuple[str, str], ...], ...] = certificate.get("subject", ())
    names = [f"{key}={value}" for rdn in subject for key, value in rdn]
    return '"' + ", ".join(names) + '"'
