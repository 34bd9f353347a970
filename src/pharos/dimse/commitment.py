"""The SCP side of storage commitment: a peer's N-ACTION (a request to commit instances) and
N-EVENT-REPORT (the report of a request Pharos made), checked by `DicomAccess` as every other
request (`AllowNAction`, `AllowEventReport`, or `AllowStorageCommitment` for both) and handed
to `StorageCommitmentService`.
"""

from __future__ import annotations

import logging
from typing import Any

from pynetdicom import evt
from pynetdicom.events import Event

from pharos.dicom.storage_commitment import (
    REQUEST_STORAGE_COMMITMENT,
    STORAGE_COMMITMENT_PUSH_MODEL,
    CommitmentFormatError,
)
from pharos.dimse.handlers import NOT_AUTHORIZED, SUCCESS, Peer, refused
from pharos.model.errors import PharosError
from pharos.services.dicom_access import DicomAccess
from pharos.services.modalities import DicomRequest
from pharos.services.storage_commitment import StorageCommitmentService

log = logging.getLogger(__name__)

# N-ACTION and N-EVENT-REPORT statuses (PS3.7 10.1.4.1.10, 10.1.1.1.8)
PROCESSING_FAILURE = 0x0110
NO_SUCH_SOP_CLASS = 0x0118
INVALID_ARGUMENT_VALUE = 0x0115
NO_SUCH_ACTION = 0x0123

Answer = tuple[int, None]


class CommitmentHandlers:
    def __init__(self, access: DicomAccess, commitment: StorageCommitmentService):
        self._access = access
        self._commitment = commitment

    def bindings(self) -> list[tuple[Any, Any]]:
        return [
            (evt.EVT_N_ACTION, self.on_action),
            (evt.EVT_N_EVENT_REPORT, self.on_event_report),
        ]

    def _refused(self, event: Event, request: DicomRequest) -> bool:
        return refused(self._access, event, request)

    def on_action(self, event: Event) -> Answer:
        if self._refused(event, DicomRequest.N_ACTION):
            return NOT_AUTHORIZED, None  # not sent: the association is aborted
        peer = Peer.of(event.assoc)
        request: Any = event.request
        if str(request.RequestedSOPClassUID) != STORAGE_COMMITMENT_PUSH_MODEL:
            return NO_SUCH_SOP_CLASS, None
        if request.ActionTypeID != REQUEST_STORAGE_COMMITMENT:
            log.warning("N-ACTION from %s: unknown action type %s", peer, request.ActionTypeID)
            return NO_SUCH_ACTION, None
        try:
            self._commitment.requested(peer.aet, peer.called_aet, event.action_information)
        except CommitmentFormatError as exc:
            log.warning("Storage commitment request from %s refused: %s", peer, exc)
            return INVALID_ARGUMENT_VALUE, None
        except PharosError as exc:
            log.warning("Storage commitment request from %s refused: %s", peer, exc)
            return PROCESSING_FAILURE, None
        except Exception as exc:  # an undecodable data set, among others
            log.warning("Storage commitment request from %s failed: %s", peer, exc)
            return PROCESSING_FAILURE, None
        return SUCCESS, None

    def on_event_report(self, event: Event) -> Answer:
        if self._refused(event, DicomRequest.N_EVENT_REPORT):
            return NOT_AUTHORIZED, None  # not sent: the association is aborted
        peer = Peer.of(event.assoc)
        request: Any = event.request
        if str(request.AffectedSOPClassUID) != STORAGE_COMMITMENT_PUSH_MODEL:
            return NO_SUCH_SOP_CLASS, None
        try:
            information = event.event_information
        except Exception as exc:
            log.warning("Storage commitment report from %s undecodable: %s", peer, exc)
            return INVALID_ARGUMENT_VALUE, None
        return self._commitment.received(peer.aet, int(request.EventTypeID), information), None
