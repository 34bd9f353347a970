"""The DICOM client operations as jobs (`"Synchronous": false` or `"Asynchronous": true`):
Orthanc's `DicomModalityStore` (C-STORE of local instances, one instance per step),
`DicomMoveScu` (C-MOVE, one identifier per step) and `DicomGetScu` (C-GET, Orthanc 1.12).

Each step goes through `RemoteDicomService`, whose DICOM client keeps the association open
between steps (`DicomAssociationCloseDelay`). The serialized state names the instances by
public ID and the peer by its full definition, so a job re-created after a restart resumes at
its step even if the modality was since redefined.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from pydicom.uid import generate_uid

from pharos.dicom.storage_commitment import Reference
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.jobs import Job, JobOutput, StepResult, StopReason, Submission
from pharos.model.levels import Level
from pharos.services.dicom_client import Association
from pharos.services.modalities import parse_modality
from pharos.services.remote_dicom import (
    MovePlan,
    RemoteDicomService,
    StorePlan,
    get_content,
    move_content,
    store_content,
)
from pharos.services.remote_modalities import modality_json
from pharos.services.remote_queries import QueryService
from pharos.services.remote_requests import RunMode
from pharos.services.storage_commitment import references_of

STORE_JOB = "DicomModalityStore"
MOVE_JOB = "DicomMoveScu"
GET_JOB = "DicomGetScu"


def _association_json(association: Association) -> dict[str, Any]:
    return {
        "Modality": association.modality.name,
        "Definition": modality_json(association.modality),
        "LocalAet": association.local_aet,
        "Timeout": association.timeout,
    }


def _association_of(value: dict[str, Any]) -> Association:
    modality, _ = parse_modality(str(value["Modality"]), value["Definition"])
    timeout = value["Timeout"]
    return Association(modality, str(value["LocalAet"]), None if timeout is None else timeout)


def _tag_key(tag: int) -> str:
    return f"{tag >> 16:04x},{tag & 0xFFFF:04x}"


def _tag_of(key: str) -> int:
    group, element = key.split(",")
    return (int(group, 16) << 16) | int(element, 16)


class StoreJob:
    """DicomModalityStore: the instances of the plan, one per step; with StorageCommitment,
    the request for the instances sent once they all went."""

    def __init__(
        self,
        remote: RemoteDicomService,
        plan: StorePlan,
        instance_ids: list[str],
        position: int = 0,
        failed: list[str] | None = None,
        sent: list[Reference] | None = None,
    ):
        self._remote = remote
        self._plan = dataclasses.replace(plan, instances=[])  # resolved again at each step
        self._ids = instance_ids
        self._position = position
        self._failed = list(failed or [])
        self._sent = list(sent or [])  # what the storage commitment request names

    @property
    def job_type(self) -> str:
        return STORE_JOB

    def start(self) -> None:
        pass  # the DICOM client opens (or reuses) the association at the first C-STORE

    def step(self) -> StepResult:
        if self._position >= len(self._ids):
            self._remote.commit_sent(self._plan, self._sent)
            self._remote.stored(self._plan)
            return StepResult.done()
        public_id = self._ids[self._position]
        found = self._remote.instances([public_id])
        if not found:
            if not self._plan.permissive:
                raise PharosError(
                    ErrorCode.UNKNOWN_RESOURCE,
                    f"Instance {public_id} was deleted before it could be sent",
                )
            self._failed.append(public_id)
        else:
            refused = self._remote.send(self._plan, found)
            if refused and not self._plan.permissive:
                raise self._remote.store_failure(self._plan, refused, len(self._ids))
            if refused:
                self._failed.append(public_id)
            else:
                self._sent.extend(references_of(found))
        self._position += 1
        return StepResult.proceed()

    def stop(self, reason: StopReason) -> None:
        pass  # idle associations are closed by the DICOM client after their delay

    def reset(self) -> None:
        self._position, self._failed, self._sent = 0, [], []
        if self._plan.transaction_uid is not None:
            # A transaction UID is not reused once reported (PS3.4 J.3.3), as Orthanc.
            self._plan = dataclasses.replace(self._plan, transaction_uid=generate_uid(prefix=None))

    def progress(self) -> float:
        return 1.0 if not self._ids else self._position / len(self._ids)

    def public_content(self) -> dict[str, Any]:
        content = store_content(self._plan, len(self._ids), len(self._failed))
        if self._failed:
            content["FailedInstances"] = list(self._failed)
        return content

    def serialize(self) -> dict[str, Any]:
        plan = self._plan
        return {
            "Association": _association_json(plan.association),
            "ParentResources": plan.resources,
            "Instances": self._ids,
            "Position": self._position,
            "FailedInstances": self._failed,
            "Permissive": plan.permissive,
            "MoveOriginatorAet": plan.move_originator_aet,
            "MoveOriginatorID": plan.move_originator_id,
            "StorageCommitmentTransactionUID": plan.transaction_uid,
            "Sent": [[ref.sop_class_uid, ref.sop_instance_uid] for ref in self._sent],
        }

    def output(self, key: str) -> JobOutput | None:
        return None


class MoveJob:
    """DicomMoveScu: one C-MOVE per identifier of the plan, one per step."""

    def __init__(self, remote: RemoteDicomService, plan: MovePlan, position: int = 0):
        self._remote = remote
        self._plan = plan
        self._position = position

    @property
    def job_type(self) -> str:
        return MOVE_JOB

    def start(self) -> None:
        pass

    def step(self) -> StepResult:
        plan = self._plan
        if self._position >= len(plan.keys):
            return StepResult.done()
        identifier = plan.identifier(self._position)
        self._remote.move(plan.association, plan.level, [identifier], plan.target_aet)
        self._position += 1
        return StepResult.proceed()

    def stop(self, reason: StopReason) -> None:
        pass

    def reset(self) -> None:
        self._position = 0

    def progress(self) -> float:
        count = len(self._plan.keys)
        return 1.0 if not count else self._position / count

    def public_content(self) -> dict[str, Any]:
        return move_content(self._plan)

    def serialize(self) -> dict[str, Any]:
        plan = self._plan
        return {
            "Association": _association_json(plan.association),
            "Level": plan.level.title,
            "Keys": [{_tag_key(tag): value for tag, value in keys.items()} for keys in plan.keys],
            "TargetAet": plan.target_aet,
            "Query": plan.query,
            "Position": self._position,
        }

    def output(self, key: str) -> JobOutput | None:
        return None


class GetJob(MoveJob):
    """DicomGetScu: one C-GET per identifier, the instances received stored here."""

    @property
    def job_type(self) -> str:
        return GET_JOB

    def step(self) -> StepResult:
        plan = self._plan
        if self._position >= len(plan.keys):
            return StepResult.done()
        self._remote.get(plan, [plan.identifier(self._position)])
        self._position += 1
        return StepResult.proceed()

    def public_content(self) -> dict[str, Any]:
        return get_content(self._plan)


class DicomJobs:
    """Runs the DICOM client routes now, or prepares them as jobs; re-creates saved jobs."""

    def __init__(self, remote: RemoteDicomService, queries: QueryService):
        self._remote = remote
        self._queries = queries

    def store(self, name: str, raw: bytes) -> dict[str, Any] | Submission:
        """POST /modalities/{id}/store."""
        plan = self._remote.store_plan(name, raw)
        if not plan.run.asynchronous:
            return self._remote.run_store(plan)
        ids = [instance.ref.public_id for instance in plan.instances]
        return Submission(StoreJob(self._remote, plan, ids), plan.run.priority)

    def move(self, name: str, raw: bytes) -> dict[str, Any] | Submission:
        """POST /modalities/{id}/move."""
        plan = self._remote.move_plan(name, raw)
        if not plan.run.asynchronous:
            return self._remote.run_move(plan)
        return Submission(MoveJob(self._remote, plan), plan.run.priority)

    def get(self, name: str, raw: bytes) -> dict[str, Any] | Submission:
        """POST /modalities/{id}/get."""
        plan = self._remote.get_plan(name, raw)
        if not plan.run.asynchronous:
            return self._remote.run_get(plan)
        return Submission(GetJob(self._remote, plan), plan.run.priority)

    def retrieve(self, query_id: str, index: int | None, raw: bytes) -> dict[str, Any] | Submission:
        """POST /queries/{id}/retrieve and /queries/{id}/answers/{index}/retrieve."""
        plan = self._queries.retrieve_plan(query_id, index, raw)
        if not plan.run.asynchronous:
            return self._queries.run_retrieve(plan)
        return Submission(MoveJob(self._remote, plan), plan.run.priority)

    # -- re-creation of saved jobs ----------------------------------------------------------

    def factories(self) -> dict[str, Callable[[dict[str, Any]], Job]]:
        """{job type: factory} for the jobs engine's registry."""
        return {STORE_JOB: self.store_job, MOVE_JOB: self.move_job, GET_JOB: self.get_job}

    def store_job(self, value: dict[str, Any]) -> Job:
        originator_id = value["MoveOriginatorID"]
        plan = StorePlan(
            association=_association_of(value["Association"]),
            resources=[str(i) for i in value["ParentResources"]],
            instances=[],
            permissive=bool(value["Permissive"]),
            move_originator_aet=value["MoveOriginatorAet"],
            move_originator_id=None if originator_id is None else int(originator_id),
            run=RunMode(asynchronous=True),
            transaction_uid=value.get("StorageCommitmentTransactionUID"),  # absent before
        )
        return StoreJob(
            self._remote,
            plan,
            [str(i) for i in value["Instances"]],
            int(value["Position"]),
            [str(i) for i in value["FailedInstances"]],
            [Reference(str(c), str(i)) for c, i in value.get("Sent", [])],
        )

    def move_job(self, value: dict[str, Any]) -> Job:
        return MoveJob(self._remote, self._move_plan(value), int(value["Position"]))

    def get_job(self, value: dict[str, Any]) -> Job:
        return GetJob(self._remote, self._move_plan(value), int(value["Position"]))

    def _move_plan(self, value: dict[str, Any]) -> MovePlan:
        return MovePlan(
            association=_association_of(value["Association"]),
            level=Level.parse(str(value["Level"])),
            keys=[{_tag_of(k): str(v) for k, v in keys.items()} for keys in value["Keys"]],
            target_aet=str(value["TargetAet"]),
            query=list(value["Query"]),
            run=RunMode(asynchronous=True),
        )
