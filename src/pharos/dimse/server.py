"""The DICOM server: one pynetdicom application entity listening on `DicomPort` as `DicomAet`.

Presentation contexts, as Orthanc's SCP builds them:
- Verification, and the Patient Root and Study Root FIND, MOVE and GET models, in the three
  uncompressed transfer syntaxes;
- every storage SOP class in the accepted transfer syntaxes, in whichever role the peer
  proposes (SCP for C-STORE, SCU too for the C-STORE sub-operations of its C-GET);
- with `UnknownSopClassAccepted`, any other SOP class the peer proposes, as storage.

Each association is checked when it is requested (called AE title, calling AE title: see
`DicomAccess`), and each request again by its handler. The sockets send without delay.
"""

from __future__ import annotations

import logging
from typing import Any

from pynetdicom import AE, AllStoragePresentationContexts, _config, build_context, evt
from pynetdicom.association import Association
from pynetdicom.events import Event
from pynetdicom.pdu_primitives import SOPClassCommonExtendedNegotiation
from pynetdicom.presentation import PresentationContext
from pynetdicom.service_class import ServiceClass
from pynetdicom.sop_class import uid_to_service_class
from pynetdicom.transport import ThreadedAssociationServer

from pharos.dicom.transfer_syntaxes import UNCOMPRESSED
from pharos.dimse.handlers import Peer, ScpHandlers, set_no_delay
from pharos.dimse.options import DicomServerOptions
from pharos.services.dicom_access import DicomAccess

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
STORAGE_SERVICE_CLASS = "1.2.840.10008.4.2"
# Associations served at once; beyond, new ones are refused ("local limit exceeded").
MAXIMUM_ASSOCIATIONS = 1000
# How long stopping waits for each association still running to finish its request.
STOP_GRACE = 10.0

# (A-ASSOCIATE-RJ) result "rejected permanent", source "service user", and the reasons
_REJECTED_PERMANENT = 0x01
_SERVICE_USER = 0x01
_CALLING_AET_NOT_RECOGNIZED = 0x03
_CALLED_AET_NOT_RECOGNIZED = 0x07


def supported_contexts(options: DicomServerOptions) -> list[PresentationContext]:
    contexts = [build_context(uid, list(UNCOMPRESSED)) for uid in (VERIFICATION, *QUERY_RETRIEVE)]
    if options.transfer_syntaxes:
        for storage in AllStoragePresentationContexts:
            contexts.append(_storage_context(str(storage.abstract_syntax), options))
    return contexts


def _storage_context(sop_class: str, options: DicomServerOptions) -> PresentationContext:
    context = build_context(sop_class, list(options.transfer_syntaxes))
    # Accept the role the peer proposes: SCU (C-STORE to us) or SCP (C-GET sub-operations).
    context.scu_role = True
    context.scp_role = True
    return context


def _is_unknown(sop_class: str) -> bool:
    return uid_to_service_class(sop_class) is ServiceClass


class DicomServer:
    def __init__(self, options: DicomServerOptions, handlers: ScpHandlers, access: DicomAccess):
        self._options = options
        self._handlers = handlers
        self._access = access
        self._server: ThreadedAssociationServer | None = None
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
        return f'DICOM "{options.aet}" on port {options.port}'

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
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_ESTABLISHED, self._on_established),
            *self._handlers.bindings(),
        ]
        try:
            self._server = self._ae.start_server(
                (options.host, options.port),
                block=False,
                evt_handlers=handlers,
                contexts=supported_contexts(options),
            )
        except OSError as exc:
            raise RuntimeError(
                f"Cannot listen for DICOM on port {options.port}: {exc.strerror or exc}"
            ) from exc
        log.info(
            'DICOM server "%s" listening on port %d (%d transfer syntaxes accepted for storage)',
            options.aet,
            self.port,
            len(options.transfer_syntaxes),
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
        if self._options.unknown_sop_classes and self._options.transfer_syntaxes:
            self._accept_unknown_sop_classes(assoc)

    def _accept_unknown_sop_classes(self, assoc: Association) -> None:
        """Support, for this association, the SOP classes proposed that pynetdicom does not
        know (private ones included), as storage ("promiscuous mode")."""
        request = assoc.requestor.primitive
        proposed = request.presentation_context_definition_list if request is not None else []
        unknown = sorted(
            {str(cx.abstract_syntax) for cx in proposed if _is_unknown(str(cx.abstract_syntax))}
        )
        if unknown:
            extra = [_storage_context(uid, self._options) for uid in unknown]
            assoc.acceptor.supported_contexts = assoc.acceptor.supported_contexts + extra

    def _on_established(self, event: Event) -> None:
        assoc = event.assoc
        log.debug("Association from %s established", Peer.of(assoc))
        if not self._options.unknown_sop_classes:
            return
        # Route the C-STORE requests of the unknown SOP classes accepted to the storage
        # service, as SOP Class Common Extended Negotiation would (PS3.7 D.3.3.6).
        for context in assoc.accepted_contexts:
            uid = context.abstract_syntax
            if uid is not None and _is_unknown(uid):
                item = SOPClassCommonExtendedNegotiation()
                item.sop_class_uid = uid
                item.service_class_uid = STORAGE_SERVICE_CLASS
                assoc.acceptor._common_ext[uid] = item
