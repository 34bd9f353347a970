"""Split and merge of studies (`POST /studies/{id}/split` and `/merge`, as Orthanc 1.10):
requests checked in full before anything changes, then run now (the default, as Orthanc) or
as a `SplitStudy` / `MergeStudy` job (`"Asynchronous": true` or `"Synchronous": false`).

- split: the given series and instances of a study are copied into a brand new study (new
  StudyInstanceUID; new SeriesInstanceUID per source series; new SOPInstanceUID per instance,
  as Orthanc 1.5.8+), with patient/study module tags replaced or removed as asked.
- merge: the given studies, series and instances are copied into the target study: they take
  its patient and study module tags (a tag the target does not have is removed), new series
  and instance UIDs.

Unless `KeepSource`, the originals are deleted once every copy is stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from pharos.dicom.dictionary import format_tag, parse_tag, tag_name
from pharos.dicom.modules import module_tags
from pharos.dicom.relocation import SERIES_INSTANCE_UID, STUDY_INSTANCE_UID, Relocation, relocate
from pharos.index.base import Index, Reception, ResourceRef
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.ids import is_public_id
from pharos.model.jobs import Job, StepStatus, Submission
from pharos.model.levels import Level
from pharos.services.deletion import DeletionService
from pharos.services.files import FileService
from pharos.services.remote_requests import json_object, optional_bool, run_mode
from pharos.services.split_merge_jobs import (
    MERGE_JOB,
    SPLIT_JOB,
    MovePlan,
    StudyMoveJob,
    job_factory,
)
from pharos.services.store import StoreService

log = logging.getLogger(__name__)

# The tags split may set or remove (Orthanc: the patient and general study modules, less the
# UIDs that make the hierarchy); merge takes the same modules from the target study.
_MODULES = module_tags(Level.PATIENT) | module_tags(Level.STUDY)
SPLIT_TAGS = _MODULES - {STUDY_INSTANCE_UID, SERIES_INSTANCE_UID}


class SplitMergeService:
    def __init__(
        self, index: Index, files: FileService, store: StoreService, deletion: DeletionService
    ):
        self._index = index
        self._files = files
        self._store = store
        self._deletion = deletion

    # -- the routes ------------------------------------------------------------------------

    def split(self, study_id: str, raw: bytes, reception: Reception) -> dict[str, Any] | Submission:
        """POST /studies/{id}/split."""
        body = json_object(raw)
        study = self._resource(study_id)
        if study is None or study.level is not Level.STUDY:
            raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Cannot split unknown study {study_id}")
        series_ids = _strings(body, "Series")
        instance_ids = _strings(body, "Instances")
        if not series_ids and not instance_ids:
            raise PharosError(
                ErrorCode.BAD_REQUEST, 'Both the "Series" and the "Instances" fields are missing'
            )
        series_refs: dict[str, ResourceRef] = {}  # source series, in order
        instances: list[ResourceRef] = []
        for public_id in series_ids:
            ref = self._resource(public_id)
            if ref is None or ref.level is not Level.SERIES or ref.parent_pk != study.pk:
                raise PharosError(
                    ErrorCode.UNKNOWN_RESOURCE,
                    f"This series does not belong to the study to be split: {public_id}",
                )
            series_refs.setdefault(ref.public_id, ref)
            instances.extend(self._index.descendants(ref, Level.INSTANCE))
        for public_id in instance_ids:
            ref = self._resource(public_id)
            parent = self._parent(ref) if ref is not None and ref.level is Level.INSTANCE else None
            if ref is None or parent is None or parent.parent_pk != study.pk:
                raise PharosError(
                    ErrorCode.UNKNOWN_RESOURCE,
                    f"This instance does not belong to the study to be split: {public_id}",
                )
            series_refs.setdefault(parent.public_id, parent)
            instances.append(ref)
        removals = frozenset(_split_tag(name) for name in _strings(body, "Remove"))
        replacements = _replacements(body.get("Replace"))
        keep_source = optional_bool(body, "KeepSource", False)
        permissive = optional_bool(body, "Permissive", False)
        run = run_mode(body)
        plan = self._plan(
            SPLIT_JOB,
            series_refs,
            instances,
            str(generate_uid()),
            replacements,
            removals - {element.tag for element in replacements},
            keep_source,
            permissive,
            reception,
            source_study=study.public_id,
        )
        return self._run(StudyMoveJob(self, plan), run.asynchronous, run.priority)

    def merge(self, study_id: str, raw: bytes, reception: Reception) -> dict[str, Any] | Submission:
        """POST /studies/{id}/merge."""
        body = json_object(raw)
        target = self._resource(study_id)
        if target is None or target.level is not Level.STUDY:
            raise PharosError(
                ErrorCode.UNKNOWN_RESOURCE, f"Cannot merge into an unknown study: {study_id}"
            )
        if "Resources" not in body:
            raise PharosError(ErrorCode.BAD_FILE_FORMAT, 'Missing field in JSON: "Resources"')
        resource_ids = _strings(body, "Resources")
        if not resource_ids:
            raise PharosError(ErrorCode.BAD_REQUEST, 'The field "Resources" is an empty list')
        series_refs: dict[str, ResourceRef] = {}
        instances: list[ResourceRef] = []
        for public_id in resource_ids:
            self._add_merge_source(public_id, target, series_refs, instances)
        header = self._files.one_dataset_each([target]).get(target.pk)
        if header is None:
            raise PharosError(
                ErrorCode.UNKNOWN_RESOURCE, f"The study {study_id} has no readable instance"
            )
        replacements, removals = _module_of(header)
        keep_source = optional_bool(body, "KeepSource", False)
        permissive = optional_bool(body, "Permissive", False)
        run = run_mode(body)
        plan = self._plan(
            MERGE_JOB,
            series_refs,
            instances,
            str(header.get("StudyInstanceUID", "") or ""),
            replacements,
            removals,
            keep_source,
            permissive,
            reception,
            target_study=target.public_id,
        )
        if not plan.relocation.study_uid:
            raise PharosError(ErrorCode.BAD_FILE_FORMAT, f"Study {study_id} has no UID")
        return self._run(StudyMoveJob(self, plan), run.asynchronous, run.priority)

    def _add_merge_source(
        self,
        public_id: str,
        target: ResourceRef,
        series_refs: dict[str, ResourceRef],
        instances: list[ResourceRef],
    ) -> None:
        ref = self._resource(public_id)
        if ref is None:
            raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Cannot find this resource: {public_id}")
        if ref.level is Level.PATIENT:
            raise PharosError(
                ErrorCode.UNKNOWN_RESOURCE,
                f"This resource is neither a study, nor a series, nor an instance: "
                f"{public_id} is a Patient",
            )
        if ref.level is Level.STUDY:
            if ref.pk == target.pk:
                raise PharosError(
                    ErrorCode.UNKNOWN_RESOURCE,
                    f"Cannot merge a study into the same study: {public_id}",
                )
            for series in self._index.descendants(ref, Level.SERIES):
                series_refs.setdefault(series.public_id, series)
                instances.extend(self._index.descendants(series, Level.INSTANCE))
        elif ref.level is Level.SERIES:
            if ref.parent_pk == target.pk:
                raise PharosError(
                    ErrorCode.UNKNOWN_RESOURCE,
                    f"Cannot merge series {public_id} into its parent study {target.public_id}",
                )
            series_refs.setdefault(ref.public_id, ref)
            instances.extend(self._index.descendants(ref, Level.INSTANCE))
        else:
            parent = self._parent(ref)
            if parent is None:
                raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Unknown resource: {public_id}")
            if parent.parent_pk == target.pk:
                raise PharosError(
                    ErrorCode.UNKNOWN_RESOURCE,
                    f"Cannot merge instance {public_id} into its parent study {target.public_id}",
                )
            series_refs.setdefault(parent.public_id, parent)
            instances.append(ref)

    # -- preparation and runs --------------------------------------------------------------

    def _plan(
        self,
        job_type: str,
        series_refs: dict[str, ResourceRef],
        instances: list[ResourceRef],
        study_uid: str,
        replacements: Dataset,
        removals: frozenset[int],
        keep_source: bool,
        permissive: bool,
        reception: Reception,
        source_study: str | None = None,
        target_study: str | None = None,
    ) -> MovePlan:
        unique = list({ref.public_id: ref for ref in instances}.values())
        if not unique:
            raise PharosError(ErrorCode.BAD_REQUEST, "There is no instance to move")
        series_uid_map = {public_id: str(generate_uid()) for public_id in series_refs}
        uid_map: dict[str, str] = {}
        for public_id, info in _tags_by_id(self._index, list(series_refs.values())).items():
            old = info.get("SeriesInstanceUID")
            if old:
                uid_map[old] = series_uid_map[public_id]
        for info in _tags_by_id(self._index, unique).values():
            old = info.get("SOPInstanceUID")
            if old:
                uid_map[old] = str(generate_uid())
        relocation = Relocation(study_uid, uid_map, replacements, removals)
        return MovePlan(
            job_type=job_type,
            instances=[ref.public_id for ref in unique],
            relocation=relocation,
            series_uid_map=series_uid_map,
            keep_source=keep_source,
            permissive=permissive,
            reception=reception,
            source_study=source_study,
            target_study=target_study,
        )

    @staticmethod
    def _run(job: StudyMoveJob, asynchronous: bool, priority: int) -> dict[str, Any] | Submission:
        if asynchronous:
            return Submission(job, priority)
        # Run here, step by step, as the engine would: the PharosError of a failed step is
        # the answer (Orthanc answers the error of a failed synchronous job).
        job.start()
        while job.step().status is StepStatus.CONTINUE:
            pass
        return job.public_content()

    def factories(self) -> dict[str, Callable[[dict[str, Any]], Job]]:
        """{job type: factory} for the jobs engine's registry."""
        return {SPLIT_JOB: job_factory(self, SPLIT_JOB), MERGE_JOB: job_factory(self, MERGE_JOB)}

    # -- the steps (split_merge_jobs.Mover) -------------------------------------------------

    def copy(self, instance_id: str, relocation: Relocation, reception: Reception) -> str:
        ref = self._index.lookup(instance_id)
        if ref is None or ref.level is not Level.INSTANCE:
            raise PharosError(
                ErrorCode.UNKNOWN_RESOURCE,
                f"Instance {instance_id} was deleted before it could be moved",
            )
        moved = relocate(self._files.read_dicom(ref), relocation)
        return self._store.store(moved, reception).ids.study

    def delete_original(self, instance_id: str) -> None:
        ref = self._index.lookup(instance_id)
        if ref is None or ref.level is not Level.INSTANCE:
            return  # deleted meanwhile, or before a restart
        try:
            self._deletion.delete(ref)
        except PharosError as exc:
            if exc.code is not ErrorCode.UNKNOWN_RESOURCE:
                raise

    # -- lookups ---------------------------------------------------------------------------

    def _resource(self, public_id: str) -> ResourceRef | None:
        return self._index.lookup(public_id) if is_public_id(public_id) else None

    def _parent(self, ref: ResourceRef) -> ResourceRef | None:
        """The series of an instance."""
        try:
            return self._index.ancestor(ref, Level.SERIES)
        except PharosError:
            return None


