"""DICOM storage commitment, Push Model (PS3.4 annex J), as Orthanc 1.10 does it.

SCP: a modality declared in `DicomModalities` (and allowed `N-ACTION`) asks whether Pharos
holds some instances; once the N-ACTION is answered, each one is checked in the index (stored
with the same SOP class: success; not stored: 0112H "no such object instance"; stored with
another SOP class: 0119H "class/instance conflict") and the report goes back in an
N-EVENT-REPORT, on a new association to the modality, from the AE title it called.

SCU: `POST /modalities/{id}/storage-commitment` (or `"StorageCommitment": true` on a store)
sends an N-ACTION and keeps a pending report; the peer's N-EVENT-REPORT, on that association
or on a new one to our DICOM server, completes it (`GET /storage-commitment/{id}`). When every
instance was committed, `POST /storage-commitment/{id}/remove` deletes them here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pharos.dicom.storage_commitment import (
    CLASS_INSTANCE_CONFLICT,
    EVENT_FAILURES,
    EVENT_SUCCESS,
    NO_SUCH_OBJECT_INSTANCE,
    CommitmentFormatError,
    Failure,
    Reference,
    parse_report,
    parse_request,
    report_dataset,
    request_dataset,
)
from pharos.index.base import Index
from pharos.model.errors import ErrorCode, PharosError, unknown_resource
from pharos.services.commitment_reports import CommitmentReport, CommitmentReports, completed
from pharos.services.deletion import DeletionService
from pharos.services.dicom_client import Association, DicomClient
from pharos.services.dicom_retrieve import RetrieveService, StoredInstance
from pharos.services.modalities import Modality
from pharos.services.remote_modalities import ModalityRegistry
from pharos.services.remote_requests import json_object, optional_timeout

log = logging.getLogger(__name__)

# N-EVENT-REPORT statuses answered to a peer's report (PS3.7 10.1.1.1.8)
SUCCESS = 0x0000
NO_SUCH_EVENT_TYPE = 0x0113
INVALID_ARGUMENT_VALUE = 0x0115

_UID = re.compile(r"^[0-9][0-9.]{0,63}$")


def references_of(instances: Sequence[StoredInstance]) -> list[Reference]:
    return [Reference(i.sop_class_uid, i.sop_instance_uid) for i in instances]


class StorageCommitmentService:
    def __init__(
        self,
        registry: ModalityRegistry,
        client: DicomClient,
        index: Index,
        retrieve: RetrieveService,
        deletion: DeletionService,
        dicom_aet: str,  # DicomAet
        scu_timeout: int = 10,  # DicomScuTimeout
        reports_size: int = 100,  # StorageCommitmentReportsSize
    ):
        self._registry = registry
        self._client = client
        self._index = index
        self._retrieve = retrieve
        self._deletion = deletion
        self._dicom_aet = dicom_aet
        self._scu_timeout = scu_timeout
        self.reports = CommitmentReports(max(0, reports_size))
        # The SCP's reports go out after the N-ACTION is answered, from these threads.
        self._answers = ThreadPoolExecutor(2, thread_name_prefix="storage-commitment")

    def close(self) -> None:
        self._answers.shutdown(wait=True, cancel_futures=True)

    def _association(
        self, modality: Modality, local_aet: str | None = None, timeout: int | None = None
    ) -> Association:
        return Association.to(modality, self._dicom_aet, self._scu_timeout, local_aet, timeout)

    # -- SCU --------------------------------------------------------------------------------

    def request(self, name: str, raw: bytes) -> dict[str, str]:
        """POST /modalities/{id}/storage-commitment: body {DicomInstances, Resources,
        Timeout}. Nothing is sent when the body is wrong."""
        body = json_object(raw)
        if "Resources" not in body and "DicomInstances" not in body:
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT,
                'Empty storage commitment request, one of these fields is mandatory: "Resources" '
                'or "DicomInstances"',
            )
        references = _dicom_instances(body.get("DicomInstances", []))
        references = self._resources(body.get("Resources", [])) + references
        timeout = optional_timeout(body)
        modality = self._registry.require(name)
        uid = self.commit(self._association(modality, timeout=timeout), references)
        return {"ID": uid, "Path": f"/storage-commitment/{uid}"}

    def _resources(self, value: Any) -> list[Reference]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT, 'The "Resources" field must be a list of resource IDs'
            )
        refs = []
        for public_id in value:
            ref = self._index.lookup(public_id)
            if ref is None:
                raise unknown_resource(public_id)
            refs.append(ref)
        return references_of(self._retrieve.stored(refs))

    def commit(
        self,
        association: Association,
        references: Sequence[Reference],
        transaction_uid: str | None = None,
    ) -> str:
        """Ask a modality to commit these instances: a pending report, then the N-ACTION
        (the report is dropped if the N-ACTION fails). The transaction UID."""
        uid = transaction_uid or generate_uid(prefix=None)  # "2.25." + a UUID, as Orthanc
        modality = association.modality
        if not references:
            log.warning("Storage commitment request to %s without any instance", modality.aet)
        # Pending before the request: the report may come before send_n_action returns.
        self.reports.put(uid, CommitmentReport(modality.aet))
        try:
            self._client.request_commitment(
                association, request_dataset(uid, references), self.received
            )
        except PharosError as exc:
            self.reports.discard(uid)
            log.warning(
                'Storage commitment request to "%s" (%s) failed: %s', modality.name, uid, exc
            )
            raise
        log.info(
            'Storage commitment requested from "%s" for %d instances (transaction %s)',
            modality.name,
            len(references),
            uid,
        )
        return uid

    def received(self, calling_aet: str, event_type: int, information: Dataset | None) -> int:
        """A peer's N-EVENT-REPORT (on our server, or on the association of the request):
        the report of its transaction; the status to answer."""
        if event_type not in (EVENT_SUCCESS, EVENT_FAILURES):
            log.warning(
                'Storage commitment report from "%s": unknown event type %d',
                calling_aet,
                event_type,
            )
            return NO_SUCH_EVENT_TYPE
        try:
            uid, successes, failures = parse_report(information)
        except CommitmentFormatError as exc:
            log.warning('Storage commitment report from "%s" refused: %s', calling_aet, exc)
            return INVALID_ARGUMENT_VALUE
        if self.reports.get(uid) is None:
            # Kept all the same, as Orthanc: it may be the answer to a report forgotten.
            log.warning(
                'Storage commitment report from "%s" for a transaction Pharos does not know: %s',
                calling_aet,
                uid,
            )
        self.reports.put(uid, completed(calling_aet, successes, failures))
        log.info(
            'Storage commitment report from "%s" (transaction %s): %d committed, %d failed',
            calling_aet,
            uid,
            len(successes),
            len(failures),
        )
        return SUCCESS

    def report(self, transaction_uid: str) -> dict[str, Any]:
        """GET /storage-commitment/{id}."""
        return self._require(transaction_uid).to_json()

    def remove(self, transaction_uid: str) -> dict[str, Any]:
        """POST /storage-commitment/{id}/remove: delete the instances the peer committed,
        only when it committed all of them."""
        report = self._require(transaction_uid)
        if report.status != "Success":
            raise PharosError(
                ErrorCode.BAD_SEQUENCE_OF_CALLS,
                "Cannot remove DICOM instances after failure in storage commitment "
                f"transaction: {transaction_uid} (status {report.status})",
            )
        uids = [ref.sop_instance_uid for ref in report.successes]
        removed = 0
        for instance in self._retrieve.by_sop_instance_uids(uids):
            try:
                self._deletion.delete(instance.ref)
            except PharosError as exc:
                if exc.code is not ErrorCode.UNKNOWN_RESOURCE:
                    raise
                continue  # deleted meanwhile
            removed += 1
        log.info(
            "Storage commitment transaction %s: %d committed instances removed",
            transaction_uid,
            removed,
        )
        return {}

    def _require(self, transaction_uid: str) -> CommitmentReport:
        report = self.reports.get(transaction_uid)
        if report is None:
            raise PharosError(
                ErrorCode.INEXISTENT_ITEM,
                f"No storage commitment transaction with UID: {transaction_uid}",
            )
        return report

    # -- SCP --------------------------------------------------------------------------------

    def requested(self, calling_aet: str, called_aet: str, information: Dataset | None) -> str:
        """A modality's N-ACTION: checked now (CommitmentFormatError for a bad data set,
        PharosError when the modality is not declared), answered later by an N-EVENT-REPORT.
        The transaction UID."""
        uid, references = parse_request(information)
        modalities = self._registry.snapshot().by_aet(calling_aet)
        if not modalities:
            raise PharosError(
                ErrorCode.INEXISTENT_ITEM,
                f'Unknown remote modality for storage commitment SCP: "{calling_aet}"',
            )
        modality = modalities[0]
        log.info(
            'Storage commitment request from "%s" for %d instances (transaction %s)',
            calling_aet,
            len(references),
            uid,
        )
        self._answers.submit(self._answer, modality, called_aet, uid, references)
        return uid

    def check(self, references: Sequence[Reference]) -> tuple[list[Reference], list[Failure]]:
        """Which of these instances are stored here with their SOP class."""
        classes: dict[str, set[str]] = {}
        for instance in self._retrieve.by_sop_instance_uids(
            ref.sop_instance_uid for ref in references
        ):
            classes.setdefault(instance.sop_instance_uid, set()).add(instance.sop_class_uid)
        successes: list[Reference] = []
        failures: list[Failure] = []
        for ref in references:
            stored = classes.get(ref.sop_instance_uid)
            if not stored:
                failures.append(Failure(ref, NO_SUCH_OBJECT_INSTANCE))
            elif ref.sop_class_uid not in stored:
                failures.append(Failure(ref, CLASS_INSTANCE_CONFLICT))
            else:
                successes.append(ref)
        return successes, failures

    def _answer(
        self, modality: Modality, called_aet: str, uid: str, references: list[Reference]
    ) -> None:
        try:
            successes, failures = self.check(references)
            event_type, information = report_dataset(uid, successes, failures)
            # From the AE title the modality called, as Orthanc.
            association = self._association(modality, called_aet or self._dicom_aet)
            self._client.report_commitment(association, event_type, information)
        except PharosError as exc:
            log.error(
                'Storage commitment report to "%s" (transaction %s) not sent: %s',
                modality.name,
                uid,
                exc,
            )
            return
        except Exception:
            log.exception('Storage commitment report to "%s" (transaction %s)', modality.name, uid)
            return
        log.info(
            'Storage commitment report sent to "%s" (transaction %s): %d committed, %d failed',
            modality.name,
            uid,
            len(successes),
            len(failures),
        )


def _dicom_instances(value: Any) -> list[Reference]:
    """The `DicomInstances` field: {SOPClassUID, SOPInstanceUID} objects, or [class, instance]
    pairs (Orthanc's shorthand)."""
    if not isinstance(value, list):
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT,
            'The "DicomInstances" field must provide an array of DICOM instances',
        )
    references = []
    for item in value:
        if isinstance(item, dict):
            pair = (item.get("SOPClassUID"), item.get("SOPInstanceUID"))
        elif isinstance(item, list) and len(item) == 2:
            pair = (item[0], item[1])
        else:
            pair = (None, None)
        sop_class, sop_instance = pair
        if not isinstance(sop_class, str) or not isinstance(sop_instance, str):
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT,
                'Each of "DicomInstances" must be {"SOPClassUID": ..., "SOPInstanceUID": ...} '
                f"or [SOP class UID, SOP instance UID], not {item!r}",
            )
        reference = Reference(sop_class.strip(), sop_instance.strip())
        for uid in (reference.sop_class_uid, reference.sop_instance_uid):
            if not _UID.match(uid):
                raise PharosError(ErrorCode.BAD_FILE_FORMAT, f"Not a DICOM UID: {uid!r}")
        references.append(reference)
    return references
