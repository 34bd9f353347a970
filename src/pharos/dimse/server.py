"""The DICOM server: one pynetdicom application entity listening on `DicomPort` as `DicomAet`.

Presentation contexts, as Orthanc's SCP builds them:
- Verification, and the Patient Root and Study Root FIND, MOVE and GET models (and the
  Modality Worklist FIND model when `Worklists` is enabled), in the three uncompressed
  transfer syntaxes;
- the Storage Commitment Push Model, in whichever role the peer proposes (SCU for its
  requests, SCP for the reports it sends);
- every storage SOP class in the accepted transfer syntaxes, in whichever role the peer
  proposes (SCP for C-STORE, SCU too for the C-STORE sub-operations of its C-GET);
- with `UnknownSopClassAccepted`, any other SOP class the peer proposes, as storage.
The accepted transfer syntaxes and `UnknownSopClassAccepted` are read at each association
request (they change at run time through /tools), and plugins may decide per peer
(`pharos_accept_transfer_syntax`, `pharos_accept_unknown_sop_class`).

Each association is checked when it is requested (called AE title, calling AE title: see
`DicomAccess`), and each request again by its handler. The sockets send without delay, and
the associations' threads wait for events rather than poll (`reactor.py`). With DICOM TLS,
each connection first completes a TLS handshake on its own thread (`transport.py`).
"""

from __future__ import annotations

import copy
import logging
import ssl
from typing import Any

from pynetdicom import AE, AllStoragePresentationContexts, _config, build_context, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.pdu_primitives import SOPClassCommonExtendedNegotiation
from pynetdicom.presentation import PresentationContext
from pynetdicom.service_class import ServiceClass
from pynetdicom.sop_class import uid_to_service_class

from pharos.dicom.transfer_syntaxes import GROUPS, KNOWN, UNCOMPRESSED
from pharos.dimse.handlers import Peer, ScpHandlers, set_no_delay
from pharos.dimse.options import DicomServerOptions
from pharos.dimse.reactor import on_connection_open
from pharos.dimse.transport import DicomListener, start_server
from pharos.plugins.manager import PluginManager
from pharos.services.dicom_access import DicomAccess
from pharos.services.scp_settings import ScpSettings

log = logging.getLogger(__name__)

VERIFICATION = "1.2.840.10008.1.1"
QUERY_RETRIEVE = (
    "1.2.840.10008.5.1.4.1.2.1.1",  # Patient Root - FIND
    "1.2.840.10008.5.1.4.1.2.1.2",  # Patient Root - MOVE
    "1.2.840.10008.5.1.4.1.2.1.3",  # Patient Root - GET
    "1.2.840.10008.5.1.4.1.2.2.1",  # Study Root - FIND
    "1.2.840.10008.5.1.4.1.2.2.2",  # Study Root - MOVE
    "1.2.840.10008.5.1.4.1.2.2.3",  # Study Root - GET
)
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
STORAGE_COMMITMENT = "1.2.840.10008.1.20.1"  # Push Model
STORAGE_SERVICE_CLASS = "1.2.840.10008.4.2"
_NOT_STORAGE = frozenset(
    (VERIFICATION, *QUERY_RETRIEVE, MODALITY_WORKLIST_FIND, STORAGE_COMMITMENT)
)
# Associations served at once; beyond, new ones are refused ("local limit exceeded").
MAXIMUM_ASSOCIATIONS = 1000
# How long stopping waits for each association still running to finish its request.
STOP_GRACE = 10.0

# (A-ASSOCIATE-RJ) result "rejected permanent", source "service user", and the reasons
_REJECTED_PERMANENT = 0x01
_SERVICE_USER = 0x01
_CALLING_AET_NOT_RECOGNIZED = 0x03
_CALLED_AET_NOT_RECOGNIZED = 0x07


class Contexts(list[PresentationContext]):
    """The server's presentation contexts. pynetdicom deep-copies them for each association,
    which takes 20 ms of CPU for the ~130 storage contexts; a copy of each context and of its
    list of transfer syntaxes is as good (the UIDs are immutable strings) and 100 times
    cheaper."""

    def __deepcopy__(self, memo: dict[int, Any]) -> list[PresentationContext]:
        return [_copy_context(context) for context in self]


def _copy_context(context: PresentationContext) -> PresentationContext:
    new = copy.copy(context)
    new._transfer_syntax = list(context._transfer_syntax)
    return new


