"""The DICOMweb client's transfers as jobs, with the DICOMweb plugin's job types:
`DicomWebStowClient` (STOW-RS of local instances, one batch per step) and
`DicomWebWadoRetrieveClient` (WADO-RS retrieve, one resource per step).

The serialized state keeps the server's full definition, so that a job re-created after a
restart resumes at its step even if the server was since redefined.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pharos.model.jobs import Job, JobOutput, StepResult, StopReason, Submission
from pharos.services.dicomweb_client import (
    DicomWebClient,
    StowPlan,
    StowProgress,
    WadoPlan,
    WadoProgress,
)
from pharos.services.remote_requests import RunMode
from pharos.services.web_services import parse_web_service, serialize

STOW_JOB = "DicomWebStowClient"
RETRIEVE_JOB = "DicomWebWadoRetrieveClient"
_KIND = "DICOMweb server"


class StowJob:
    def __init__(self, client: DicomWebClient, plan: StowPlan, progress: StowProgress):
        self._client = client
        self._plan = plan
        self._progress = progress

    @property
    def job_type(self) -> str:
        return STOW_JOB

    def start(self) -> None:
        pass

    def step(self) -> StepResult:
        more = self._client.stow_batch(self._plan, self._progress)
        return StepResult.proceed() if more else StepResult.done()

    def stop(self, reason: StopReason) -> None:
        pass  # each step is one whole request

    def reset(self) -> None:
        self._progress = StowProgress()

    def progress(self) -> float:
        count = len(self._plan.instances)
        return 1.0 if not count else self._progress.position / count

    def public_content(self) -> dict[str, Any]:
        return self._progress.content(self._plan)

    def serialize(self) -> dict[str, Any]:
        plan = self._plan
        return {
            "Server": serialize(plan.server),
            "ServerName": plan.server.name,
            "Instances": plan.instances,
            "HttpHeaders": plan.headers,
            "Position": self._progress.position,
            "Size": self._progress.size,
        }

    def output(self, key: str) -> JobOutput | None:
        return None


class RetrieveJob:
    def __init__(self, client: DicomWebClient, plan: WadoPlan, progress: WadoProgress):
        self._client = client
        self._plan = plan
        self._progress = progress

    @property
    def job_type(self) -> str:
        return RETRIEVE_JOB

    def start(self) -> None:
        pass

    def step(self) -> StepResult:
        more = self._client.retrieve_next(self._plan, self._progress)
        return StepResult.proceed() if more else StepResult.done()

    def stop(self, reason: StopReason) -> None:
        pass

    def reset(self) -> None:
        self._progress = WadoProgress()

    def progress(self) -> float:
        count = len(self._plan.uris)
        return 1.0 if not count else self._progress.position / count

    def public_content(self) -> dict[str, Any]:
        return self._progress.content()

    def serialize(self) -> dict[str, Any]:
        plan, progress = self._plan, self._progress
        return {
            "Server": serialize(plan.server),
            "ServerName": plan.server.name,
            "Uris": plan.uris,
            "HttpHeaders": plan.headers,
            "Position": progress.position,
            "Size": progress.size,
            "Received": progress.received,
        }

    def output(self, key: str) -> JobOutput | None:
        return None


class DicomWebClientJobs:
    """The client's transfer routes, run now or prepared as jobs; re-creates saved jobs."""

    def __init__(self, client: DicomWebClient):
        self._client = client

    def stow(self, name: str, raw: bytes) -> dict[str, Any] | Submission:
        plan = self._client.stow_plan(name, raw)
        if not plan.run.asynchronous:
            return self._client.run_stow(plan)
        return Submission(StowJob(self._client, plan, StowProgress()), plan.run.priority)

    def retrieve(self, name: str, raw: bytes) -> dict[str, Any] | Submission:
        return self._wado(self._client.retrieve_plan(name, raw))

    def wado(self, name: str, raw: bytes) -> dict[str, Any] | Submission:
        return self._wado(self._client.wado_plan(name, raw))

    def _wado(self, plan: WadoPlan) -> dict[str, Any] | Submission:
        if not plan.run.asynchronous:
            return self._client.run_retrieve(plan)
        return Submission(RetrieveJob(self._client, plan, WadoProgress()), plan.run.priority)

    def factories(self) -> dict[str, Callable[[dict[str, Any]], Job]]:
        return {STOW_JOB: self.stow_job, RETRIEVE_JOB: self.retrieve_job}

    def stow_job(self, value: dict[str, Any]) -> Job:
        plan = StowPlan(
            server=parse_web_service(str(value["ServerName"]), value["Server"], _KIND),
            instances=[str(i) for i in value["Instances"]],
            headers={str(k): str(v) for k, v in value["HttpHeaders"].items()},
            run=RunMode(asynchronous=True),
        )
        progress = StowProgress(int(value["Position"]), int(value["Size"]))
        return StowJob(self._client, plan, progress)

    def retrieve_job(self, value: dict[str, Any]) -> Job:
        plan = WadoPlan(
            server=parse_web_service(str(value["ServerName"]), value["Server"], _KIND),
            uris=[str(u) for u in value["Uris"]],
            headers={str(k): str(v) for k, v in value["HttpHeaders"].items()},
            run=RunMode(asynchronous=True),
        )
        progress = WadoProgress(
            int(value["Position"]), int(value["Size"]), [str(i) for i in value["Received"]]
        )
        return RetrieveJob(self._client, plan, progress)
