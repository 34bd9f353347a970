"""Opening associations to remote modalities, explaining why one could not be made, and keeping
the last one open a little while for the next operation (`DicomAssociationCloseDelay`).

pynetdicom tells why it gave up (connection refused, rejection reason, timeouts, a failed TLS
handshake) only in its log, so each operation collects the errors it logs from the threads of
our association and puts them in the details of the `PharosError` raised.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from pynetdicom import AE, evt
from pynetdicom.association import Association as PynAssociation
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import PresentationContext

from pharos.dimse.awaited_answers import keep_answers_for_the_sender
from pharos.dimse.handlers import set_no_delay
from pharos.dimse.tls import DicomTls, failure_reason
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.dicom_client import Association

log = logging.getLogger(__name__)

_PYNETDICOM = logging.getLogger("pynetdicom")
_TIMEOUT_MARKERS = ("timeout reached", "timed out")
_RESET = "Connection reset by peer"

# A proposed context, as compared for reuse: abstract syntax, transfer syntaxes, roles.
ContextKey = tuple[str, tuple[str, ...], bool | None, bool | None]


def context_keys(contexts: Sequence[PresentationContext]) -> frozenset[ContextKey]:
    return frozenset(
        (
            str(cx.abstract_syntax),
            tuple(str(ts) for ts in cx.transfer_syntax),
            cx.scu_role,
            cx.scp_role,
        )
        for cx in contexts
    )


def describe(target: Association) -> str:
    modality = target.modality
    return f'AET "{modality.aet}" ({modality.host}:{modality.port})'


class Diagnostics(logging.Handler):
    """The errors pynetdicom logs while an operation runs, kept by thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self._records: list[logging.LogRecord] = []
        self._records_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._records_lock:
            self._records.append(record)

    def _records_of(self, assoc: PynAssociation | None) -> list[logging.LogRecord]:
        threads = {threading.get_ident()}
        if assoc is not None:
            threads.update(ident for ident in (assoc.ident, assoc.dul.ident) if ident)
        with self._records_lock:
            return [r for r in self._records if r.thread in threads]

    def messages(self, assoc: PynAssociation | None) -> list[str]:
        return [r.getMessage() for r in self._records_of(assoc)]

    def tls_failure(self, assoc: PynAssociation | None) -> ssl.SSLError | None:
        """The TLS error pynetdicom logged (with its traceback), if any: during the
        handshake, or when the peer refused it just after (TLS 1.3 checks the client's
        certificate once the client thinks the handshake done)."""
        for record in self._records_of(assoc):
            error = record.exc_info[1] if record.exc_info else None
            if isinstance(error, ssl.SSLError):
                return error
        return None

    def error(
        self, target: Association, what: str, assoc: PynAssociation | None, detail: str = ""
    ) -> PharosError:
        """The error to raise when `what` failed: TIMEOUT if pynetdicom gave up waiting."""
        messages = self.messages(assoc)
        timed_out = any(marker in m.lower() for m in messages for marker in _TIMEOUT_MARKERS)
        said = "; ".join(dict.fromkeys(m.strip() for m in messages if m.strip()))
        text = f"{what} with {describe(target)}"
        if detail:
            text += f": {detail}"
        if said:
            text += f" ({said})"
        return PharosError(ErrorCode.TIMEOUT if timed_out else ErrorCode.NETWORK_PROTOCOL, text)


@contextmanager
def diagnostics() -> Iterator[Diagnostics]:
    handler = Diagnostics()
    _PYNETDICOM.addHandler(handler)
    try:
        yield handler
    finally:
        _PYNETDICOM.removeHandler(handler)