def supported_contexts(
    options: DicomServerOptions, syntaxes: tuple[str, ...] | None = None
) -> Contexts:
    """The contexts of the server; storage ones in `syntaxes` (default: the configured)."""
    syntaxes = options.transfer_syntaxes if syntaxes is None else syntaxes
    uids = (VERIFICATION, *QUERY_RETRIEVE, *_worklist_models(options))
    contexts = Contexts(build_context(uid, list(UNCOMPRESSED)) for uid in uids)
    commitment = build_context(STORAGE_COMMITMENT, list(UNCOMPRESSED))
    commitment.scu_role = commitment.scp_role = True  # a report's sender proposes SCP
    contexts.append(commitment)
    if syntaxes:
        for storage in AllStoragePresentationContexts:
            contexts.append(_storage_context(str(storage.abstract_syntax), syntaxes))
    return contexts


def _worklist_models(options: DicomServerOptions) -> tuple[str, ...]:
    return (MODALITY_WORKLIST_FIND,) if options.worklists else ()


def _storage_context(sop_class: str, syntaxes: tuple[str, ...]) -> PresentationContext:
    context = build_context(sop_class, list(syntaxes))
    # Accept the role the peer proposes: SCU (C-STORE to us) or SCP (C-GET sub-operations).
    context.scu_role = True
    context.scp_role = True
    return context


def _storage_syntaxes(assoc: Association) -> tuple[str, ...]:
    """The storage transfer syntaxes of the contexts an association was given (those of
    `supported_contexts`, storage ones last)."""
    contexts = assoc.acceptor.supported_contexts
    if not contexts or str(contexts[-1].abstract_syntax) in _NOT_STORAGE:
        return ()
    return tuple(str(syntax) for syntax in contexts[-1].transfer_syntax)


def _is_unknown(sop_class: str) -> bool:
    return uid_to_service_class(sop_class) is ServiceClass


