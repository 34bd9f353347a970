"""DicomModalityStore and DicomMoveScu jobs, stepped by hand over a recording DICOM client:
what each step sends, Orthanc's content, failures, and re-creation from the serialized state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from pharos.model.errors import ErrorCode, PharosError
from pharos.model.jobs import Job, StepStatus, StopReason, Submission
from pharos.model.levels import Level
from pharos.services.dicom_jobs import GET_JOB, MOVE_JOB, STORE_JOB, DicomJobs
from tests.dicomgen import make_dataset
from tests.services.test_remote_dicom import World, answer, body, stored_study


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    created = World(tmp_path)
    yield created
    created.close()


def jobs_of(world: World) -> DicomJobs:
    return DicomJobs(world.remote, world.queries)


def submission(result: dict[str, Any] | Submission) -> Submission:
    assert isinstance(result, Submission)
    return result


def run(job: Job, steps: int = 100) -> list[StepStatus]:
    job.start()
    statuses = []
    for _ in range(steps):
        statuses.append(job.step().status)
        if statuses[-1] is not StepStatus.CONTINUE:
            break
    job.stop(StopReason.SUCCESS)
    return statuses


def recreated(jobs: DicomJobs, job: Job) -> Job:
    # through JSON text, as saved in the index
    return jobs.factories()[job.job_type](orjson.loads(orjson.dumps(job.serialize())))


def test_synchronous_store_is_unchanged(world: World) -> None:
    study, _ = stored_study(world)
    result = jobs_of(world).store("pacs", body({"Resources": [study], "Synchronous": True}))
    assert isinstance(result, dict) and result["InstancesCount"] == 2
    assert len(world.client.calls) == 1  # one association for everything


def test_store_job_sends_one_instance_per_step_and_resumes(world: World) -> None:
    study, instances = stored_study(world, 3)
    jobs = jobs_of(world)
    raw = body({"Resources": [study], "Synchronous": False, "Priority": 4, "MoveOriginatorID": 9})
    made = submission(jobs.store("pacs", raw))
    job = made.job
    assert (made.priority, job.job_type, job.progress()) == (4, STORE_JOB, 0.0)
    assert world.client.calls == []  # nothing sent before the job runs
    job.start()
    assert job.step().status is StepStatus.CONTINUE
    assert [len(call[2].instances) for call in world.client.calls] == [1]
    assert world.client.calls[0][2].move_originator_id == 9
    again = recreated(jobs, job)  # e.g. after a restart
    assert again.progress() == pytest.approx(1 / 3)
    assert run(again)[-1] is StepStatus.SUCCESS
    sent = [call[2].instances[0].ref.public_id for call in world.client.calls]
    assert sorted(sent) == sorted(instances)
    assert again.public_content() == {
        "Description": "REST API",
        "FailedInstancesCount": 0,
        "InstancesCount": 3,
        "LocalAet": "MINE",
        "MoveOriginatorAET": "PHAROS",
        "MoveOriginatorID": 9,
        "ParentResources": [study],
        "RemoteAet": "PACS",
    }
    assert again.progress() == 1.0 and again.output("archive") is None
    again.reset()
    assert again.progress() == 0.0


def test_store_job_failures(world: World) -> None:
    study, instances = stored_study(world, 3)
    jobs = jobs_of(world)
    world.client.refused = {"1.2.3.4.5.1"}
    strict = submission(jobs.store("pacs", body({"Resources": [study], "Asynchronous": True})))
    strict.job.start()
    with pytest.raises(PharosError) as info:
        for _ in range(3):
            strict.job.step()
    assert info.value.code is ErrorCode.NETWORK_PROTOCOL and "1.2.3.4.5.1" in str(
        info.value.details
    )
    raw = body({"Resources": [study], "Asynchronous": True, "Permissive": True})
    permissive = submission(jobs.store("pacs", raw)).job
    assert run(permissive)[-1] is StepStatus.SUCCESS
    content = permissive.public_content()
    assert (content["InstancesCount"], content["FailedInstancesCount"]) == (3, 1)
    assert content["FailedInstances"] == [instances[1]]


def test_store_job_of_a_deleted_instance(world: World) -> None:
    study, instances = stored_study(world, 2)
    jobs = jobs_of(world)
    strict = submission(jobs.store("pacs", body({"Resources": [study], "Asynchronous": True})))
    permissive = submission(
        jobs.store("pacs", body({"Resources": [study], "Asynchronous": True, "Permissive": True}))
    )
    ref = world.index.lookup(instances[0])
    assert ref is not None
    world.index.delete_resource(ref)
    strict.job.start()
    with pytest.raises(PharosError) as info:
        strict.job.step()
    assert info.value.code is ErrorCode.UNKNOWN_RESOURCE
    assert run(permissive.job)[-1] is StepStatus.SUCCESS
    assert permissive.job.public_content()["FailedInstances"] == [instances[0]]


def test_store_job_bad_requests_send_nothing(world: World) -> None:
    jobs = jobs_of(world)
    for raw in (
        body({"Resources": ["0" * 8 + ("-" + "0" * 8) * 4], "Synchronous": False}),
        body({"Resources": [], "Synchronous": False, "Priority": "high"}),
    ):
        with pytest.raises(PharosError):
            jobs.store("pacs", raw)
    with pytest.raises(PharosError) as info:
        jobs.store("nope", body({"Resources": [], "Synchronous": False}))
    assert info.value.code is ErrorCode.INEXISTENT_ITEM
    assert world.client.calls == []


def test_move_job_one_identifier_per_step(world: World) -> None:
    jobs = jobs_of(world)
    raw = body(
        {
            "Level": "Series",
            "Resources": [{"SeriesInstanceUID": "1.1"}, {"SeriesInstanceUID": "1.2"}],
            "TargetAet": "ELSEWHERE",
            "Synchronous": False,
        }
    )
    job = submission(jobs.move("pacs", raw)).job
    assert job.job_type == MOVE_JOB
    job.start()
    job.step()
    again = recreated(jobs, job)
    assert run(again)[-1] is StepStatus.SUCCESS
    moves = [call[2] for call in world.client.calls]
    assert [m.identifiers[0].SeriesInstanceUID for m in moves] == ["1.1", "1.2"]
    assert {m.target_aet for m in moves} == {"ELSEWHERE"}
    assert moves[1].identifiers[0].QueryRetrieveLevel == "SERIES"
    content = again.public_content()
    assert (content["TargetAet"], content["RemoteAet"], content["LocalAet"]) == (
        "ELSEWHERE",
        "PACS",
        "MINE",
    )
    assert [q["0020,000e"] for q in content["Query"]] == ["1.1", "1.2"]
    assert jobs.move("pacs", body({"Level": "Series", "Resources": []})) == {}


def test_retrieve_of_query_answers_as_a_job(world: World) -> None:
    world.client.find_answers = [
        answer(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2"),
        answer(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.3"),
    ]
    jobs = jobs_of(world)
    query_id = world.queries.query("pacs", body({"Level": "Study"}))["ID"]
    made = submission(
        jobs.retrieve(query_id, None, body({"TargetAet": "T", "Asynchronous": True, "Priority": 2}))
    )
    assert made.priority == 2
    assert run(made.job)[-1] is StepStatus.SUCCESS
    moves = [call[2] for call in world.client.calls if call[0] == "move"]
    assert [m.identifiers[0].StudyInstanceUID for m in moves] == ["1.2", "1.3"]
    one = submission(jobs.retrieve(query_id, 1, body({"Synchronous": False}))).job
    assert one.public_content()["Query"] == [{"0008,0052": "STUDY", "0020,000d": "1.3"}]
    with pytest.raises(PharosError):
        jobs.retrieve(query_id, 5, body({"Synchronous": False}))


def test_get_job_stores_what_each_step_receives(world: World) -> None:
    jobs = jobs_of(world)
    world.client.to_send = [make_dataset(sop_uid="1.2.3.7")]
    raw = body(
        {
            "Level": "Instance",
            "Resources": [{"SOPInstanceUID": "1.2.3.7"}, {"SOPInstanceUID": "1.2.3.8"}],
            "Synchronous": False,
            "Priority": -1,
        }
    )
    made = submission(jobs.get("pacs", raw))
    assert (made.job.job_type, made.priority) == (GET_JOB, -1)
    made.job.start()
    made.job.step()
    again = recreated(jobs, made.job)
    assert again.job_type == GET_JOB and again.progress() == 0.5
    assert run(again)[-1] is StepStatus.SUCCESS
    gets = [call[2] for call in world.client.calls if call[0] == "get"]
    assert [g.identifiers[0].SOPInstanceUID for g in gets] == ["1.2.3.7", "1.2.3.8"]
    assert len(world.index.list_public_ids(Level.INSTANCE, 0, None)) == 1  # the same, twice
    content = again.public_content()
    assert set(content) == {"Description", "LocalAet", "Query", "RemoteAet"}
    sync = jobs.get("pacs", body({"Level": "Instance", "Resources": []}))
    assert sync == {"Description": "REST API", "LocalAet": "MINE", "Query": [], "RemoteAet": "PACS"}