def open_association(
    target: Association,
    contexts: Sequence[PresentationContext],
    roles: Sequence[SCP_SCU_RoleSelectionNegotiation],
    maximum_pdu_length: int,
    notes: Diagnostics,
    tls: DicomTls,
) -> PynAssociation:
    """An established association (over DICOM TLS to a modality with `UseDicomTls`), or a
    PharosError saying why there is none."""
    modality = target.modality
    tls_args = tls.client_args(modality)
    try:
        ae = AE(ae_title=target.local_aet)
    except ValueError as exc:
        raise PharosError(
            ErrorCode.BAD_PARAMETER_TYPE, f'Invalid local AE title "{target.local_aet}": {exc}'
        ) from None
    # None: no limit for each step (connecting, association, DIMSE messages, silence).
    ae.connection_timeout = target.timeout
    ae.acse_timeout = target.timeout
    ae.dimse_timeout = target.timeout
    ae.network_timeout = target.timeout
    try:
        assoc = ae.associate(
            modality.host,
            modality.port,
            contexts=list(contexts),
            ae_title=modality.aet,
            max_pdu=maximum_pdu_length,
            ext_neg=list(roles),
            evt_handlers=[(evt.EVT_CONN_OPEN, set_no_delay)],
            tls_args=tls_args,
        )
    except (ValueError, TypeError) as exc:  # bad AE title or address
        raise PharosError(
            ErrorCode.NETWORK_PROTOCOL, f"Cannot associate with {describe(target)}: {exc}"
        ) from None
    if assoc.is_established:
        keep_answers_for_the_sender(assoc)
        return assoc
    if tls_args is not None:
        failure = notes.tls_failure(assoc)
        reason = failure_reason(failure) if failure is not None else None
        if reason is None and any(_RESET in m for m in notes.messages(assoc)):
            # A plain DICOM peer drops the connection at our TLS ClientHello.
            reason = "the peer closed the connection during the TLS handshake (plain DICOM?)"
        if reason is not None:
            raise PharosError(
                ErrorCode.NETWORK_PROTOCOL, f"DICOM TLS with {describe(target)} failed: {reason}"
            )
    if assoc.is_rejected:
        raise notes.error(target, "Association rejected", assoc)
    if not assoc.is_aborted:
        raise notes.error(target, "Association not established", assoc)
    if any("unable to connect" in m for m in notes.messages(assoc)):
        raise notes.error(target, "Cannot connect", assoc)
    raise notes.error(target, "Association aborted", assoc)


@dataclass(eq=False)
class _Idle:
    key: tuple[object, ...]
    contexts: frozenset[ContextKey]
    assoc: PynAssociation
    network_timeout: float | None
    timer: threading.Timer | None = field(default=None)


class AssociationPool:
    """Keeps the last association open `close_delay` seconds after its operation, for the
    next operation with the same modality, calling AE title and compatible contexts."""

    def __init__(self, close_delay: float):
        self._close_delay = close_delay
        self._lock = threading.Lock()
        self._idle: _Idle | None = None

    def take(
        self, key: tuple[object, ...], contexts: Sequence[PresentationContext]
    ) -> tuple[PynAssociation, frozenset[ContextKey]] | None:
        """The idle association for `key` and the contexts it proposed, if it is still up
        and proposed every one of `contexts` (it then belongs to the caller until
        `give_back`)."""
        wanted = context_keys(contexts)
        with self._lock:
            idle, self._idle = self._idle, None
        if idle is None:
            return None
        if idle.timer is not None:
            idle.timer.cancel()
        if idle.key != key or not wanted <= idle.contexts or not idle.assoc.is_established:
            # Released now rather than when replaced: many peers (storescp among them)
            # serve one association at a time, and the new one may go to the same peer.
            _release(idle.assoc)
            return None
        idle.assoc.network_timeout = idle.network_timeout
        return idle.assoc, idle.contexts

    def give_back(
        self,
        key: tuple[object, ...],
        contexts: frozenset[ContextKey],
        assoc: PynAssociation,
    ) -> None:
        """Done with `assoc`: keep it for the next operation, or release it."""
        if self._close_delay <= 0 or not assoc.is_established:
            _release(assoc)
            return
        # Silence is expected while idle: the close delay, not the network timeout, ends it.
        idle = _Idle(key, contexts, assoc, assoc.network_timeout)
        assoc.network_timeout = None
        idle.timer = threading.Timer(self._close_delay, self._expire, (idle,))
        idle.timer.daemon = True
        with self._lock:
            previous, self._idle = self._idle, idle
        idle.timer.start()
        if previous is not None:
            if previous.timer is not None:
                previous.timer.cancel()
            _release(previous.assoc)

    def _expire(self, idle: _Idle) -> None:
        with self._lock:
            if self._idle is not idle:
                return
            self._idle = None
        _release(idle.assoc)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, None
        if idle is not None:
            if idle.timer is not None:
                idle.timer.cancel()
            _release(idle.assoc)


def _release(assoc: PynAssociation) -> None:
    if assoc.is_established:
        try:
            assoc.release()
        except Exception:  # the peer went away meanwhile: nothing left to close politely
            log.debug("Releasing an association failed", exc_info=True)
            assoc.abort()
