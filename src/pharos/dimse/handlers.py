"""The SCP side of each DICOM service: parse the request, check it is allowed, call a service,
turn the outcome into DIMSE statuses.

A refused request aborts the association, as in Orthanc: peers (dcmtk's tools among them) take
"Refused: Not Authorized" (0124H) for an unknown status and carry on as if it were a success.
Each refusal is logged with the AE title, the address and the reason.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from io import BytesIO
from typing import Any, cast

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event
from pynetdicom.presentation import PresentationContext

from pharos.dicom.file_meta import file_meta_header
from pharos.dicom.query import Identifier
from pharos.dimse.options import DicomServerOptions
from pharos.dimse.scu_contexts import CannotSend, prepare, storage_contexts
from pharos.dimse.tls import DicomTls
from pharos.index.base import Reception
from pharos.model.errors import ErrorCode, PharosError
from pharos.plugins.types import ORIGIN_DICOM, origin_dict
from pharos.services.dicom_access import DicomAccess
from pharos.services.dicom_query import DicomQueryService, FindAnswers, IdentifierError
from pharos.services.dicom_retrieve import RetrieveService, StoredInstance
from pharos.services.modalities import DicomRequest, Modality
from pharos.services.store import StoreService
from pharos.services.worklists import WorklistAnswers, WorklistService

Found = FindAnswers | WorklistAnswers  # what a C-FIND answers: answers, and complete
log = logging.getLogger(__name__)

# DIMSE statuses (PS3.4 and PS3.7 annex C)
SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00
NOT_AUTHORIZED = 0x0124
OUT_OF_RESOURCES = 0xA700
IDENTIFIER_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000  # C-STORE: "Error: Cannot understand"
UNABLE_TO_PROCESS = 0xC001  # C-FIND, C-MOVE, C-GET: "Failed: Unable to process"
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other side of an association."""

    aet: str
    address: str
    called_aet: str

    @classmethod
    def of(cls, assoc: Association) -> Peer:
        request = assoc.requestor.primitive  # the A-ASSOCIATE request, as received
        if request is None:
            return cls(assoc.requestor.ae_title, assoc.requestor.address, "")
        return cls(request.calling_ae_title, assoc.requestor.address, request.called_ae_title)

    def __str__(self) -> str:
        return f'AET "{self.aet}" ({self.address})'


def status(code: int, comment: str | None = None) -> Dataset:
    """A status with its Error Comment (LO: 64 characters at most)."""
    dataset = Dataset()
    dataset.Status = code
    if comment:
        dataset.ErrorComment = comment.replace("\\", "/")[:64]
    return dataset


def set_no_delay(event: Event) -> None:
    """Send each PDU at once: with Nagle's algorithm, every small response would wait for
    the peer's delayed ACK (about 40 ms per C-STORE on Linux)."""
    sock = event.assoc.dul.socket
    if sock is not None and sock.socket is not None:
        with contextlib.suppress(OSError):  # closed meanwhile
            sock.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _received_file(event: Event) -> bytes:
    """The file of a C-STORE request: a file meta group built for it, then the data set as
    received (pynetdicom's `encoded_dataset()` builds the same group through pydicom, ten
    times as slowly)."""
    request = cast(C_STORE, event.request)
    acceptor = event.assoc.acceptor
    header = file_meta_header(
        str(request.AffectedSOPClassUID),
        str(request.AffectedSOPInstanceUID),
        str(event.context.transfer_syntax),
        str(acceptor.implementation_class_uid),
        acceptor.implementation_version_name,
    )
    with cast(BytesIO, request.DataSet).getbuffer() as data_set:
        return b"".join((header, data_set))


def refused(access: DicomAccess, event: Event, request: DicomRequest) -> bool:
    """Whether `request` is refused to the peer (the association is then aborted)."""
    peer = Peer.of(event.assoc)
    reason = access.request_refusal(peer.aet, peer.address, request)
    if reason is None:
        return False
    log.warning("Refused %s from %s: %s (association aborted)", request.value, peer, reason)
    event.assoc.abort()
    return True


