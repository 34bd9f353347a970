"""Modification and anonymization of stored resources (Orthanc's `/modify`, `/anonymize`,
`/tools/bulk-modify`, `/tools/bulk-anonymize`).

Each source instance is read, changed by `pharos.dicom.modification` with one identifier map
for the whole operation, and stored through the normal store path as a new instance, with
the `ModifiedFrom` / `AnonymizedFrom` metadata on its four levels. With `"KeepSource": false`
an original instance is deleted only after its modified copy is stored (durable and indexed).
The whole request is checked before anything is written: bad input changes nothing.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.tag import BaseTag
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pharos.dicom import modification as mod
from pharos.dicom.transcode import TranscodingError, check_target, transcode_file
from pharos.index.base import Index, Reception, ResourceRef
from pharos.index.base_annotations import ANONYMIZED_FROM, MODIFIED_FROM
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.ids import ResourceIds
from pharos.model.levels import Level
from pharos.services.deletion import DeletionService
from pharos.services.files import FileService
from pharos.services.options import ServiceOptions
from pharos.services.remote_requests import RunMode, json_object, run_mode
from pharos.services.resources import ResourceService
from pharos.services.store import StoreService

log = logging.getLogger(__name__)

IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.8.498.1"
_MAX_SOURCES = 100_000


@dataclass(frozen=True, slots=True)
class Source:
    """A resource the request names, and the level it is modified at."""

    public_id: str
    level: Level


@dataclass(slots=True)
class ModifyPlan:
    """One checked request: what to change, on which instances."""

    body: dict[str, Any]  # as received: a saved job parses it again
    anonymize: bool
    bulk: bool
    bulk_level: Level | None  # the level of a bulk request
    sources: list[Source]
    instances: list[tuple[str, int]]  # (instance public ID, index in sources)
    modifications: dict[Level, mod.Modification]
    reception: Reception
    run: RunMode = field(default_factory=RunMode)

    @property
    def any(self) -> mod.Modification:
        return next(iter(self.modifications.values()))


@dataclass(slots=True)
class ModifyState:
    """The progress of a plan: what a saved job keeps."""

    ids: mod.IdentifierMap = field(default_factory=mod.IdentifierMap)
    position: int = 0
    # the new resources at the level of the request, by public ID (their instance's IDs)
    outputs: dict[str, ResourceIds] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)


class ModifyService:
    def __init__(
        self,
        index: Index,
        store: StoreService,
        files: FileService,
        deletion: DeletionService,
        options: ServiceOptions,
    ):
        self._index = index
        self._resources = ResourceService(index)
        self._store = store
        self._files = files
        self._deletion = deletion
        self._options = options

    # -- requests ---------------------------------------------------------------------------

    def instance_file(self, public_id: str, raw: bytes, anonymize: bool) -> bytes:
        """`/instances/{id}/modify|anonymize`: the changed file, not stored."""
        modification = mod.parse_request(_body(raw), Level.INSTANCE, anonymize)
        self._check_transcode(modification)
        ref = self._resources.resolve(Level.INSTANCE, public_id)
        return self._changed_file(ref, modification, mod.IdentifierMap())

    def plan(
        self, level: Level, public_id: str, raw: bytes, anonymize: bool, reception: Reception
    ) -> ModifyPlan:
        """`/{patients|studies|series}/{id}/modify|anonymize`."""
        body = _body(raw)
        ref = self._resources.resolve(level, public_id)
        return self._plan(
            body, anonymize, False, None, [(Source(public_id, level), ref)], reception
        )

    def bulk_plan(self, raw: bytes, anonymize: bool, reception: Reception) -> ModifyPlan:
        """`/tools/bulk-modify|bulk-anonymize` (Orthanc 1.9.4+): `Resources` of any levels,
        modified at `Level` (1.9.7); without it, as Orthanc: Instance, or Patient, Study or
        Series when PatientID, StudyInstanceUID or SeriesInstanceUID is replaced."""
        body = _body(raw)
        resources = body.get("Resources")
        if not isinstance(resources, list) or not resources:
            raise mod.bad_request('"Resources" must be a non-empty array of resource IDs')
        if len(resources) > _MAX_SOURCES:
            raise mod.bad_request(f'"Resources" lists more than {_MAX_SOURCES} resources')
        if body.get("Level") is not None:
            try:
                level = Level.parse(str(body["Level"]))
            except ValueError as exc:
                raise mod.bad_request(f'"Level": {exc}') from None
        else:
            level = _default_bulk_level(body)
        sources = []
        for public_id in resources:
            if not isinstance(public_id, str):
                raise mod.bad_request('"Resources" must be an array of resource IDs (strings)')
            ref = self._index.lookup(public_id)
            if ref is None:
                raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Unknown resource: {public_id}")
            sources.append((Source(public_id, level), ref))
        return self._plan(body, anonymize, True, level, sources, reception)

    def _plan(
        self,
        body: dict[str, Any],
        anonymize: bool,
        bulk: bool,
        bulk_level: Level | None,
        sources: list[tuple[Source, ResourceRef]],
        reception: Reception,
    ) -> ModifyPlan:
        run = run_mode(body)
        modifications = {
            source.level: mod.parse_request(body, source.level, anonymize) for source, _ in sources
        }
        plan = ModifyPlan(
            body=body,
            anonymize=anonymize,
            bulk=bulk,
            bulk_level=bulk_level,
            sources=[source for source, _ in sources],
            instances=[],
            modifications=modifications,
            reception=reception,
            run=run,
        )
        self._check_transcode(plan.any)
        seen: set[str] = set()
        for number, (_source, ref) in enumerate(sources):
            for instance in self._resources.descendants(ref, Level.INSTANCE):
                if instance.public_id not in seen:  # a bulk request may name one twice
                    seen.add(instance.public_id)
                    plan.instances.append((instance.public_id, number))
        return plan

    def _check_transcode(self, modification: mod.Modification) -> None:
        if modification.transcode is not None:
            try:
                check_target(modification.transcode)
            except TranscodingError as exc:
                raise mod.bad_request(f'"Transcode": {exc}') from None

    # -- running ----------------------------------------------------------------------------

    def start(self, plan: ModifyPlan) -> ModifyState:
        """The state of a new run: the hierarchy UIDs of every source instance get their new
        values first, so that references between instances follow whatever the order."""
        state = ModifyState()
        for source, modification in ((s, plan.modifications[s.level]) for s in plan.sources):
            ref = self._index.lookup(source.public_id)
            if ref is None:
                continue
            for level, tag in mod.level_uids_to_map(modification):
                if level < ref.level:
                    continue  # above the source: the same for all its instances, mapped later
                below_refs = [ref] if level is ref.level else self._index.descendants(ref, level)
                for below in below_refs:
                    value = self._index.main_tags(below).get(tag_keyword(tag))
                    if value:
                        state.ids.uid(value)
        return state

    def run(self, plan: ModifyPlan) -> dict[str, Any]:
        """The synchronous request: every instance now; Orthanc's answer."""
        state = self.start(plan)
        while state.position < len(plan.instances):
            self.step(plan, state)
        return self.answer(plan, state)

    def skip_processed(self, plan: ModifyPlan, state: ModifyState) -> bool:
        """A job resumed after a crash redoes the steps made since it was last saved: with
        KeepSource false their sources are gone, their copies stored. Such a step is passed
        over (True) instead of failing the job; False once a source is found."""
        public_id, _ = plan.instances[state.position]
        ref = self._index.lookup(public_id)
        if ref is not None:
            return False
        log.warning("Instance %s was modified before the job was interrupted", public_id)
        state.position += 1
        return True

    def step(self, plan: ModifyPlan, state: ModifyState) -> None:
        """Modify, store and (KeepSource false) delete the source of one instance."""
        public_id, number = plan.instances[state.position]
        source = plan.sources[number]
        modification = plan.modifications[source.level]
        ref = self._index.lookup(public_id)
        try:
            if ref is None or ref.level is not Level.INSTANCE:
                raise PharosError(
                    ErrorCode.UNKNOWN_RESOURCE, f"Instance {public_id} was deleted meanwhile"
                )
            self._modify_one(ref, plan, state, number, modification)
        except PharosError as exc:
            if not modification.permissive:
                raise
            log.warning("Instance %s not modified (Permissive): %s", public_id, exc)
            state.failed.append(public_id)
        state.position += 1

    def _modify_one(
        self,
        ref: ResourceRef,
        plan: ModifyPlan,
        state: ModifyState,
        number: int,
        modification: mod.Modification,
    ) -> None:
        data = self._changed_file(ref, modification, state.ids)
        original = self._ids_of(ref)
        result = self._store.store(data, plan.reception)
        new = result.ids
        if new.instance == original.instance:
            raise mod.bad_request(
                f"The modified instance {ref.public_id} keeps the identifiers of its source: "
                "give it a new SOPInstanceUID (or PatientID/StudyInstanceUID/SeriesInstanceUID)"
            )
        metadata = ANONYMIZED_FROM if plan.anonymize else MODIFIED_FROM
        for level in Level:
            if at_level(new, level) == at_level(original, level):
                continue  # e.g. the series of an instance modified at the instance level
            new_ref = self._index.lookup(at_level(new, level))
            if new_ref is not None:
                self._index.set_metadata(
                    new_ref, metadata, at_level(original, level), None, log_change=False
                )
        state.outputs.setdefault(at_level(new, plan.sources[number].level), new)
        if not modification.keep_source:
            self._deletion.delete(ref)  # after the store's commit: the copy is durable

    def _ids_of(self, ref: ResourceRef) -> ResourceIds:
        series = self._index.ancestor(ref, Level.SERIES)
        study = self._index.ancestor(ref, Level.STUDY)
        patient = self._index.ancestor(ref, Level.PATIENT)
        return ResourceIds(patient.public_id, study.public_id, series.public_id, ref.public_id)

    def _changed_file(
        self, ref: ResourceRef, modification: mod.Modification, ids: mod.IdentifierMap
    ) -> bytes:
        raw = self._files.read_dicom(ref)
        try:
            ds = pydicom.dcmread(io.BytesIO(raw), force=True)
        except Exception as exc:
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT, f"Cannot read instance {ref.public_id}: {exc}"
            ) from None
        try:
            mod.apply(ds, modification, ids)
            data = to_bytes(ds)
        except RecursionError:  # pydicom reads sequences recursively, as they are reached
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT,
                f"Instance {ref.public_id} has sequences nested too deeply to be modified",
            ) from None
        if modification.transcode is not None:
            try:
                data = transcode_file(
                    data,
                    modification.transcode,
                    quality=self._options.lossy_quality,
                    keep_instance_uid=True,  # the operation's mapping decides the UIDs
                )
            except TranscodingError as exc:
                raise PharosError(
                    ErrorCode.BAD_FILE_FORMAT, f"Cannot transcode {ref.public_id}: {exc}"
                ) from None
        return data

    # -- answers ----------------------------------------------------------------------------

    def answer(self, plan: ModifyPlan, state: ModifyState) -> dict[str, Any]:
        """`{ID, Path, PatientID, Type}` of the new resource; for bulk requests, the job
        content with `Resources` listing them."""
        level = plan.sources[0].level  # the same for all the sources of a bulk request
        if not plan.bulk:
            if not state.outputs:
                raise PharosError(ErrorCode.BAD_REQUEST, "No instance could be modified")
            return resource_answer(next(iter(state.outputs.values())), level)
        content = self.content(plan, state)
        content["Resources"] = [resource_answer(ids, level) for ids in state.outputs.values()]
        return content

    def content(self, plan: ModifyPlan, state: ModifyState) -> dict[str, Any]:
        """Orthanc's job `Content` of a ResourceModification job."""
        modification = plan.any
        content: dict[str, Any] = {
            "Description": "REST API",
            "FailedInstancesCount": len(state.failed),
            "InstancesCount": len(plan.instances),
            "IsAnonymization": plan.anonymize,
            "ParentResources": [source.public_id for source in plan.sources],
        }
        if modification.transcode is not None:
            content["Transcode"] = modification.transcode
        return content


