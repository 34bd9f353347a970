"""Orthanc's `SplitStudy` and `MergeStudy` jobs: the moved instances are copied one per step
(rewritten by `dicom.relocation`, stored through the store path, so each copy is durable when
its step ends); then, unless `KeepSource`, the originals are deleted one per step. No
original is deleted before every copy is stored, and the original of a copy that failed
(`Permissive`) is kept.

The serialized state holds the new UIDs (`TargetStudyUID`, Orthanc's `SeriesUIDMap`, and the
map of every old Series and SOP Instance UID), so a job resumed after a restart writes the
same copies again: a step repeated after a crash finds its copy already stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pydicom.dataset import Dataset

from pharos.dicom.dictionary import format_tag, parse_tag
from pharos.dicom.relocation import Relocation
from pharos.index.base import Reception
from pharos.model.errors import PharosError
from pharos.model.jobs import Job, JobOutput, StepResult, StopReason

SPLIT_JOB = "SplitStudy"
MERGE_JOB = "MergeStudy"
DESCRIPTION = "REST API"  # Orthanc's description of the jobs submitted by its REST API


class Mover(Protocol):
    """What the steps need from the service."""

    def copy(self, instance_id: str, relocation: Relocation, reception: Reception) -> str:
        """Store the moved copy of an instance; the public ID of its study."""
        ...

    def delete_original(self, instance_id: str) -> None:
        """Delete a moved instance (nothing when it is already gone)."""
        ...


@dataclass(frozen=True, slots=True)
class MovePlan:
    """One split or merge, as checked and prepared before its first step."""

    job_type: str  # SPLIT_JOB or MERGE_JOB
    instances: list[str]  # public IDs of the instances to move, in order
    relocation: Relocation
    series_uid_map: dict[str, str]  # source series public ID -> new SeriesInstanceUID
    keep_source: bool
    permissive: bool
    reception: Reception
    source_study: str | None = None  # split only
    target_study: str | None = None  # merge: given; split: known once a copy is stored


class StudyMoveJob:
    def __init__(
        self,
        mover: Mover,
        plan: MovePlan,
        position: int = 0,
        failed: list[str] | None = None,
    ):
        self._mover = mover
        self._plan = plan
        self._position = position
        self._failed = list(failed or [])
        self._target_study = plan.target_study

    @property
    def job_type(self) -> str:
        return self._plan.job_type

    def _steps(self) -> int:
        count = len(self._plan.instances)
        return count if self._plan.keep_source else 2 * count

    def start(self) -> None:
        pass

    def step(self) -> StepResult:
        plan = self._plan
        count = len(plan.instances)
        if self._position < count:
            self._copy(plan.instances[self._position])
        elif self._position < self._steps():
            instance_id = plan.instances[self._position - count]
            if instance_id not in self._failed:
                self._mover.delete_original(instance_id)
        self._position += 1
        return StepResult.done() if self._position >= self._steps() else StepResult.proceed()

    def _copy(self, instance_id: str) -> None:
        plan = self._plan
        try:
            study = self._mover.copy(instance_id, plan.relocation, plan.reception)
        except PharosError:
            if not plan.permissive:
                raise
            self._failed.append(instance_id)
            return
        if self._target_study is None:
            self._target_study = study

    def stop(self, reason: StopReason) -> None:
        pass

    def reset(self) -> None:
        # Copies already stored are found again (same new UIDs). Once originals are being
        # deleted, every copy is stored: a resubmission only finishes the deletion.
        count = len(self._plan.instances)
        if self._position > count:
            self._position = count  # the failed copies stay failed: their originals are kept
        else:
            self._position, self._failed = 0, []

    def progress(self) -> float:
        steps = self._steps()
        return 1.0 if not steps else min(1.0, self._position / steps)

    def public_content(self) -> dict[str, Any]:
        content: dict[str, Any] = {
            "Description": DESCRIPTION,
            "FailedInstancesCount": len(self._failed),
            "InstancesCount": len(self._plan.instances),
        }
        if self._target_study is not None:
            content["TargetStudy"] = self._target_study
        if self._plan.job_type == SPLIT_JOB:
            content["TargetStudyUID"] = self._plan.relocation.study_uid
        return content

    def serialize(self) -> dict[str, Any]:
        plan = self._plan
        relocation = plan.relocation
        return {
            "Description": DESCRIPTION,
            "Permissive": plan.permissive,
            "Position": self._position,
            "Instances": plan.instances,
            "FailedInstances": self._failed,
            "KeepSource": plan.keep_source,
            "SourceStudy": plan.source_study,
            "TargetStudy": self._target_study,
            "TargetStudyUID": relocation.study_uid,
            "SeriesUIDMap": plan.series_uid_map,
            "UIDMap": dict(relocation.uid_map),
            "Replacements": relocation.replacements.to_json_dict(),
            "Removals": [format_tag(tag) for tag in sorted(relocation.removals)],
            "Origin": dataclasses.asdict(plan.reception),
        }

    def output(self, key: str) -> JobOutput | None:
        return None


def job_factory(mover: Mover, job_type: str) -> Callable[[dict[str, Any]], Job]:
    """Re-creates a saved job of this type (the jobs engine's registry)."""

    def create(value: dict[str, Any]) -> Job:
        relocation = Relocation(
            study_uid=str(value["TargetStudyUID"]),
            uid_map={str(k): str(v) for k, v in value["UIDMap"].items()},
            replacements=Dataset.from_json(value["Replacements"]),
            removals=frozenset(parse_tag(str(tag)) for tag in value["Removals"]),
        )
        target = value["TargetStudy"]
        source = value["SourceStudy"]
        plan = MovePlan(
            job_type=job_type,
            instances=[str(i) for i in value["Instances"]],
            relocation=relocation,
            series_uid_map={str(k): str(v) for k, v in value["SeriesUIDMap"].items()},
            keep_source=bool(value["KeepSource"]),
            permissive=bool(value["Permissive"]),
            reception=Reception(**value["Origin"]),
            source_study=None if source is None else str(source),
            target_study=None if target is None else str(target),
        )
        failed = [str(i) for i in value["FailedInstances"]]
        return StudyMoveJob(mover, plan, int(value["Position"]), failed)

    return create
