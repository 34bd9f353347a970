"""Modification and anonymization as jobs (Orthanc's `ResourceModification` job type): one
instance per step. The saved state holds the request as received, the instances, the step,
the outputs and the identifier map, so that a job resumed after a restart gives the rest of
its instances the same new UIDs (and the same anonymized patient) as the first ones."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pharos.dicom import modification as mod
from pharos.index.base import Reception
from pharos.model.ids import ResourceIds
from pharos.model.jobs import Job, JobOutput, StepResult, StopReason, Submission
from pharos.model.levels import Level
from pharos.services.modify import ModifyPlan, ModifyService, ModifyState, Source
from pharos.services.remote_requests import RunMode

MODIFICATION_JOB = "ResourceModification"


class ModificationJob:
    def __init__(self, service: ModifyService, plan: ModifyPlan, state: ModifyState | None = None):
        self._service = service
        self._plan = plan
        self._state = state
        # Restored mid-way: the first steps may have been done already (see skip_processed).
        self._replaying = state is not None

    @property
    def job_type(self) -> str:
        return MODIFICATION_JOB

    def start(self) -> None:
        if self._state is None:  # the first start; a resumed job keeps its map
            self._state = self._service.start(self._plan)

    def step(self) -> StepResult:
        state = self._started()
        if state.position >= len(self._plan.instances):
            return StepResult.done()
        if self._replaying:
            if self._service.skip_processed(self._plan, state):
                return StepResult.proceed()
            self._replaying = False
        self._service.step(self._plan, state)
        return StepResult.proceed()

    def _started(self) -> ModifyState:
        if self._state is None:
            self._state = self._service.start(self._plan)
        return self._state

    def stop(self, reason: StopReason) -> None:
        pass

    def reset(self) -> None:
        self._state = None  # resubmitted: a new operation, new identifiers
        self._replaying = False

    def progress(self) -> float:
        count = len(self._plan.instances)
        done = 0 if self._state is None else self._state.position
        return 1.0 if not count else done / count

    def public_content(self) -> dict[str, Any]:
        state = self._state or ModifyState()
        content = self._service.content(self._plan, state)
        finished = self._state is not None and state.position >= len(self._plan.instances)
        if finished and (self._plan.bulk or state.outputs):
            content.update(self._service.answer(self._plan, state))
        return content

    def serialize(self) -> dict[str, Any]:
        plan, state = self._plan, self._state
        value: dict[str, Any] = {
            "Request": plan.body,
            "IsAnonymization": plan.anonymize,
            "Bulk": plan.bulk,
            "Level": None if plan.bulk_level is None else plan.bulk_level.title,
            "Sources": [[s.public_id, s.level.title] for s in plan.sources],
            "Instances": [[i, n] for i, n in plan.instances],
            "Origin": _reception_json(plan.reception),
            "Started": state is not None,
        }
        if state is not None:
            value["Position"] = state.position
            value["Identifiers"] = state.ids.to_json()
            value["Outputs"] = {key: list(ids.as_tuple()) for key, ids in state.outputs.items()}
            value["FailedInstances"] = list(state.failed)
        return value

    def output(self, key: str) -> JobOutput | None:
        return None


def _reception_json(reception: Reception) -> dict[str, Any]:
    return {
        "Origin": reception.origin,
        "RemoteAet": reception.remote_aet,
        "RemoteIp": reception.remote_ip,
        "CalledAet": reception.called_aet,
        "HttpUsername": reception.http_username,
    }


def _reception_of(value: dict[str, Any]) -> Reception:
    return Reception(
        origin=str(value["Origin"]),
        remote_aet=str(value.get("RemoteAet") or ""),
        remote_ip=value.get("RemoteIp"),
        called_aet=value.get("CalledAet"),
        http_username=value.get("HttpUsername"),
    )


class ModifyJobs:
    """Runs the modification routes now, or prepares them as jobs; re-creates saved jobs."""

    def __init__(self, service: ModifyService):
        self.service = service

    def instance_file(self, public_id: str, raw: bytes, anonymize: bool) -> bytes:
        return self.service.instance_file(public_id, raw, anonymize)

    def resource(
        self, level: Level, public_id: str, raw: bytes, anonymize: bool, reception: Reception
    ) -> dict[str, Any] | Submission:
        return self._run(self.service.plan(level, public_id, raw, anonymize, reception))

    def bulk(
        self, raw: bytes, anonymize: bool, reception: Reception
    ) -> dict[str, Any] | Submission:
        return self._run(self.service.bulk_plan(raw, anonymize, reception))

    def _run(self, plan: ModifyPlan) -> dict[str, Any] | Submission:
        if not plan.run.asynchronous:
            return self.service.run(plan)
        return Submission(ModificationJob(self.service, plan), plan.run.priority)

    def factories(self) -> dict[str, Callable[[dict[str, Any]], Job]]:
        return {MODIFICATION_JOB: self.job}

    def job(self, value: dict[str, Any]) -> Job:
        """A saved ResourceModification job, at its step, with its identifier map."""
        body = dict(value["Request"])
        anonymize = bool(value["IsAnonymization"])
        sources = [Source(str(i), Level.parse(str(level))) for i, level in value["Sources"]]
        modifications = {s.level: mod.parse_request(body, s.level, anonymize) for s in sources}
        level = value.get("Level")
        plan = ModifyPlan(
            body=body,
            anonymize=anonymize,
            bulk=bool(value["Bulk"]),
            bulk_level=None if level is None else Level.parse(str(level)),
            sources=sources,
            instances=[(str(i), int(n)) for i, n in value["Instances"]],
            modifications=modifications,
            reception=_reception_of(value["Origin"]),
            run=RunMode(asynchronous=True),
        )
        state = None
        if value.get("Started"):
            outputs = {str(k): ResourceIds(*ids) for k, ids in value["Outputs"].items()}
            state = ModifyState(
                ids=mod.IdentifierMap.from_json(value["Identifiers"]),
                position=int(value["Position"]),
                outputs=outputs,
                failed=[str(i) for i in value["FailedInstances"]],
            )
        return ModificationJob(self.service, plan, state)