class ScpHandlers:
    """The event handlers of the DICOM server, bound to the services they call."""

    def __init__(
        self,
        options: DicomServerOptions,
        access: DicomAccess,
        store: StoreService,
        query: DicomQueryService,
        retrieve: RetrieveService,
        worklists: WorklistService | None = None,
        extra: Sequence[tuple[Any, Any]] = (),  # handlers of other services (commitment)
        tls: DicomTls | None = None,
    ):
        self._options = options
        self._extra = list(extra)
        self._tls = tls or DicomTls()  # for C-MOVE destinations with UseDicomTls
        self._worklists = worklists
        self._access = access
        self._store = store
        self._query = query
        self._retrieve = retrieve
        # DicomThreadsCount: the requests doing work at once (stores, searches, file reads);
        # associations themselves are not limited.
        self._slots = threading.BoundedSemaphore(options.threads)

    def bindings(self) -> list[tuple[Any, Any]]:
        return [
            (evt.EVT_C_ECHO, self.on_echo),
            (evt.EVT_C_STORE, self.on_store),
            (evt.EVT_C_FIND, self.on_find),
            (evt.EVT_C_MOVE, self.on_move),
            (evt.EVT_C_GET, self.on_get),
            *self._extra,
        ]

    def _refused(self, event: Event, request: DicomRequest) -> bool:
        return refused(self._access, event, request)

    # -- C-ECHO -----------------------------------------------------------------------------

    def on_echo(self, event: Event) -> int:
        if self._refused(event, DicomRequest.ECHO):
            return NOT_AUTHORIZED  # not sent: the association is aborted
        return SUCCESS

    # -- C-STORE ----------------------------------------------------------------------------

    def on_store(self, event: Event) -> int | Dataset:
        if self._refused(event, DicomRequest.STORE):
            return NOT_AUTHORIZED  # not sent: the association is aborted
        peer = Peer.of(event.assoc)
        reception = Reception(
            origin="DicomProtocol",
            remote_aet=peer.aet,
            remote_ip=peer.address,
            called_aet=peer.called_aet,
        )
        data = _received_file(event)
        try:
            with self._slots:
                result = self._store.store(data, reception)
        except PharosError as exc:
            if exc.code is ErrorCode.BAD_FILE_FORMAT:
                log.warning("C-STORE from %s not stored: %s", peer, exc)
                return status(CANNOT_UNDERSTAND, str(exc))
            log.error("C-STORE from %s failed: %s", peer, exc)
            return status(OUT_OF_RESOURCES, str(exc))
        except Exception as exc:
            log.exception("C-STORE from %s failed", peer)
            return status(OUT_OF_RESOURCES, f"{type(exc).__name__}: {exc}")
        log.debug("C-STORE from %s: instance %s %s", peer, result.ids.instance, result.status.value)
        return SUCCESS

    # -- C-FIND -----------------------------------------------------------------------------

    def on_find(self, event: Event) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        if str(event.context.abstract_syntax) == MODALITY_WORKLIST_FIND:
            yield from self._answer_find(event, DicomRequest.FIND_WORKLIST, self._worklist_find)
        else:
            yield from self._answer_find(event, DicomRequest.FIND, self._find)

    def _find(self, event: Event, peer: Peer) -> tuple[Found, str]:
        origin = origin_dict(ORIGIN_DICOM, peer.address, peer.aet, peer.called_aet)
        identifier = self._query.filtered(self._identifier(event), origin)
        with self._slots:
            found = self._query.find(identifier)
        return found, f"C-FIND from {peer} at level {identifier.level}: {found.count} answers"

    def _worklist_find(self, event: Event, peer: Peer) -> tuple[Found, str]:
        """A C-FIND on the Modality Worklist model (only accepted when worklists are on)."""
        worklists = self._worklists
        if worklists is None:
            raise PharosError(ErrorCode.BAD_REQUEST, "Worklists are not enabled")
        try:
            dataset = event.identifier
        except Exception as exc:
            raise IdentifierError(f"Undecodable identifier: {exc}") from None
        origin = origin_dict(ORIGIN_DICOM, peer.address, peer.aet, peer.called_aet)
        query = worklists.filtered(worklists.parse(dataset), origin)
        with self._slots:
            found = worklists.find(query, peer.aet)
        return found, f"Worklist C-FIND from {peer}: {len(found.answers)} answers"

    def _answer_find(
        self,
        event: Event,
        request: DicomRequest,
        search: Callable[[Event, Peer], tuple[Found, str]],
    ) -> Iterator[tuple[int | Dataset, Dataset | None]]:
        """The statuses of a C-FIND: the search's answers as pending, then success, or
        cancel when a limit cut them (as Orthanc: matching terminated)."""
        if self._refused(event, request):
            return
        peer = Peer.of(event.assoc)
        worklist = request is DicomRequest.FIND_WORKLIST
        kind = "Worklist C-FIND" if worklist else "C-FIND"
        limit = "LimitAnswers" if worklist else "LimitFindResults/LimitFindInstances"
        try:
            found, summary = search(event, peer)
        except IdentifierError as exc:
            log.warning("%s from %s refused: %s", kind, peer, exc)
            yield status(IDENTIFIER_DOES_NOT_MATCH, str(exc)), None
            return
        except PharosError as exc:
            log.warning("%s from %s failed: %s", kind, peer, exc)
            yield status(UNABLE_TO_PROCESS, str(exc)), None
            return
        except Exception as exc:
            log.exception("%s from %s failed", kind, peer)
            yield status(UNABLE_TO_PROCESS, f"{type(exc).__name__}: {exc}"), None
            return
        log.info("%s", summary)
        try:
            for answer in found.answers:
                if event.is_cancelled:
                    yield CANCEL, None
                    return
                yield PENDING, answer
        except Exception as exc:
            log.exception("%s from %s failed while answering", kind, peer)
            yield status(UNABLE_TO_PROCESS, f"{type(exc).__name__}: {exc}"), None
            return
        if not found.complete:
            log.warning("%s from %s: more answers than %s", kind, peer, limit)
            yield CANCEL, None
            return
        yield SUCCESS, None

    # -- C-MOVE -----------------------------------------------------------------------------

    def on_move(self, event: Event) -> Iterator[Any]:
        if self._refused(event, DicomRequest.MOVE):
            return
        peer = Peer.of(event.assoc)
        target = event.move_destination or ""
        destinations = self._access.modalities.by_aet(target)
        if not destinations:
            log.warning(
                'C-MOVE from %s: the destination "%s" is not declared in DicomModalities',
                peer,
                target,
            )
            yield None, None  # "Refused: Move Destination unknown"
            return
        destination = destinations[0]
        # Errors raised here (before the first answer) are answered with a failure status.
        try:
            tls_args = self._tls.client_args(destination)
        except PharosError as exc:
            log.warning("C-MOVE from %s refused: %s", peer, exc.details)
            raise
        instances = self._instances(event, peer, "C-MOVE")
        log.info(
            'C-MOVE from %s: %d instances to "%s" (%s:%d)',
            peer,
            len(instances),
            destination.aet,
            destination.host,
            destination.port,
        )
        # The destination's LocalAet and Timeout, else DicomAet and DicomScuTimeout.
        timeout = float(destination.timeout) if destination.timeout else self._options.scu_timeout
        link = _StoreLink(destination.local_aet or self._options.aet, timeout, peer.aet)
        yield (
            destination.host,
            destination.port,
            self._store_association(destination, instances, link, tls_args),
        )
        yield len(instances)
        yield from self._sub_operations(
            event, instances, link.accepted, destination.allow_transcoding
        )

    def _store_association(
        self,
        destination: Modality,
        instances: list[StoredInstance],
        link: _StoreLink,
        tls_args: tuple[ssl.SSLContext, str] | None,
    ) -> dict[str, Any]:
        """How pynetdicom associates with a C-MOVE destination: its AE title, a presentation
        context for each SOP class to send (see `storage_contexts`), `link` to set up the
        association as the destination wants it, and DICOM TLS if it has `UseDicomTls`."""
        plan = storage_contexts(
            ((i.sop_class_uid, i.transfer_syntax) for i in instances),
            destination.allow_transcoding,
        )
        if plan.left_out:
            log.warning(
                "C-MOVE to %s: more than 128 presentation contexts needed; the instances of "
                "%d (SOP class, transfer syntax) pairs will fail",
                destination.aet,
                len(plan.left_out),
            )
        return {
            "ae_title": destination.aet,
            "contexts": plan.contexts,
            "max_pdu": self._options.maximum_pdu_length,
            "evt_handlers": [(evt.EVT_CONN_OPEN, link.on_connected)],
            "tls_args": tls_args,
        }

    # -- C-GET ------------------------------------------------------------------------------

    def on_get(self, event: Event) -> Iterator[Any]:
        if self._refused(event, DicomRequest.GET):
            return
        peer = Peer.of(event.assoc)
        instances = self._instances(event, peer, "C-GET")
        log.info("C-GET from %s: %d instances", peer, len(instances))
        requesters = self._access.modalities.by_aet(peer.aet)
        # An undeclared peer (let in by DicomAlwaysAllowGet): AllowTranscoding's default.
        transcoding = requesters[0].allow_transcoding if requesters else True
        yield len(instances)
        yield from self._sub_operations(
            event, instances, lambda: event.assoc.accepted_contexts, transcoding
        )

    # -- shared by C-MOVE and C-GET ---------------------------------------------------------

    def _identifier(self, event: Event) -> Identifier:
        try:
            dataset = event.identifier
        except Exception as exc:
            raise IdentifierError(f"Undecodable identifier: {exc}") from None
        return self._query.identifier(dataset)

    def _instances(self, event: Event, peer: Peer, service: str) -> list[StoredInstance]:
        try:
            identifier = self._identifier(event)
            with self._slots:
                return self._retrieve.instances(identifier, service)
        except PharosError as exc:
            log.warning("%s from %s refused: %s", service, peer, exc)
            raise

    def _sub_operations(
        self,
        event: Event,
        instances: list[StoredInstance],
        accepted: Callable[[], list[PresentationContext]],
        allow_transcoding: bool,
    ) -> Iterator[tuple[int, Dataset | None]]:
        """Each instance as the sub-operation C-STORE sends it: pynetdicom picks the context
        by the data set's transfer syntax, so an instance the peer does not accept as stored
        is handed over transcoded to a syntax it accepted."""
        for instance in instances:
            if event.is_cancelled:
                yield CANCEL, None
                return
            try:
                with self._slots:
                    dataset = prepare(
                        self._retrieve.load(instance),
                        instance.transfer_syntax,
                        accepted(),
                        allow_transcoding,
                    )
            except (PharosError, CannotSend) as exc:
                log.warning("Instance %s not sent: %s", instance.ref.public_id, exc)
                # Without its SOP Class UID it cannot be sent: pynetdicom counts a failed
                # sub-operation and lists the SOP Instance UID in the final answer.
                dataset = Dataset()
                dataset.SOPInstanceUID = instance.sop_instance_uid
            yield PENDING, dataset