def resource_answer(ids: ResourceIds, level: Level) -> dict[str, Any]:
    public_id = at_level(ids, level)
    return {
        "ID": public_id,
        "Path": level.path(public_id),
        "PatientID": ids.patient,
        "Type": level.title,
    }


def _default_bulk_level(body: dict[str, Any]) -> Level:
    replaced = body.get("Replace")
    names = (
        [name for name in replaced if isinstance(name, str)] if isinstance(replaced, dict) else []
    )
    tags = {tag for tag in map(_tag_or_none, names) if tag is not None}
    for tag, level in (
        (mod.PATIENT_ID, Level.PATIENT),
        (mod.STUDY_UID, Level.STUDY),
        (mod.SERIES_UID, Level.SERIES),
    ):
        if tag in tags:
            return level
    return Level.INSTANCE


def _tag_or_none(name: str) -> BaseTag | None:
    try:
        return mod.parse_tag(name)
    except PharosError:
        return None  # refused with its message when the request is parsed


def at_level(ids: ResourceIds, level: Level) -> str:
    return ids.as_tuple()[level - 1]


def tag_keyword(tag: BaseTag) -> str:
    return {
        mod.STUDY_UID: "StudyInstanceUID",
        mod.SERIES_UID: "SeriesInstanceUID",
        mod.SOP_UID: "SOPInstanceUID",
    }[tag]