def _tags_by_id(index: Index, refs: list[ResourceRef]) -> dict[str, dict[str, str]]:
    return {info.ref.public_id: info.tags for info in index.resources_info(refs)}


def _strings(body: dict[str, Any], key: str) -> list[str]:
    """An optional list of strings (Orthanc's ReadArrayOfStrings)."""
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT, f'The field "{key}" must be an array of strings'
        )
    return [item.strip() for item in value]


def _split_tag(name: str) -> int:
    tag = parse_tag(name)
    if tag not in SPLIT_TAGS:
        raise PharosError(
            ErrorCode.PARAMETER_OUT_OF_RANGE,
            "Cannot modify the following tag while splitting a study (not in the patient/study "
            f"modules): {tag_name(tag)} ({format_tag(tag)})",
        )
    return tag


def _replacements(value: Any) -> Dataset:
    """`Replace` of a split: {tag: string}, patient/study module tags only."""
    dataset = Dataset()
    if value is None:
        return dataset
    if not isinstance(value, dict):
        raise PharosError(ErrorCode.BAD_FILE_FORMAT, 'The field "Replace" must be a JSON object')
    for name, text in value.items():
        tag = _split_tag(name)
        if not isinstance(text, str):
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT, f'The value of "{name}" in "Replace" must be a string'
            )
        vr = dictionary_VR(tag)
        if vr == "SQ":
            raise PharosError(
                ErrorCode.PARAMETER_OUT_OF_RANGE,
                f"The sequence {tag_name(tag)} cannot be replaced by a string",
            )
        try:
            dataset.add_new(tag, vr, text)
            # through the DICOM JSON model, as the saved job will have it
            dataset[tag] = _via_json(dataset[tag])
        except (ValueError, TypeError, OverflowError):
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT, f'Invalid value for {tag_name(tag)}: "{text}"'
            ) from None
    return dataset


def _module_of(header: Dataset) -> tuple[Dataset, frozenset[int]]:
    """The patient and study module elements of the target study's instance (copied into the
    merged instances), and the module tags it lacks (removed from them)."""
    present = Dataset()
    missing: set[int] = set()
    for tag in _MODULES - {STUDY_INSTANCE_UID}:
        if tag not in header:
            missing.add(tag)
            continue
        try:  # through the DICOM JSON model, as the saved job will have it
            present[tag] = _via_json(header[tag])
        except (ValueError, TypeError, OverflowError) as exc:
            # a malformed value of the target (e.g. a DS that is no number): the moved
            # instances keep theirs rather than the merge being refused
            log.warning("Merge: %s of the target study not copied: %s", tag_name(tag), exc)
    return present, frozenset(missing)


def _via_json(element: DataElement) -> DataElement:
    """The element through the DICOM JSON model: decoded, and as the saved job will have it.
    ValueError for a value the model cannot hold (e.g. a DS that is no number)."""
    single = Dataset()
    single[element.tag] = element
    return Dataset.from_json(single.to_json_dict())[element.tag]
