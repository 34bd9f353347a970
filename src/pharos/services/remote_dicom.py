"""The DICOM client side of the REST API (`/modalities/{id}/...`): C-ECHO, C-STORE, C-FIND,
C-MOVE and C-GET to remote modalities, through the `DicomClient` interface.

Each operation picks its calling AE title (`LocalAet`, else the modality's `LocalAet`, else
`DicomAet`) and timeout (`Timeout`, else the modality's, else `DicomScuTimeout`; 0 is none),
and is logged with its peer, count and outcome. The client raises `PharosError`
(NETWORK_PROTOCOL, TIMEOUT) when the peer cannot be reached or refuses.
C-STORE and C-MOVE also run as jobs (`services.dicom_jobs`) when asked `"Synchronous": false`
or `"Asynchronous": true`: the plans built here are what those jobs do, step by step. A store
with `"StorageCommitment": true` ends with a storage commitment request for the instances sent
(`services.storage_commitment`).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, generate_uid

from pharos.dicom.orthanc_json import TagFormat, dataset_to_json
from pharos.dicom.storage_commitment import Reference
from pharos.index.base import Index, Reception, ResourceRef
from pharos.model.errors import ErrorCode, PharosError, unknown_resource
from pharos.model.levels import Level
from pharos.plugins.manager import PluginManager
from pharos.services.dicom_client import (
    Association,
    DicomClient,
    FailedInstance,
    FindRequest,
    MoveRequest,
    StoreRequest,
)
from pharos.services.dicom_retrieve import RetrieveService, StoredInstance
from pharos.services.find_filters import filter_outgoing_find
from pharos.services.modalities import Modality, ModalityError, parse_modality
from pharos.services.options import ServiceOptions
from pharos.services.remote_find import (
    STUDY_INSTANCE_UID,
    build_identifier,
    legacy_query,
    legacy_query_is_too_wide,
    move_identifier,
    parse_query,
)
from pharos.services.remote_modalities import ModalityRegistry
from pharos.services.remote_requests import (
    RunMode,
    json_object,
    optional_bool,
    optional_string,
    optional_timeout,
    retrieve_keys,
    run_mode,
    store_body,
)
from pharos.services.storage_commitment import StorageCommitmentService, references_of
from pharos.services.store import StoreService

log = logging.getLogger(__name__)

# C-STORE statuses answered to the peer of a C-GET for the instances it sends
_SUCCESS, _CANNOT_UNDERSTAND, _OUT_OF_RESOURCES = 0x0000, 0xC000, 0xA700


@dataclass(frozen=True, slots=True)
class ScuSettings:
    dicom_aet: str  # DicomAet: our AE title by default
    scu_timeout: int = 10  # DicomScuTimeout
    echo_checks_find: bool = False  # DicomEchoChecksFind
    log_exported_resources: bool = False  # LogExportedResources: /exports lists what is sent


@dataclass(frozen=True, slots=True)
class StorePlan:
    """A C-STORE of local resources to a modality, as asked (run now, or as a job)."""

    association: Association
    resources: list[str]  # as given (any level): Orthanc's ParentResources
    instances: list[StoredInstance]
    permissive: bool  # failed instances do not fail the whole store
    move_originator_aet: str | None
    move_originator_id: int | None
    run: RunMode
    # StorageCommitment: the transaction asked of the peer once the instances are sent
    transaction_uid: str | None = None


def store_content(plan: StorePlan, count: int, failed: int) -> dict[str, Any]:
    """Orthanc's content of a DicomModalityStore job (and the answer of a synchronous one)."""
    content: dict[str, Any] = {
        "Description": "REST API",
        "FailedInstancesCount": failed,
        "InstancesCount": count,
        "LocalAet": plan.association.local_aet,
        "ParentResources": plan.resources,
        "RemoteAet": plan.association.modality.aet,
    }
    if plan.move_originator_id is not None:
        content["MoveOriginatorAET"] = plan.move_originator_aet
        content["MoveOriginatorID"] = plan.move_originator_id
    if plan.transaction_uid is not None:
        content["StorageCommitmentTransactionUID"] = plan.transaction_uid
    return content


@dataclass(frozen=True, slots=True)
class MovePlan:
    """C-MOVEs asked of a modality: one per set of keys, to `target_aet`."""

    association: Association
    level: Level
    keys: list[dict[int, str]]
    target_aet: str
    query: list[dict[str, Any]]  # Orthanc's `Query` of the job content
    run: RunMode

    def identifier(self, index: int) -> Dataset:
        return move_identifier(self.level, self.keys[index])