class DicomServer:
    def __init__(
        self,
        options: DicomServerOptions,
        handlers: ScpHandlers,
        access: DicomAccess,
        scp: ScpSettings | None = None,
        plugins: PluginManager | None = None,
        tls: ssl.SSLContext | None = None,
    ):
        self._options = options
        self._tls = tls  # DicomTlsEnabled: the server context of DICOM TLS
        self._handlers = handlers
        self._access = access
        self._scp = scp or ScpSettings(options.transfer_syntaxes, options.unknown_sop_classes)
        self._plugins = plugins or PluginManager()
        # The server's contexts are those of these syntaxes (others are built on demand).
        self._syntaxes = self._scp.transfer_syntaxes
        self._contexts: dict[tuple[str, ...], Contexts] = {}
        self._server: DicomListener | None = None
        # pynetdicom formats every identifier for its logs unless told not to (its settings
        # are the process's; Pharos logs requests itself).
        _config.LOG_REQUEST_IDENTIFIERS = False
        _config.LOG_RESPONSE_IDENTIFIERS = False
        ae = AE(ae_title=options.aet)
        ae.maximum_pdu_size = options.maximum_pdu_length
        ae.maximum_associations = MAXIMUM_ASSOCIATIONS
        ae.acse_timeout = options.timeout
        ae.dimse_timeout = options.timeout
        ae.network_timeout = options.timeout
        ae.connection_timeout = options.scu_timeout  # C-MOVE sub-associations
        self._ae = ae

    def describe(self) -> str:
        options = self._options
        if not options.enabled:
            return "DICOM server disabled"
        tls = " (DICOM TLS)" if self._tls is not None else ""
        return f'DICOM "{options.aet}" on port {options.port}{tls}'

    @property
    def port(self) -> int | None:
        """The port listened on, once started."""
        if self._server is None:
            return None
        return int(self._server.server_address[1])

    def start(self) -> None:
        options = self._options
        if not options.enabled:
            log.info("DICOM server disabled (DicomServerEnabled is false)")
            return
        handlers: list[Any] = [
            (evt.EVT_CONN_OPEN, set_no_delay),
            (evt.EVT_CONN_OPEN, on_connection_open),
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ESTABLISHED, self._on_established),
            *self._handlers.bindings(),
        ]
        try:
            self._server = start_server(
                self._ae,
                (options.host, options.port),
                self._tls,
                options.timeout,  # for the TLS handshake, as for the association request
                evt_handlers=handlers,
                contexts=self._contexts_of(self._syntaxes),
            )
        except OSError as exc:
            raise RuntimeError(
                f"Cannot listen for DICOM on port {options.port}: {exc.strerror or exc}"
            ) from exc
        log.info(
            'DICOM server "%s" listening on port %d%s (%d transfer syntaxes accepted for storage)',
            options.aet,
            self.port,
            " with DICOM TLS" if self._tls is not None else "",
            len(self._syntaxes),
        )

    def stop(self) -> None:
        """Stop listening, abort the associations still open, wait for their handlers."""
        server, self._server = self._server, None
        if server is None:
            return
        running = list(server.active_associations)
        server.shutdown()
        for assoc in running:
            assoc.abort()
        for assoc in running:
            assoc.join(timeout=STOP_GRACE)

    # -- association events -----------------------------------------------------------------

    def _on_requested(self, event: Event) -> None:
        assoc = event.assoc
        peer = Peer.of(assoc)
        refusal = self._access.association_refusal(peer.aet, peer.called_aet, peer.address)
        if refusal is not None:
            which, reason = refusal
            log.warning(
                'Rejected the association from %s calling "%s": %s', peer, peer.called_aet, reason
            )
            diagnostic = (
                _CALLED_AET_NOT_RECOGNIZED if which == "called" else _CALLING_AET_NOT_RECOGNIZED
            )
            assoc.acse.send_reject(_REJECTED_PERMANENT, _SERVICE_USER, diagnostic)
            assoc.kill()
            return
        syntaxes, unknown_sop_classes = self._acceptance(peer)
        if syntaxes != _storage_syntaxes(assoc):  # copied before a change, or per peer
            assoc.acceptor.supported_contexts = copy.deepcopy(self._contexts_of(syntaxes))
        if unknown_sop_classes and syntaxes:
            self._accept_unknown_sop_classes(assoc, syntaxes)

    def _acceptance(self, peer: Peer) -> tuple[tuple[str, ...], bool]:
        """The storage transfer syntaxes and whether unknown SOP classes are accepted for
        this peer: the run-time settings, then what plugins say."""
        syntaxes = self._scp.transfer_syntaxes
        server = self._server
        if syntaxes != self._syntaxes and server is not None:
            # Changed through /tools: the contexts of the next associations.
            server.contexts = self._contexts_of(syntaxes)
            self._syntaxes = syntaxes
        unknown = self._scp.unknown_sop_classes
        plugins = self._plugins
        if plugins.has("pharos_accept_transfer_syntax"):
            accepted = set(syntaxes)
            for option, group in GROUPS.items():
                name = option.removesuffix("TransferSyntaxAccepted")
                answer = plugins.accepts_syntax(peer.aet, peer.address, peer.called_aet, name)
                if answer is True:
                    accepted.update(group)
                elif answer is False:
                    accepted.difference_update(group)
            syntaxes = tuple(syntax for syntax in KNOWN if syntax in accepted)
        if plugins.has("pharos_accept_unknown_sop_class"):
            answer = plugins.accepts_unknown_sop_class(peer.aet, peer.address, peer.called_aet)
            if answer is not None:
                unknown = answer
        return syntaxes, unknown

    def _contexts_of(self, syntaxes: tuple[str, ...]) -> Contexts:
        contexts = self._contexts.get(syntaxes)
        if contexts is None:
            if len(self._contexts) > 64:  # per-peer choices of plugins: a bounded cache
                self._contexts.clear()
            contexts = self._contexts[syntaxes] = supported_contexts(self._options, syntaxes)
        return contexts

    def _accept_unknown_sop_classes(self, assoc: Association, syntaxes: tuple[str, ...]) -> None:
        """Support, for this association, the SOP classes proposed that pynetdicom does not
        know (private ones included), as storage ("promiscuous mode")."""
        request = assoc.requestor.primitive
        proposed = request.presentation_context_definition_list if request is not None else []
        unknown = sorted(
            {str(cx.abstract_syntax) for cx in proposed if _is_unknown(str(cx.abstract_syntax))}
        )
        if unknown:
            extra = [_storage_context(uid, syntaxes) for uid in unknown]
            assoc.acceptor.supported_contexts = assoc.acceptor.supported_contexts + extra

    def _on_established(self, event: Event) -> None:
        assoc = event.assoc
        log.debug("Association from %s established", Peer.of(assoc))
        # Route the C-STORE requests of the unknown SOP classes accepted to the storage
        # service, as SOP Class Common Extended Negotiation would (PS3.7 D.3.3.6).
        for context in assoc.accepted_contexts:
            uid = context.abstract_syntax
            if uid is not None and _is_unknown(uid):
                item = SOPClassCommonExtendedNegotiation()
                item.sop_class_uid = uid
                item.service_class_uid = STORAGE_SERVICE_CLASS
                assoc.acceptor._common_ext[uid] = item
