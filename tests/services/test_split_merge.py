"""Split and merge of studies on a real index (SQLite and PostgreSQL) and storage: the copies,
their UIDs and tags, the originals deleted or kept, the jobs stepped, saved and resumed, and
the refused requests that change nothing."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pydicom
import pytest
from pydicom.dataset import Dataset

from pharos.index.base import Reception
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.jobs import Job, StepStatus, Submission
from pharos.model.levels import Level
from pharos.services.deletion import DeletionService
from pharos.services.files import FileService
from pharos.services.options import ServiceOptions
from pharos.services.split_merge import SplitMergeService
from pharos.services.split_merge_jobs import MERGE_JOB, SPLIT_JOB
from pharos.services.store import StoreService
from pharos.storage.filesystem import FileSystemStorage
from tests.dicomgen import make_dataset, to_bytes

REST = Reception(origin="RestApi")


class World:
    def __init__(self, index: SqlIndex, tmp_path: Path):
        self.index = index
        storage = FileSystemStorage(tmp_path / "files")
        self.files = FileService(index, storage)
        self.store = StoreService(index, storage, ServiceOptions())
        self.service = SplitMergeService(
            index, self.files, self.store, DeletionService(index, storage)
        )

    def add(self, ds: Dataset) -> tuple[str, str, str]:
        """Store an instance: (study, series, instance) public IDs."""
        ids = self.store.store(to_bytes(ds), REST).ids
        return ids.study, ids.series, ids.instance

    def study(self, count: int = 2, **tags: Any) -> tuple[str, str, list[str]]:
        """A series of `count` instances: (study, series, instances)."""
        first = make_dataset(instance_number=1, **tags)
        tags = {**tags, "study_uid": first.StudyInstanceUID, "series_uid": first.SeriesInstanceUID}
        found = [self.add(first)]
        found += [self.add(make_dataset(instance_number=i + 2, **tags)) for i in range(count - 1)]
        return found[0][0], found[0][1], [f[2] for f in found]

    def header(self, instance_id: str) -> Dataset:
        ref = self.index.lookup(instance_id)
        assert ref is not None
        return pydicom.dcmread(io.BytesIO(self.files.read_dicom(ref)), force=True)

    def children(self, public_id: str, level: Level) -> list[str]:
        ref = self.index.lookup(public_id)
        assert ref is not None
        return [r.public_id for r in self.index.descendants(ref, level)]

    def exists(self, public_id: str) -> bool:
        return self.index.lookup(public_id) is not None

    def count(self) -> int:
        return self.index.statistics().instances


@pytest.fixture
def world(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    if backend == "sqlite":
        index = open_sqlite_index(tmp_path / "db")
    else:
        index = open_postgres_index(
            postgres_url(request.getfixturevalue("postgres_databases").create())
        )
    created = World(index, tmp_path)
    yield created
    created.store.close()
    index.close()


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def done(result: dict[str, Any] | Submission) -> dict[str, Any]:
    assert isinstance(result, dict)
    return result


def refused(call: Any, *args: Any) -> PharosError:
    with pytest.raises(PharosError) as info:
        call(*args)
    return info.value


def run(job: Job) -> None:
    job.start()
    while job.step().status is StepStatus.CONTINUE:
        pass


def substitute(value: Any, names: dict[str, str]) -> Any:
    """`value` with the placeholder strings of `names` replaced by their IDs."""
    if isinstance(value, dict):
        return {k: substitute(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, names) for v in value]
    return names.get(value, value) if isinstance(value, str) else value


def recreated(service: SplitMergeService, job: Job) -> Job:
    # through JSON text, as the jobs engine saves it in the index
    return service.factories()[job.job_type](orjson.loads(orjson.dumps(job.serialize())))


# -- split ---------------------------------------------------------------------------------


def test_split_moves_a_series_into_a_new_study(world: World) -> None:
    study, series, instances = world.study(2)
    ds = make_dataset(series_uid=None, study_uid=world.header(instances[0]).StudyInstanceUID)
    _, other_series, _ = world.add(ds)
    request = {
        "Series": [series],
        "Replace": {"PatientName": "HELLO"},
        "Remove": ["AccessionNumber"],
    }
    answer = done(world.service.split(study, body(request), REST))
    target = answer["TargetStudy"]
    assert answer == {
        "Description": "REST API",
        "FailedInstancesCount": 0,
        "InstancesCount": 2,
        "TargetStudy": target,
        "TargetStudyUID": answer["TargetStudyUID"],
    }
    assert not any(world.exists(i) for i in instances) and not world.exists(series)
    assert world.children(study, Level.SERIES) == [other_series]  # the rest stays
    moved = world.children(target, Level.INSTANCE)
    assert len(moved) == 2 and world.count() == 3
    headers = [world.header(i) for i in moved]
    originals = {world.header(i).SOPInstanceUID for i in world.children(study, Level.INSTANCE)}
    for header in headers:
        assert header.StudyInstanceUID == answer["TargetStudyUID"]
        assert header.PatientName == "HELLO" and "AccessionNumber" not in header
        assert header.StudyDescription == "Chest"
        assert header.SOPInstanceUID not in originals
    assert len({h.SeriesInstanceUID for h in headers}) == 1  # one new series per source series
    assert sorted(h.InstanceNumber for h in headers) == [1, 2]


def test_split_of_instances_keeping_the_source(world: World) -> None:
    study, series, instances = world.study(3)
    request = {"Instances": instances[:2], "KeepSource": True}
    answer = done(world.service.split(study, body(request), REST))
    assert world.children(series, Level.INSTANCE) == instances  # all kept
    moved = world.children(answer["TargetStudy"], Level.INSTANCE)
    assert len(moved) == 2 and world.count() == 5
    old = world.header(instances[0])
    new = [world.header(i) for i in moved]
    assert {h.SeriesInstanceUID for h in new} != {old.SeriesInstanceUID}
    assert {h.PatientID for h in new} == {old.PatientID}


def test_split_references_follow_the_moved_instances(world: World) -> None:
    study, series, instances = world.study(1)
    first = world.header(instances[0])
    key = make_dataset(study_uid=first.StudyInstanceUID, series_uid=first.SeriesInstanceUID)
    item = Dataset()
    item.ReferencedSOPClassUID = first.SOPClassUID
    item.ReferencedSOPInstanceUID = first.SOPInstanceUID
    key.ReferencedImageSequence = [item]
    world.add(key)
    answer = done(world.service.split(study, body({"Series": [series]}), REST))
    new = [world.header(i) for i in world.children(answer["TargetStudy"], Level.INSTANCE)]
    by_uid = {h.SOPInstanceUID: h for h in new}
    referencing = [h for h in new if "ReferencedImageSequence" in h]
    assert len(referencing) == 1
    assert referencing[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID in by_uid


@pytest.mark.parametrize(
    ("request_body", "code"),
    [
        ({}, ErrorCode.BAD_REQUEST),
        ({"Series": []}, ErrorCode.BAD_REQUEST),
        ({"Series": "x"}, ErrorCode.BAD_FILE_FORMAT),
        ({"Series": ["ffffffff-ffffffff-ffffffff-ffffffff-ffffffff"]}, ErrorCode.UNKNOWN_RESOURCE),
        ({"Series": ["SERIES"], "Remove": ["SeriesDescription"]}, ErrorCode.PARAMETER_OUT_OF_RANGE),
        (
            {"Series": ["SERIES"], "Replace": {"StudyInstanceUID": "1.2"}},
            ErrorCode.PARAMETER_OUT_OF_RANGE,
        ),
        ({"Series": ["SERIES"], "Replace": {"PatientName": 3}}, ErrorCode.BAD_FILE_FORMAT),
        ({"Series": ["SERIES"], "Replace": {"NoSuchTag": "a"}}, ErrorCode.UNKNOWN_DICOM_TAG),
        (
            {"Series": ["SERIES"], "Replace": {"ReferencedStudySequence": "a"}},
            ErrorCode.PARAMETER_OUT_OF_RANGE,
        ),
        ({"Series": ["SERIES"], "KeepSource": "yes"}, ErrorCode.BAD_FILE_FORMAT),
        ({"Series": ["OTHER"]}, ErrorCode.UNKNOWN_RESOURCE),
        ({"Instances": ["OTHER_INSTANCE"]}, ErrorCode.UNKNOWN_RESOURCE),
        ({"Instances": ["SERIES"]}, ErrorCode.UNKNOWN_RESOURCE),
    ],
)
def test_bad_split_requests_change_nothing(
    world: World, request_body: dict[str, Any], code: ErrorCode
) -> None:
    study, series, _ = world.study(2)
    _, other_series, other_instances = world.study(1)
    names = {"SERIES": series, "OTHER": other_series, "OTHER_INSTANCE": other_instances[0]}
    text = json.dumps(substitute(request_body, names))
    assert refused(world.service.split, study, text.encode(), REST).code is code
    assert world.count() == 3


def test_split_of_an_unknown_study_and_bad_json(world: World) -> None:
    _, series, _ = world.study(1)
    error = refused(world.service.split, series, body({"Series": [series]}), REST)
    assert error.code is ErrorCode.UNKNOWN_RESOURCE
    assert refused(world.service.split, series, b"{", REST).code is ErrorCode.BAD_FILE_FORMAT
    assert world.count() == 1


# -- merge ---------------------------------------------------------------------------------


def test_merge_gives_the_target_patient_and_study_tags(world: World) -> None:
    target, _, target_instances = world.study(1, patient_id="P1", AccessionNumber=None)
    source, source_series, source_instances = world.study(
        2, patient_id="P2", patient_name="Other^Patient", StudyDescription="Head"
    )
    answer = done(world.service.merge(target, body({"Resources": [source]}), REST))
    assert answer == {
        "Description": "REST API",
        "FailedInstancesCount": 0,
        "InstancesCount": 2,
        "TargetStudy": target,
    }
    assert not world.exists(source) and not any(world.exists(i) for i in source_instances)
    series = world.children(target, Level.SERIES)
    assert len(series) == 2 and source_series not in series
    reference = world.header(target_instances[0])
    moved = [i for i in world.children(target, Level.INSTANCE) if i not in target_instances]
    for header in (world.header(i) for i in moved):
        assert header.PatientID == "P1" and header.PatientName == reference.PatientName
        assert header.StudyInstanceUID == reference.StudyInstanceUID
        assert header.StudyDescription == "Chest"
        assert "AccessionNumber" not in header  # the target has none
        assert header.SeriesDescription == "Axial"  # series tags kept


def test_merge_copies_the_sequences_of_the_target_modules(world: World) -> None:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "1", "L", "Procedure"
    target, _, _ = world.study(1, ProcedureCodeSequence=[code])
    other = Dataset()
    other.PatientID = "OLD-ID"
    source, _, _ = world.study(1, patient_id="P2", OtherPatientIDsSequence=[other])
    done(world.service.merge(target, body({"Resources": [source]}), REST))
    headers = [world.header(i) for i in world.children(target, Level.INSTANCE)]
    assert all(h.ProcedureCodeSequence[0].CodeMeaning == "Procedure" for h in headers)
    assert not any("OtherPatientIDsSequence" in h for h in headers)  # the target has none


def test_merge_of_series_and_instances_keeping_the_source(world: World) -> None:
    target, _, _ = world.study(1)
    _, series_a, _ = world.study(2, patient_id="P2")
    _, _, instances_b = world.study(2, patient_id="P3")
    request = {"Resources": [series_a, instances_b[0], series_a], "KeepSource": True}
    answer = done(world.service.merge(target, body(request), REST))
    assert answer["InstancesCount"] == 3  # duplicates counted once
    assert world.count() == 5 + 3
    assert len(world.children(target, Level.SERIES)) == 3


@pytest.mark.parametrize(
    ("resources", "code"),
    [
        ([], ErrorCode.BAD_REQUEST),
        (None, ErrorCode.BAD_FILE_FORMAT),
        ("TARGET", ErrorCode.BAD_FILE_FORMAT),
        (["TARGET"], ErrorCode.UNKNOWN_RESOURCE),
        (["TARGET_SERIES"], ErrorCode.UNKNOWN_RESOURCE),
        (["TARGET_INSTANCE"], ErrorCode.UNKNOWN_RESOURCE),
        (["PATIENT"], ErrorCode.UNKNOWN_RESOURCE),
        (["SOURCE", "nonsense"], ErrorCode.UNKNOWN_RESOURCE),
        ([3], ErrorCode.BAD_FILE_FORMAT),
    ],
)
def test_bad_merge_requests_change_nothing(world: World, resources: Any, code: ErrorCode) -> None:
    target, target_series, target_instances = world.study(1)
    source, _, _ = world.study(1, patient_id="P2")
    patient = world.index.ancestor(world.index.lookup(source), Level.PATIENT)  # type: ignore[arg-type]
    names = {
        "TARGET": target,
        "TARGET_SERIES": target_series,
        "TARGET_INSTANCE": target_instances[0],
        "PATIENT": patient.public_id,
        "SOURCE": source,
    }
    request = {} if resources is None else {"Resources": substitute(resources, names)}
    assert refused(world.service.merge, target, body(request), REST).code is code
    assert world.count() == 2


def test_merge_into_an_unknown_study(world: World) -> None:
    source, series, _ = world.study(1)
    error = refused(world.service.merge, series, body({"Resources": [source]}), REST)
    assert error.code is ErrorCode.UNKNOWN_RESOURCE


# -- jobs ----------------------------------------------------------------------------------


def test_split_job_resumes_from_its_saved_state_without_duplicates(world: World) -> None:
    study, series, _ = world.study(3)
    made = world.service.split(
        study, body({"Series": [series], "Asynchronous": True, "Priority": 3}), REST
    )
    assert isinstance(made, Submission) and made.priority == 3
    job = made.job
    assert job.job_type == SPLIT_JOB and world.count() == 3  # nothing before it runs
    job.start()
    saved = job.serialize()  # saved before a step that then ran (a crash right after it)
    assert job.step().status is StepStatus.CONTINUE
    assert world.count() == 4
    again = world.service.factories()[SPLIT_JOB](orjson.loads(orjson.dumps(saved)))
    run(again)
    assert world.count() == 3  # the step done twice stored its copy once
    content = again.public_content()
    assert content["InstancesCount"] == 3 and content["FailedInstancesCount"] == 0
    assert content["TargetStudyUID"] == saved["TargetStudyUID"]
    assert len(world.children(content["TargetStudy"], Level.INSTANCE)) == 3
    assert not world.exists(study)  # its only series moved: the source study is gone
    assert again.progress() == 1.0


def test_merge_job_survives_a_restart_in_its_deletion_phase(world: World) -> None:
    target, _, _ = world.study(1)
    source, _, _ = world.study(2, patient_id="P2")
    made = world.service.merge(target, body({"Resources": [source], "Synchronous": False}), REST)
    assert isinstance(made, Submission)
    job = made.job
    assert job.job_type == MERGE_JOB
    job.start()
    for _ in range(3):  # two copies, one original deleted
        assert job.step().status is StepStatus.CONTINUE
    assert job.progress() == pytest.approx(3 / 4)
    again = recreated(world.service, job)
    run(again)
    assert world.count() == 3 and not world.exists(source)
    assert again.public_content()["TargetStudy"] == target


def test_no_original_is_deleted_when_a_copy_fails(world: World) -> None:
    study, series, instances = world.study(3)
    made = world.service.split(study, body({"Series": [series], "Asynchronous": True}), REST)
    assert isinstance(made, Submission)
    ref = world.index.lookup(instances[1])
    assert ref is not None
    world.index.delete_resource(ref)  # removed after the job was issued
    job = made.job
    job.start()
    assert job.step().status is StepStatus.CONTINUE
    error = refused(job.step)
    assert error.code is ErrorCode.UNKNOWN_RESOURCE
    assert world.exists(instances[0]) and world.exists(instances[2])  # originals kept


def test_permissive_split_keeps_the_originals_of_failed_copies(world: World) -> None:
    study, series, instances = world.study(3)
    request = {"Series": [series], "Asynchronous": True, "Permissive": True}
    made = world.service.split(study, body(request), REST)
    assert isinstance(made, Submission)
    ref = world.index.lookup(instances[1])
    assert ref is not None
    world.index.delete_resource(ref)
    run(made.job)
    content = made.job.public_content()
    assert (content["InstancesCount"], content["FailedInstancesCount"]) == (3, 1)
    assert len(world.children(content["TargetStudy"], Level.INSTANCE)) == 2
    assert not world.exists(instances[0]) and not world.exists(instances[2])


def test_resubmitted_job_in_its_deletion_phase_only_finishes_deleting(world: World) -> None:
    study, series, instances = world.study(2)
    made = world.service.split(study, body({"Series": [series], "Asynchronous": True}), REST)
    assert isinstance(made, Submission)
    job = made.job
    job.start()
    for _ in range(3):
        job.step()
    job.reset()
    run(job)
    assert world.count() == 2 and not any(world.exists(i) for i in instances)
