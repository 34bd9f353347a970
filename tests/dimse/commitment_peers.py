"""A pynetdicom modality doing storage commitment with Pharos, both ways (dcmtk has no tool for
it): as SCU it sends N-ACTIONs and receives the reports on its own SCP; as SCP it answers
Pharos's N-ACTIONs with the reports a test decides, on a new association or on the same one."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.events import Event

from pharos.dicom.storage_commitment import (
    STORAGE_COMMITMENT_INSTANCE,
    STORAGE_COMMITMENT_PUSH_MODEL,
    Failure,
    Reference,
    parse_request,
    report_dataset,
    request_dataset,
)
from tests.conftest import free_port
from tests.dimse.peers import PHAROS_AET, UNCOMPRESSED

# What the peer reports about the instances Pharos asks it to commit.
Verdict = Callable[[list[Reference]], tuple[list[Reference], list[Failure]]]


def commit_all(references: list[Reference]) -> tuple[list[Reference], list[Failure]]:
    return references, []


@dataclass(frozen=True)
class Report:
    calling_aet: str  # who opened the association it came on
    event_type: int
    transaction_uid: str
    information: Dataset


class CommitmentPeer:
    def __init__(
        self,
        aet: str = "MODALITY",
        verdict: Verdict = commit_all,
        same_association: bool = False,
    ):
        self.aet = aet
        self.port = free_port()
        self.pharos_port = 0  # Pharos's DicomPort, set once it is started
        self.verdict = verdict
        self.same_association = same_association
        self.reports: queue.Queue[Report] = queue.Queue()
        self.requests: list[tuple[str, list[Reference]]] = []  # Pharos's N-ACTIONs
        self.ae = AE(ae_title=aet)
        self.ae.add_supported_context(STORAGE_COMMITMENT_PUSH_MODEL, UNCOMPRESSED)
        self.ae.add_requested_context(STORAGE_COMMITMENT_PUSH_MODEL, UNCOMPRESSED)
        handlers: list[Any] = [
            (evt.EVT_N_EVENT_REPORT, self._on_report),
            (evt.EVT_N_ACTION, self._on_action),
        ]
        self.server = self.ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=handlers
        )

    def modality(self, **options: object) -> dict[str, object]:
        """Its `DicomModalities` entry."""
        return {"AET": self.aet, "Host": "127.0.0.1", "Port": self.port, **options}

    def close(self) -> None:
        self.server.shutdown()

    # -- as SCU -----------------------------------------------------------------------------

    def request(self, uid: str, references: list[Reference]) -> Dataset:
        """N-ACTION to Pharos; its status (empty when the association was aborted or refused)."""
        assoc = self.ae.associate("127.0.0.1", self.pharos_port, ae_title=PHAROS_AET)
        if not assoc.is_established:
            return Dataset()
        try:
            status, _ = assoc.send_n_action(
                request_dataset(uid, references),
                1,
                STORAGE_COMMITMENT_PUSH_MODEL,
                STORAGE_COMMITMENT_INSTANCE,
            )
        finally:
            if assoc.is_established:
                assoc.release()
        return status

    def _on_report(self, event: Event) -> tuple[int, None]:
        request: Any = event.request
        information = event.event_information
        self.reports.put(
            Report(
                event.assoc.requestor.ae_title,
                int(request.EventTypeID),
                str(information.TransactionUID),
                information,
            )
        )
        return 0x0000, None

    def report(self, timeout: float = 20.0) -> Report:
        return self.reports.get(timeout=timeout)

    # -- as SCP -----------------------------------------------------------------------------

    def _on_action(self, event: Event) -> tuple[int, None]:
        uid, references = parse_request(event.action_information)
        self.requests.append((uid, references))
        event_type, information = report_dataset(uid, *self.verdict(references))
        if self.same_association:
            assoc = event.assoc
            sent = threading.Event()

            def on_sent(sent_event: Event) -> None:
                if type(sent_event.message).__name__ == "N_ACTION_RSP":
                    sent.set()

            assoc.bind(evt.EVT_DIMSE_SENT, on_sent)

            def answer() -> None:  # once the N-ACTION response went
                if sent.wait(10):
                    assoc.send_n_event_report(
                        information,
                        event_type,
                        STORAGE_COMMITMENT_PUSH_MODEL,
                        STORAGE_COMMITMENT_INSTANCE,
                    )

            threading.Thread(target=answer, daemon=True).start()
        else:
            threading.Thread(
                target=self._report, args=(event_type, information), daemon=True
            ).start()
        return 0x0000, None

    def _report(self, event_type: int, information: Dataset) -> None:
        """The report on a new association to Pharos, as most modalities send it."""
        ae = AE(ae_title=self.aet)
        ae.add_requested_context(STORAGE_COMMITMENT_PUSH_MODEL, UNCOMPRESSED)
        assoc = ae.associate("127.0.0.1", self.pharos_port, ae_title=PHAROS_AET)
        if assoc.is_established:
            assoc.send_n_event_report(
                information, event_type, STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_INSTANCE
            )
            assoc.release()