class _StoreLink:
    """Sets up the association pynetdicom opens to a C-MOVE destination, which it makes with
    the server's AE title, timeouts and its own AE title as Move Originator: once connected
    (before the association request goes out), the calling AE title and timeouts become the
    destination's, and each C-STORE names the C-MOVE requester as its originator."""

    def __init__(self, calling_aet: str, timeout: float | None, originator_aet: str):
        self.calling_aet = calling_aet
        self.timeout = timeout
        self.originator_aet = originator_aet
        self._assoc: Association | None = None

    def accepted(self) -> list[PresentationContext]:
        return self._assoc.accepted_contexts if self._assoc is not None else []

    def on_connected(self, event: Event) -> None:
        set_no_delay(event)
        assoc = event.assoc
        self._assoc = assoc
        assoc.requestor.ae_title = self.calling_aet
        request = assoc.requestor.primitive  # built, not encoded yet
        if request is not None:
            request.calling_ae_title = self.calling_aet
        assoc.acse_timeout = self.timeout
        assoc.dimse_timeout = self.timeout
        assoc.network_timeout = self.timeout
        send_c_store = assoc.send_c_store
        originator = self.originator_aet

        def send(
            dataset: Dataset,
            msg_id: int = 1,
            priority: int = 2,
            originator_aet: str | None = None,
            originator_id: int | None = None,
        ) -> Dataset:
            return send_c_store(
                dataset, msg_id, priority, originator_aet=originator, originator_id=originator_id
            )

        # This association is ours alone; pynetdicom's C-MOVE calls this attribute.
        setattr(assoc, "send_c_store", send)  # noqa: B010