def move_content(plan: MovePlan) -> dict[str, Any]:
    """Orthanc's content of a DicomMoveScu job."""
    return {
        "Description": "REST API",
        "LocalAet": plan.association.local_aet,
        "Query": plan.query,
        "RemoteAet": plan.association.modality.aet,
        "TargetAet": plan.target_aet,
    }


def get_content(plan: MovePlan) -> dict[str, Any]:
    """Orthanc's content of a DicomGetScu job (Orthanc 1.12)."""
    content = move_content(plan)
    del content["TargetAet"]
    return content


class RemoteDicomService:
    def __init__(
        self,
        registry: ModalityRegistry,
        client: DicomClient,
        index: Index,
        retrieve: RetrieveService,
        store: StoreService,
        options: ServiceOptions,
        settings: ScuSettings,
        plugins: PluginManager | None = None,
        commitment: StorageCommitmentService | None = None,
    ):
        self.registry = registry
        self.client = client
        self._index = index
        self._retrieve = retrieve
        self._store = store
        self._options = options
        self.settings = settings
        self._plugins = plugins or PluginManager()
        self._commitment = commitment

    # -- shared -----------------------------------------------------------------------------

    @property
    def default_encoding(self) -> str:
        return self._options.default_encoding

    def association(
        self, modality: Modality, local_aet: str | None = None, timeout: int | None = None
    ) -> Association:
        settings = self.settings
        return Association.to(
            modality, settings.dicom_aet, settings.scu_timeout, local_aet, timeout
        )

    def association_of(self, modality: Modality, body: Mapping[str, Any]) -> Association:
        return self.association(modality, optional_string(body, "LocalAet"), optional_timeout(body))

    def find(self, association: Association, level: Level, identifier: Dataset) -> list[Dataset]:
        identifier = filter_outgoing_find(
            self._plugins, identifier, association.modality.name, self._options.default_encoding
        )
        request = FindRequest(level, identifier, study_root=level is not Level.PATIENT)
        peer = _peer(association)
        try:
            answers = self.client.find(association, request)
        except PharosError as exc:
            log.warning("C-FIND SCU to %s at the %s level failed: %s", peer, level.title, exc)
            raise
        log.info("C-FIND SCU to %s at the %s level: %d answers", peer, level.title, len(answers))
        return answers

    def move(
        self,
        association: Association,
        level: Level,
        identifiers: Sequence[Dataset],
        target_aet: str,
    ) -> None:
        peer = _peer(association)
        try:
            report = self.client.move(association, MoveRequest(level, identifiers, target_aet))
        except PharosError as exc:
            log.warning("C-MOVE SCU of %s to %s failed: %s", peer, target_aet, exc)
            raise
        log.info(
            "C-MOVE SCU of %s to %s (%d requests): %d completed, %d failed, %d warnings",
            peer,
            target_aet,
            len(identifiers),
            report.completed,
            report.failed,
            report.warning,
        )

    # -- C-ECHO -----------------------------------------------------------------------------

    def echo(self, name: str, raw: bytes) -> None:
        """POST /modalities/{id}/echo (body empty, or {Timeout, CheckFind})."""
        body = json_object(raw, empty_ok=True)
        self._echo(self.association_of(self.registry.require(name), body), body)

    def echo_unregistered(self, raw: bytes) -> None:
        """POST /tools/dicom-echo: C-ECHO to the modality described by the body (its object
        form, with `Timeout` and `CheckFind`), without registering it (Orthanc 1.8.1)."""
        body = json_object(raw)
        definition = {key: value for key, value in body.items() if key != "CheckFind"}
        try:
            modality, _ = parse_modality("dicom-echo", definition)
        except ModalityError as exc:
            raise PharosError(ErrorCode.BAD_FILE_FORMAT, str(exc)) from None
        self._echo(self.association(modality, timeout=optional_timeout(body)), body)

    def _echo(self, association: Association, body: Mapping[str, Any]) -> None:
        check_find = optional_bool(body, "CheckFind", self.settings.echo_checks_find)
        peer = _peer(association)
        try:
            self.client.echo(association)
            if check_find:
                # a study that cannot exist: only whether the peer accepts C-FIND matters
                keys = {STUDY_INSTANCE_UID: generate_uid()}
                identifier = build_identifier(
                    Level.STUDY,
                    keys,
                    normalized=False,
                    manufacturer=association.modality.manufacturer,
                    default_encoding=self._options.default_encoding,
                )
                self.client.find(association, FindRequest(Level.STUDY, identifier, True))
        except PharosError as exc:
            log.warning("C-ECHO SCU to %s failed: %s", peer, exc)
            raise
        log.info("C-ECHO SCU to %s succeeded%s", peer, " (with C-FIND)" if check_find else "")

    # -- C-STORE ----------------------------------------------------------------------------

    def store_plan(self, name: str, raw: bytes) -> StorePlan:
        """Reads the body of POST /modalities/{id}/store: what to send, to whom, how (404
        before anything is sent)."""
        modality = self.registry.require(name)
        resources, body = store_body(raw)
        commitment = optional_bool(body, "StorageCommitment", False)
        permissive = optional_bool(body, "Permissive", False)
        originator_id = body.get("MoveOriginatorID", 0)
        if isinstance(originator_id, bool) or not isinstance(originator_id, int):
            raise PharosError(ErrorCode.BAD_FILE_FORMAT, '"MoveOriginatorID" must be an integer')
        originator_aet = optional_string(body, "MoveOriginatorAet") or self.settings.dicom_aet
        association = self.association_of(modality, body)
        return StorePlan(
            association=association,
            resources=resources,
            instances=self._instances_of(resources),
            permissive=permissive,
            move_originator_aet=originator_aet if originator_id else None,
            move_originator_id=originator_id or None,
            run=run_mode(body),
            transaction_uid=generate_uid(prefix=None) if commitment else None,  # as Orthanc
        )

    def store(self, name: str, raw: bytes) -> dict[str, Any]:
        """POST /modalities/{id}/store, run now whatever the body asks."""
        return self.run_store(self.store_plan(name, raw))

    def run_store(self, plan: StorePlan) -> dict[str, Any]:
        """A store run synchronously: all over one association."""
        failed = self.send(plan, plan.instances)
        if failed and not plan.permissive:
            raise self.store_failure(plan, failed, len(plan.instances))
        refused = {f.sop_instance_uid for f in failed}
        sent = [i for i in plan.instances if i.sop_instance_uid not in refused]
        self.commit_sent(plan, references_of(sent))
        self.stored(plan)
        return store_content(plan, len(plan.instances), len(failed))

    def commit_sent(self, plan: StorePlan, references: Sequence[Reference]) -> None:
        """A store asked with StorageCommitment: the request for the instances sent."""
        if plan.transaction_uid is None:
            return
        if self._commitment is None:
            raise PharosError(ErrorCode.NOT_IMPLEMENTED, "Storage commitment is not available")
        self._commitment.commit(plan.association, references, plan.transaction_uid)

    def send(self, plan: StorePlan, instances: Sequence[StoredInstance]) -> list[FailedInstance]:
        """C-STORE some instances of a plan; the ones the peer refused."""
        if not instances:
            return []
        association = plan.association
        request = StoreRequest(
            instances=instances,
            load=self._retrieve.load,
            move_originator_aet=plan.move_originator_aet,
            move_originator_id=plan.move_originator_id,
            allow_transcoding=association.modality.allow_transcoding,
        )
        peer = _peer(association)
        try:
            report = self.client.store(association, request)
        except PharosError as exc:
            log.warning("C-STORE SCU to %s of %d instances failed: %s", peer, len(instances), exc)
            raise
        failed = report.failed
        log.info(
            "C-STORE SCU to %s: %d instances sent, %d failed",
            peer,
            len(instances) - len(failed),
            len(failed),
        )
        return failed

    @staticmethod
    def store_failure(plan: StorePlan, failed: list[FailedInstance], count: int) -> PharosError:
        reasons = "; ".join(f"{f.sop_instance_uid}: {f.reason}" for f in failed[:10])
        return PharosError(
            ErrorCode.NETWORK_PROTOCOL,
            f"C-STORE SCU to {_peer(plan.association)}: {len(failed)} of {count} instances "
            f"were not stored by the peer ({reasons})",
        )

    def stored(self, plan: StorePlan) -> None:
        """A store is over: log the exports (LogExportedResources)."""
        if self.settings.log_exported_resources:
            self._index.log_exports(plan.resources, plan.association.modality.name)

    def store_straight(self, name: str, data: bytes) -> dict[str, str]:
        """POST /modalities/{id}/store-straight: the body, a DICOM file, sent as it is."""
        modality = self.registry.require(name)
        try:
            dataset = pydicom.dcmread(io.BytesIO(data))
            sop_class = str(dataset.file_meta.MediaStorageSOPClassUID)
            sop_instance = str(dataset.file_meta.MediaStorageSOPInstanceUID)
            syntax = str(dataset.file_meta.TransferSyntaxUID)
        except Exception as exc:
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT, f"The body is not a DICOM file: {exc}"
            ) from None
        instance = StoredInstance(
            ResourceRef(0, Level.INSTANCE, "", None), sop_instance, sop_class, syntax
        )
        association = self.association(modality)
        request = StoreRequest([instance], lambda _: dataset, allow_transcoding=False)
        peer = _peer(association)
        try:
            report = self.client.store(association, request)
        except PharosError as exc:
            log.warning("C-STORE SCU (straight) to %s failed: %s", peer, exc)
            raise
        if report.failed:
            log.warning("C-STORE SCU (straight) to %s: refused", peer)
            raise PharosError(
                ErrorCode.NETWORK_PROTOCOL,
                f"C-STORE SCU to {peer} failed: {report.failed[0].reason}",
            )
        log.info("C-STORE SCU (straight) to %s: 1 instance sent", peer)
        return {"SOPClassUID": sop_class, "SOPInstanceUID": sop_instance}

    def _instances_of(
        self, resources: list[str], skip_unknown: bool = False
    ) -> list[StoredInstance]:
        refs: list[ResourceRef] = []
        for public_id in resources:
            ref = self._index.lookup(public_id)
            if ref is None:
                if skip_unknown:
                    continue  # deleted meanwhile
                raise unknown_resource(public_id)
            refs.append(ref)
        return self._retrieve.stored(refs)

    # -- the deprecated C-FIND routes -------------------------------------------------------

    def find_level(self, name: str, level: Level, raw: bytes) -> list[dict[str, Any]]:
        """/find-patient, /find-study, /find-series, /find-instance (simplified answers)."""
        fields = parse_query(json_object(raw), "body")
        association = self.association(self.registry.require(name))
        if legacy_query_is_too_wide(level, fields):
            return []
        return [self._simplified(a) for a in self._legacy_find(association, level, fields)]

    def find_hierarchy(self, name: str, raw: bytes) -> list[dict[str, Any]]:
        """/find: the matching patients, each with its studies, each with its series."""
        fields = parse_query(json_object(raw), "body")
        association = self.association(self.registry.require(name))
        result: list[dict[str, Any]] = []
        for patient in self._legacy_find(association, Level.PATIENT, fields):
            patient_json = self._simplified(patient)
            study_fields = {**fields, **_copied(patient, (0x00100020,))}
            studies = []
            if not legacy_query_is_too_wide(Level.STUDY, study_fields):
                for study in self._legacy_find(association, Level.STUDY, study_fields):
                    study_json = self._simplified(study)
                    series_fields = {**study_fields, **_copied(study, (0x00100020, 0x0020000D))}
                    series = []
                    if not legacy_query_is_too_wide(Level.SERIES, series_fields):
                        series = [
                            self._simplified(item)
                            for item in self._legacy_find(association, Level.SERIES, series_fields)
                        ]
                    study_json["Series"] = series
                    studies.append(study_json)
            patient_json["Studies"] = studies
            result.append(patient_json)
        return result

    def instances(self, public_ids: list[str]) -> list[StoredInstance]:
        """The instances of these IDs still stored (a job resolves them at each step)."""
        return self._instances_of(public_ids, skip_unknown=True)

    def _legacy_find(
        self, association: Association, level: Level, fields: Mapping[int, str]
    ) -> list[Dataset]:
        identifier = build_identifier(
            level,
            legacy_query(level, fields),
            normalized=True,
            manufacturer=association.modality.manufacturer,
            default_encoding=self._options.default_encoding,
        )
        return self.find(association, level, identifier)

    def _simplified(self, answer: Dataset) -> dict[str, Any]:
        return self.answer_json(answer, TagFormat.SIMPLIFY)

    def answer_json(self, answer: Dataset, fmt: TagFormat) -> dict[str, Any]:
        return dataset_to_json(answer, fmt, default_encoding=self._options.default_encoding)

    # -- C-MOVE and C-GET of identifiers ----------------------------------------------------

    def move_plan(self, name: str, raw: bytes) -> MovePlan:
        """Reads the body of POST /modalities/{id}/move."""
        modality = self.registry.require(name)
        body = json_object(raw)
        level, keys = retrieve_keys(body)
        target = optional_string(body, "TargetAet") or self.settings.dicom_aet
        association = self.association_of(modality, body)
        query = [self.answer_json(move_identifier(level, item), TagFormat.SHORT) for item in keys]
        return MovePlan(association, level, keys, target, query, run_mode(body))

    def move_resources(self, name: str, raw: bytes) -> dict[str, Any]:
        """POST /modalities/{id}/move, run now whatever the body asks."""
        return self.run_move(self.move_plan(name, raw))

    def run_move(self, plan: MovePlan) -> dict[str, Any]:
        """C-MOVEs run synchronously (Orthanc 1.10 answers `{}`)."""
        identifiers = [plan.identifier(i) for i in range(len(plan.keys))]
        self.move(plan.association, plan.level, identifiers, plan.target_aet)
        return {}

    def get_plan(self, name: str, raw: bytes) -> MovePlan:
        """Reads the body of POST /modalities/{id}/get (Orthanc 1.12): C-GET of identifiers."""
        modality = self.registry.require(name)
        body = json_object(raw)
        level, keys = retrieve_keys(body)
        association = self.association_of(modality, body)
        query = [self.answer_json(move_identifier(level, k), TagFormat.SHORT) for k in keys]
        return MovePlan(association, level, keys, association.local_aet, query, run_mode(body))

    def get_resources(self, name: str, raw: bytes) -> dict[str, Any]:
        """POST /modalities/{id}/get, run now whatever the body asks."""
        return self.run_get(self.get_plan(name, raw))

    def run_get(self, plan: MovePlan) -> dict[str, Any]:
        self.get(plan, [plan.identifier(i) for i in range(len(plan.keys))])
        return get_content(plan)

    def get(self, plan: MovePlan, identifiers: Sequence[Dataset]) -> list[str]:
        """C-GET; the instances received are stored here, with the peer's AE title as their
        RemoteAET. The IDs of the instances stored."""
        association = plan.association
        modality = association.modality
        reception = Reception(
            origin="DicomProtocol",
            remote_aet=modality.aet,
            remote_ip=modality.host,
            called_aet=association.local_aet,
        )
        stored: list[str] = []

        def received(dataset: Dataset, transfer_syntax: str) -> int:
            try:
                data = _file_bytes(dataset, transfer_syntax)
            except Exception as exc:
                log.warning("C-GET SCU from %s: unreadable instance: %s", modality.aet, exc)
                return _CANNOT_UNDERSTAND
            try:
                result = self._store.store(data, reception)
            except PharosError as exc:
                log.warning("C-GET SCU from %s: instance not stored: %s", modality.aet, exc)
                if exc.code is ErrorCode.BAD_FILE_FORMAT:
                    return _CANNOT_UNDERSTAND
                return _OUT_OF_RESOURCES
            stored.append(result.ids.instance)
            return _SUCCESS

        peer = _peer(association)
        request = MoveRequest(plan.level, identifiers, association.local_aet)
        try:
            report = self.client.get(association, request, received)
        except PharosError as exc:
            log.warning("C-GET SCU from %s failed (%d stored): %s", peer, len(stored), exc)
            raise
        log.info(
            "C-GET SCU from %s: %d completed, %d failed, %d warnings, %d stored",
            peer,
            report.completed,
            report.failed,
            report.warning,
            len(stored),
        )
        return stored


def _peer(association: Association) -> str:
    m = association.modality
    return f'"{m.name}" ({m.aet}@{m.host}:{m.port}, as {association.local_aet})'


def _copied(answer: Dataset, tags: Sequence[int]) -> dict[int, str]:
    copied: dict[int, str] = {}
    for tag in tags:
        element = answer.get(tag)
        if element is not None and element.value not in (None, ""):
            copied[tag] = str(element.value)
    return copied


def _file_bytes(dataset: Dataset, transfer_syntax: str) -> bytes:
    """A received data set as a DICOM file in its transfer syntax."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    meta.TransferSyntaxUID = UID(transfer_syntax)
    dataset.file_meta = meta
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()