def _body(raw: bytes) -> dict[str, Any]:
    return json_object(raw, empty_ok=True)


def to_bytes(ds: Dataset) -> bytes:
    """The Part 10 file of a changed dataset, in the transfer syntax it was read in; the
    file meta follows the (possibly new) SOP Class and Instance UIDs."""
    old = getattr(ds, "file_meta", None)
    if old is not None and old.get("TransferSyntaxUID"):
        syntax = UID(str(old.TransferSyntaxUID))
    elif ds.original_encoding[0]:  # no file meta: as read (implicit VR little endian)
        syntax = ImplicitVRLittleEndian
    else:
        syntax = ExplicitVRLittleEndian
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(str(ds.get("SOPClassUID", "") or ""))
    meta.MediaStorageSOPInstanceUID = UID(str(ds.get("SOPInstanceUID", "") or ""))
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    ds.file_meta = meta
    buffer = io.BytesIO()
    try:
        if meta.MediaStorageSOPClassUID and meta.MediaStorageSOPInstanceUID:
            ds.save_as(buffer, enforce_file_format=True)
        else:  # a file the store accepted without them: written as it came
            ds.preamble = ds.preamble or b"\0" * 128
            ds.save_as(buffer, enforce_file_format=False)
    except (ValueError, TypeError, OverflowError, AttributeError) as exc:
        raise mod.bad_request(f"Cannot write the modified DICOM file: {exc}") from None
    return buffer.getvalue()
