"""The DICOM client (SCU) on pynetdicom: C-ECHO, C-STORE, C-FIND, C-MOVE and C-GET to remote
modalities, and the two requests of storage commitment (N-ACTION as its SCU, N-EVENT-REPORT as
its SCP), as `DicomClient` promises them to the services.

Each operation runs on one association: the idle one kept from the previous operation when it
fits (`DicomAssociationCloseDelay`), else a new one. An idle association the peer closed
meanwhile is noticed at the first request, before anything was done, and the operation starts
again on a new association.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydicom.dataset import Dataset
from pynetdicom import StoragePresentationContexts, build_context, build_role, evt
from pynetdicom.association import Association as PynAssociation
from pynetdicom.events import Event
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import PresentationContext
from pynetdicom.status import code_to_category

from pharos.dicom.storage_commitment import (
    REQUEST_STORAGE_COMMITMENT,
    STORAGE_COMMITMENT_INSTANCE,
    STORAGE_COMMITMENT_PUSH_MODEL,
)
from pharos.dicom.transfer_syntaxes import (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    UNCOMPRESSED,
)
from pharos.dimse.scu_association import (
    AssociationPool,
    ContextKey,
    Diagnostics,
    context_keys,
    describe,
    diagnostics,
    open_association,
)
from pharos.dimse.scu_contexts import CannotSend, get_contexts, prepare, storage_contexts
from pharos.dimse.tls import DicomTls
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.dicom_client import (
    Association,
    FailedInstance,
    FindRequest,
    MoveRequest,
    ReceivedInstance,
    ReceivedReport,
    RetrieveReport,
    StoreReport,
    StoreRequest,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

VERIFICATION = "1.2.840.10008.1.1"
# (FIND, MOVE, GET) of each query/retrieve information model
PATIENT_ROOT = tuple(f"1.2.840.10008.5.1.4.1.2.1.{n}" for n in (1, 2, 3))
STUDY_ROOT = tuple(f"1.2.840.10008.5.1.4.1.2.2.{n}" for n in (1, 2, 3))
# The storage SOP classes a C-GET can receive: pynetdicom's selection of the common ones (120,
# leaving room for the retrieve model within the 128 contexts), as dcmtk's getscu and Orthanc
# propose a selection.
GET_STORAGE_CLASSES = tuple(str(cx.abstract_syntax) for cx in StoragePresentationContexts)

# C-STORE statuses answered to the sub-operations of a C-GET when the callback cannot decide
_CANNOT_UNDERSTAND = 0xC000
_OUT_OF_RESOURCES = 0xA700
_PROCESSING_FAILURE = 0x0110  # N-EVENT-REPORT status when the callback fails
# Storage commitment goes in the little endian syntaxes, as Orthanc proposes it.
_COMMITMENT_SYNTAXES = [EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN]


class _Lost(Exception):
    """The association failed under a request; `first` when it was the first request of the
    operation, nothing done yet (a stale idle association: worth a new one)."""

    def __init__(self, error: PharosError, first: bool):
        super().__init__(str(error))
        self.error = error
        self.first = first


class ScuClient:
    """`DicomClient` on pynetdicom. Thread-safe; `close()` releases the idle association."""

    def __init__(
        self,
        maximum_pdu_length: int = 131072,
        close_delay: float = 5.0,
        tls: DicomTls | None = None,
    ):
        self._maximum_pdu_length = maximum_pdu_length
        self._tls = tls or DicomTls()  # for the modalities with UseDicomTls
        self._pool = AssociationPool(close_delay)
        self._ids = itertools.count(1)
        self._ids_lock = threading.Lock()

    def close(self) -> None:
        self._pool.close()

    # -- operations -------------------------------------------------------------------------

    def echo(self, association: Association) -> None:
        def run(assoc: PynAssociation, notes: Diagnostics) -> None:
            status = self._send(
                association, assoc, notes, "C-ECHO", True,
                lambda: assoc.send_c_echo(msg_id=self._message_id()),
            )  # fmt: skip
            code = int(status.Status)
            if code != 0:
                raise _failure(association, "C-ECHO", status)

        self._run(association, [build_context(VERIFICATION)], [], run)

    def store(self, association: Association, request: StoreRequest) -> StoreReport:
        if not request.instances:
            return StoreReport()
        plan = storage_contexts(
            ((i.sop_class_uid, i.transfer_syntax) for i in request.instances),
            request.allow_transcoding,
        )
        if plan.left_out:
            log.warning(
                "C-STORE to %s: more than 128 presentation contexts needed; the instances of "
                "%d (SOP class, transfer syntax) pairs cannot be sent",
                describe(association),
                len(plan.left_out),
            )

        def run(assoc: PynAssociation, notes: Diagnostics) -> StoreReport:
            report = StoreReport()
            answered = False
            for instance in request.instances:
                uid = instance.sop_instance_uid
                if (instance.sop_class_uid, instance.transfer_syntax) in plan.left_out:
                    reason = "no presentation context left for it (128 at most per association)"
                    report.failed.append(FailedInstance(uid, reason))
                    continue
                try:
                    dataset = prepare(
                        request.load(instance),
                        instance.transfer_syntax,
                        assoc.accepted_contexts,
                        request.allow_transcoding,
                    )
                except (CannotSend, PharosError) as exc:
                    report.failed.append(FailedInstance(uid, str(exc)))
                    continue

                def send(ds: Dataset = dataset) -> Dataset:
                    return assoc.send_c_store(
                        ds,
                        msg_id=self._message_id(),
                        originator_aet=request.move_originator_aet,
                        originator_id=request.move_originator_id,
                    )

                try:
                    status = self._send(
                        association, assoc, notes, "C-STORE", not answered, send, report.sent
                    )
                except (ValueError, AttributeError) as exc:  # not encodable as it is
                    report.failed.append(FailedInstance(uid, f"cannot be encoded: {exc}"))
                    continue
                answered = True
                code = int(status.Status)
                if code_to_category(code) in ("Success", "Warning"):
                    report.sent += 1
                else:
                    failure = _failure(association, "C-STORE", status)
                    report.failed.append(FailedInstance(uid, str(failure)))
            return report

        report = self._run(association, plan.contexts, [], run)
        log.info(
            "C-STORE to %s: %d instances sent, %d failed",
            describe(association),
            report.sent,
            len(report.failed),
        )
        return report

    def find(self, association: Association, request: FindRequest) -> list[Dataset]:
        study_root = request.study_root and request.level is not Level.PATIENT
        model = (STUDY_ROOT if study_root else PATIENT_ROOT)[0]

        def run(assoc: PynAssociation, notes: Diagnostics) -> list[Dataset]:
            answers: list[Dataset] = []
            responses = self._responses(
                association, assoc, notes, "C-FIND",
                lambda: assoc.send_c_find(request.identifier, model, msg_id=self._message_id()),
            )  # fmt: skip
            for status, identifier in responses:
                category = code_to_category(int(status.Status))
                if category == "Pending":
                    if identifier is not None:
                        answers.append(identifier)
                    continue
                if category in ("Success", "Warning", "Cancel"):  # Cancel: matching ended
                    return answers
                raise _failure(association, "C-FIND", status)
            return answers

        return self._run(association, [_model_context(model)], [], run)

    def move(self, association: Association, request: MoveRequest) -> RetrieveReport:
        model = _model(request.level)[1]

        def run(assoc: PynAssociation, notes: Diagnostics) -> RetrieveReport:
            report = RetrieveReport()
            for index, identifier in enumerate(request.identifiers):
                responses = self._responses(
                    association, assoc, notes, "C-MOVE",
                    lambda ds=identifier: assoc.send_c_move(  # type: ignore[misc]
                        ds, request.target_aet, model, msg_id=self._message_id()
                    ),
                    first=index == 0,
                )  # fmt: skip
                _retrieve(association, "C-MOVE", responses, report)
            return report

        report = self._run(association, [_model_context(model)], [], run)
        log.info(
            'C-MOVE with %s to "%s": %d completed, %d failed, %d warnings',
            describe(association),
            request.target_aet,
            report.completed,
            report.failed,
            report.warning,
        )
        return report

    def get(
        self, association: Association, request: MoveRequest, received: ReceivedInstance
    ) -> RetrieveReport:
        model = _model(request.level)[2]
        contexts, roles = get_contexts(model, GET_STORAGE_CLASSES)

        def on_store(event: Event) -> int:
            try:
                dataset = event.dataset
                dataset.file_meta = event.file_meta
                syntax = str(event.file_meta.TransferSyntaxUID)
            except Exception as exc:
                log.warning("C-GET with %s: undecodable instance: %s", describe(association), exc)
                return _CANNOT_UNDERSTAND
            try:
                return int(received(dataset, syntax))
            except Exception:
                log.exception("C-GET with %s: the received instance failed", describe(association))
                return _OUT_OF_RESOURCES

        def run(assoc: PynAssociation, notes: Diagnostics) -> RetrieveReport:
            report = RetrieveReport()
            assoc.bind(evt.EVT_C_STORE, on_store)
            try:
                for index, identifier in enumerate(request.identifiers):
                    responses = self._responses(
                        association, assoc, notes, "C-GET",
                        lambda ds=identifier: assoc.send_c_get(  # type: ignore[misc]
                            ds, model, msg_id=self._message_id()
                        ),
                        first=index == 0,
                    )  # fmt: skip
                    _retrieve(association, "C-GET", responses, report)
            finally:
                assoc.unbind(evt.EVT_C_STORE, on_store)
            return report

        report = self._run(association, contexts, roles, run)
        log.info(
            "C-GET with %s: %d completed, %d failed, %d warnings",
            describe(association),
            report.completed,
            report.failed,
            report.warning,
        )
        return report

    def request_commitment(
        self, association: Association, information: Dataset, received: ReceivedReport
    ) -> None:
        def on_report(event: Event) -> tuple[int, None]:
            peer = event.assoc.acceptor.ae_title
            try:
                request: Any = event.request
                dataset = event.event_information
                return int(received(peer, int(request.EventTypeID), dataset)), None
            except Exception:
                log.exception("Storage commitment report from %s failed", describe(association))
                return _PROCESSING_FAILURE, None

        def run(assoc: PynAssociation, notes: Diagnostics) -> None:
            # Bound for as long as the association lives (the pool may keep it idle): a peer
            # may answer on it, whenever it is ready.
            assoc.bind(evt.EVT_N_EVENT_REPORT, on_report)
            self._commitment_message(
                association, assoc, notes, "N-ACTION",
                lambda: assoc.send_n_action(
                    information,
                    REQUEST_STORAGE_COMMITMENT,
                    STORAGE_COMMITMENT_PUSH_MODEL,
                    STORAGE_COMMITMENT_INSTANCE,
                    msg_id=self._message_id(),
                )[0],
            )  # fmt: skip

        context = build_context(STORAGE_COMMITMENT_PUSH_MODEL, _COMMITMENT_SYNTAXES)
        self._run(association, [context], [], _accepted(association, "N-ACTION", run))

    def report_commitment(
        self, association: Association, event_type: int, information: Dataset
    ) -> None:
        def run(assoc: PynAssociation, notes: Diagnostics) -> None:
            self._commitment_message(
                association, assoc, notes, "N-EVENT-REPORT",
                lambda: assoc.send_n_event_report(
                    information,
                    event_type,
                    STORAGE_COMMITMENT_PUSH_MODEL,
                    STORAGE_COMMITMENT_INSTANCE,
                    msg_id=self._message_id(),
                )[0],
            )  # fmt: skip

        # The requester of the association sending a report proposes the SCP role
        # (PS3.4 J.3.3), as Orthanc does.
        context = build_context(STORAGE_COMMITMENT_PUSH_MODEL, _COMMITMENT_SYNTAXES)
        context.scu_role = False
        context.scp_role = True
        role = build_role(STORAGE_COMMITMENT_PUSH_MODEL, scu_role=False, scp_role=True)
        self._run(association, [context], [role], _accepted(association, "N-EVENT-REPORT", run))

    def _commitment_message(
        self,
        association: Association,
        assoc: PynAssociation,
        notes: Diagnostics,
        what: str,
        send: Callable[[], Dataset],
    ) -> None:
        """Send a storage commitment N-ACTION or N-EVENT-REPORT; a failure status raises."""
        status = self._send(association, assoc, notes, what, True, send)
        if int(status.Status) != 0:
            raise _failure(association, f"Storage commitment {what}", status)

    # -- plumbing ---------------------------------------------------------------------------

    def _run(
        self,
        target: Association,
        contexts: Sequence[PresentationContext],
        roles: Sequence[SCP_SCU_RoleSelectionNegotiation],
        operation: Callable[[PynAssociation, Diagnostics], T],
    ) -> T:
        """`operation` on the idle association if it fits, else (or if it turns out to be
        gone at the first request) on a new one."""
        key = (target.modality, target.local_aet, target.timeout, self._maximum_pdu_length)
        with diagnostics() as notes:
            taken = self._pool.take(key, contexts)
            if taken is not None:
                assoc, proposed = taken
                try:
                    return self._finish(key, proposed, assoc, notes, operation)
                except _Lost as lost:
                    if not lost.first:
                        raise lost.error from None
                    log.debug("The idle association with %s was gone", describe(target))
            assoc = open_association(
                target, contexts, roles, self._maximum_pdu_length, notes, self._tls
            )
            try:
                return self._finish(key, context_keys(contexts), assoc, notes, operation)
            except _Lost as lost:
                raise lost.error from None

    def _finish(
        self,
        key: tuple[object, ...],
        proposed: frozenset[ContextKey],
        assoc: PynAssociation,
        notes: Diagnostics,
        operation: Callable[[PynAssociation, Diagnostics], T],
    ) -> T:
        try:
            result = operation(assoc, notes)
        except (PharosError, _Lost):
            self._pool.give_back(key, proposed, assoc)  # kept only if still established
            raise
        except BaseException:
            assoc.abort()
            raise
        self._pool.give_back(key, proposed, assoc)
        return result

    def _send(
        self,
        target: Association,
        assoc: PynAssociation,
        notes: Diagnostics,
        what: str,
        first: bool,
        request: Callable[[], Dataset],
        done: int | None = None,
    ) -> Dataset:
        """The status of a request that has one answer (`_Lost` if there is none)."""
        try:
            status = request()
        except RuntimeError:  # "The association with a peer SCP must be established ..."
            error = notes.error(target, f"{what} failed", assoc, "association lost")
            raise _Lost(error, first) from None
        if "Status" not in status:
            detail = "no response"
            if done is not None:
                detail += f" ({done} instances sent before)"
            raise _Lost(notes.error(target, f"{what} failed", assoc, detail), first)
        return status

    def _responses(
        self,
        target: Association,
        assoc: PynAssociation,
        notes: Diagnostics,
        what: str,
        request: Callable[[], object],
        first: bool = True,
    ) -> list[tuple[Dataset, Dataset | None]]:
        """The responses of a request answered several times, checked (`_Lost` if they stop
        before the final one)."""
        answers: list[tuple[Dataset, Dataset | None]] = []
        try:
            for status, identifier in request():  # type: ignore[attr-defined]
                if "Status" not in status:
                    raise _Lost(
                        notes.error(target, f"{what} failed", assoc, "no response"),
                        first and not answers,
                    )
                answers.append((status, identifier))
        except RuntimeError:
            raise _Lost(
                notes.error(target, f"{what} failed", assoc, "association lost"),
                first and not answers,
            ) from None
        except ValueError as exc:  # no accepted context for the model
            raise PharosError(
                ErrorCode.NETWORK_PROTOCOL, f"{what} with {describe(target)} impossible: {exc}"
            ) from None
        return answers

    def _message_id(self) -> int:
        with self._ids_lock:
            return next(self._ids) % 65535 + 1


def _accepted(
    target: Association, what: str, operation: Callable[[PynAssociation, Diagnostics], None]
) -> Callable[[PynAssociation, Diagnostics], None]:
    """`operation`, unless the peer refused the Storage Commitment context."""

    def run(assoc: PynAssociation, notes: Diagnostics) -> None:
        if not any(
            cx.abstract_syntax == STORAGE_COMMITMENT_PUSH_MODEL for cx in assoc.accepted_contexts
        ):
            raise PharosError(
                ErrorCode.NETWORK_PROTOCOL,
                f"{what} with {describe(target)} impossible: the peer does not accept the "
                "Storage Commitment Push Model",
            )
        operation(assoc, notes)

    return run


def _model(level: Level) -> tuple[str, ...]:
    """The information model of a retrieve at `level`: Patient Root for patients, Study Root
    otherwise (as Orthanc)."""
    return PATIENT_ROOT if level is Level.PATIENT else STUDY_ROOT


def _model_context(model: str) -> PresentationContext:
    return build_context(model, list(UNCOMPRESSED))


def _failure(target: Association, what: str, status: Dataset) -> PharosError:
    code = int(status.Status)
    text = f"{what} with {describe(target)} failed with status 0x{code:04X}"
    comment = status.get("ErrorComment")
    if comment:
        text += f": {comment}"
    return PharosError(ErrorCode.NETWORK_PROTOCOL, text)


def _retrieve(
    target: Association,
    what: str,
    responses: list[tuple[Dataset, Dataset | None]],
    report: RetrieveReport,
) -> None:
    """Adds the counts of the final response to `report`; a failure status is an error."""
    if not responses:
        return
    final, _ = responses[-1]
    report.completed += int(final.get("NumberOfCompletedSuboperations", 0) or 0)
    report.failed += int(final.get("NumberOfFailedSuboperations", 0) or 0)
    report.warning += int(final.get("NumberOfWarningSuboperations", 0) or 0)
    category = code_to_category(int(final.Status))
    if category in ("Success", "Warning"):
        return
    error = _failure(target, what, final)
    raise PharosError(
        error.code,
        f"{error.details} ({report.completed} completed, {report.failed} failed, "
        f"{report.warning} warnings)",
    )
