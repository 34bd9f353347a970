"""Sending to an Orthanc peer as a job (`"Synchronous": false`): Orthanc's `OrthancPeerStore`,
one instance per step over one HTTP connection kept between steps.

The serialized state names the instances by public ID and the peer by its full definition
(password included, as Orthanc does), so that a job re-created after a restart resumes at its
step even if the peer was since redefined or deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from pharos.model.jobs import Job, JobOutput, StepResult, StopReason, Submission
from pharos.services.peers import PeerService, PeerStorePlan, store_content
from pharos.services.remote_requests import RunMode
from pharos.services.web_services import parse_web_service, serialize

PEER_STORE_JOB = "OrthancPeerStore"


class PeerStoreJob:
    def __init__(
        self,
        peers: PeerService,
        plan: PeerStorePlan,
        position: int = 0,
        failed: list[str] | None = None,
        size: int = 0,
    ):
        self._peers = peers
        self._plan = plan
        self._position = position
        self._failed = list(failed or [])
        self._size = size
        self._client: httpx.Client | None = None

    @property
    def job_type(self) -> str:
        return PEER_STORE_JOB

    def start(self) -> None:
        pass  # connected at the first step

    def step(self) -> StepResult:
        ids = self._plan.instances
        if self._position >= len(ids):
            return StepResult.done()
        if self._client is None:
            self._client = self._peers.connect(self._plan.peer)
        public_id = ids[self._position]
        sent = self._peers.send(self._client, self._plan, public_id)
        if sent is None:
            self._failed.append(public_id)
        else:
            self._size += sent
        self._position += 1
        return StepResult.proceed()

    def stop(self, reason: StopReason) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def reset(self) -> None:
        self._position, self._failed, self._size = 0, [], 0

    def progress(self) -> float:
        count = len(self._plan.instances)
        return 1.0 if not count else self._position / count

    def public_content(self) -> dict[str, Any]:
        plan = self._plan
        return store_content(plan, len(plan.instances), len(self._failed), self._size, self._failed)

    def serialize(self) -> dict[str, Any]:
        plan = self._plan
        return {
            "Peer": serialize(plan.peer),
            "PeerName": plan.peer.name,
            "ParentResources": plan.resources,
            "Instances": plan.instances,
            "Position": self._position,
            "FailedInstances": self._failed,
            "Size": str(self._size),
            "Permissive": plan.permissive,
            "Compress": plan.compress,
            "Transcode": plan.transcode,
        }

    def output(self, key: str) -> JobOutput | None:
        return None


class PeerJobs:
    """POST /peers/{id}/store now or as a job; re-creates saved jobs."""

    def __init__(self, peers: PeerService):
        self._peers = peers

    def store(self, name: str, raw: bytes) -> dict[str, Any] | Submission:
        plan = self._peers.store_plan(name, raw)
        if not plan.run.asynchronous:
            return self._peers.run_store(plan)
        return Submission(PeerStoreJob(self._peers, plan), plan.run.priority)

    def factories(self) -> dict[str, Callable[[dict[str, Any]], Job]]:
        return {PEER_STORE_JOB: self.store_job}

    def store_job(self, value: dict[str, Any]) -> Job:
        transcode = value.get("Transcode")
        plan = PeerStorePlan(
            peer=parse_web_service(str(value["PeerName"]), value["Peer"], "Orthanc peer"),
            resources=[str(i) for i in value["ParentResources"]],
            instances=[str(i) for i in value["Instances"]],
            transcode=None if transcode is None else str(transcode),
            compress=bool(value["Compress"]),
            permissive=bool(value["Permissive"]),
            run=RunMode(asynchronous=True),
        )
        return PeerStoreJob(
            self._peers,
            plan,
            int(value["Position"]),
            [str(i) for i in value["FailedInstances"]],
            int(value["Size"]),
        )
