"""Modification and anonymization of stored resources, in process, on both index backends:
new resources through the store path, metadata, KeepSource, references kept consistent, the
job (stepped, saved and re-created mid-way), bulk requests, and requests that change nothing."""

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
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from pharos.index.base import Reception
from pharos.index.base_annotations import ANONYMIZED_FROM, MODIFIED_FROM
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.jobs import Job, StepStatus, StopReason, Submission
from pharos.model.levels import Level
from pharos.services.deletion import DeletionService
from pharos.services.files import FileService
from pharos.services.modify import ModifyService
from pharos.services.modify_jobs import MODIFICATION_JOB, ModifyJobs
from pharos.services.options import ServiceOptions
from pharos.services.store import StoreService
from pharos.storage.filesystem import FileSystemStorage
from tests.dicomgen import make_dataset, to_bytes

REST = Reception(origin="RestApi")


class World:
    def __init__(self, index: SqlIndex, tmp_path: Path):
        self.index = index
        storage = FileSystemStorage(tmp_path / "files")
        options = ServiceOptions()
        self.files = FileService(index, storage)
        self.store = StoreService(index, storage, options)
        deletion = DeletionService(index, storage)
        self.jobs = ModifyJobs(ModifyService(index, self.store, self.files, deletion, options))

    def put(self, ds: Dataset) -> str:
        return self.store.store(to_bytes(ds), REST).ids.instance

    def instances(self) -> set[str]:
        return set(self.index.list_public_ids(Level.INSTANCE, 0, None))

    def dataset(self, public_id: str) -> Dataset:
        ref = self.index.lookup(public_id)
        assert ref is not None
        return pydicom.dcmread(io.BytesIO(self.files.read_dicom(ref)))

    def datasets_of(self, level: Level, public_id: str) -> list[Dataset]:
        ref = self.index.lookup(public_id)
        assert ref is not None and ref.level is level
        return [self.dataset(i.public_id) for i in self.index.descendants(ref, Level.INSTANCE)]

    def metadata(self, public_id: str, number: int) -> str | None:
        ref = self.index.lookup(public_id)
        assert ref is not None
        value = self.index.metadata_value(ref, number)
        return None if value is None else value.value


@pytest.fixture
def world(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[World]:
    index: SqlIndex
    if backend == "sqlite":
        index = open_sqlite_index(tmp_path / "db")
    else:
        section = request.getfixturevalue("postgres_databases").create()
        index = open_postgres_index(postgres_url(section), 4)
    created = World(index, tmp_path)
    yield created
    created.store.close()
    index.close()


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def study_with_references(world: World) -> tuple[str, dict[str, Dataset]]:
    """A CT series of two slices sharing a frame of reference, and a second series whose
    instance refers to the first slice (image and series references)."""
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    first = make_dataset(study_uid=study, series_uid=series, instance_number=1)
    second = make_dataset(study_uid=study, series_uid=series, instance_number=2)
    for ds in (first, second):
        ds.FrameOfReferenceUID = frame
    derived = make_dataset(study_uid=study, series_uid=generate_uid(), SeriesNumber=2)
    derived.FrameOfReferenceUID = frame
    image = Dataset()
    image.ReferencedSOPClassUID = first.SOPClassUID
    image.ReferencedSOPInstanceUID = first.SOPInstanceUID
    derived.ReferencedImageSequence = Sequence([image])
    referenced = Dataset()
    referenced.SeriesInstanceUID = series
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = second.SOPInstanceUID
    referenced.ReferencedInstanceSequence = Sequence([inner])
    derived.ReferencedSeriesSequence = Sequence([referenced])
    stored = {}
    for name, ds in (("derived", derived), ("first", first), ("second", second)):
        stored[name] = ds
        world.put(ds)
    ref = world.index.lookup(world.store.store(to_bytes(first), REST).ids.study)
    assert ref is not None
    return ref.public_id, stored


def by_number(datasets: list[Dataset]) -> dict[str, Dataset]:
    names = {(1, 1): "first", (1, 2): "second", (2, 1): "derived"}
    return {names[(int(d.SeriesNumber), int(d.InstanceNumber))]: d for d in datasets}


def check_references(new: dict[str, Dataset], old: dict[str, Dataset]) -> None:
    derived = new["derived"]
    assert (
        derived.ReferencedImageSequence[0].ReferencedSOPInstanceUID == new["first"].SOPInstanceUID
    )
    series = derived.ReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == new["first"].SeriesInstanceUID
    assert series.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == (
        new["second"].SOPInstanceUID
    )
    assert new["first"].SOPInstanceUID != old["first"].SOPInstanceUID


def test_modify_study_keeps_the_source_and_its_references(world: World) -> None:
    study, old = study_with_references(world)
    before = world.instances()
    answer = world.jobs.resource(
        Level.STUDY, study, body({"Replace": {"StudyDescription": "Changed"}}), False, REST
    )
    assert isinstance(answer, dict)
    assert set(answer) == {"ID", "Path", "PatientID", "Type"}
    assert answer["Type"] == "Study" and answer["Path"] == f"/studies/{answer['ID']}"
    assert answer["ID"] != study
    assert before < world.instances()  # originals untouched
    new = by_number(world.datasets_of(Level.STUDY, answer["ID"]))
    assert all(d.StudyDescription == "Changed" for d in new.values())
    assert len({d.StudyInstanceUID for d in new.values()}) == 1
    assert new["first"].StudyInstanceUID != old["first"].StudyInstanceUID
    assert new["first"].FrameOfReferenceUID == old["first"].FrameOfReferenceUID  # not U here
    check_references(new, old)
    assert world.metadata(answer["ID"], MODIFIED_FROM) == study
    # the same patient (its PatientID unchanged): not marked as modified from itself
    assert world.metadata(answer["PatientID"], MODIFIED_FROM) is None
    for public_id in before:
        assert world.dataset(public_id).StudyDescription == "Chest"


def test_anonymize_study_maps_every_reference_once(world: World) -> None:
    study, old = study_with_references(world)
    answer = world.jobs.resource(Level.STUDY, study, b"", True, REST)
    assert isinstance(answer, dict)
    new = by_number(world.datasets_of(Level.STUDY, answer["ID"]))
    check_references(new, old)
    frames = {d.FrameOfReferenceUID for d in new.values()}
    assert len(frames) == 1 and old["first"].FrameOfReferenceUID not in frames
    patients = {d.PatientID for d in new.values()}
    assert len(patients) == 1 and "P1" not in patients
    assert all(d.PatientName == d.PatientID for d in new.values())
    assert all(
        "StudyDescription" not in d and d.PatientIdentityRemoved == "YES" for d in new.values()
    )
    assert world.metadata(answer["ID"], ANONYMIZED_FROM) == study
    assert world.metadata(answer["ID"], MODIFIED_FROM) is None


def test_keep_source_false_deletes_the_originals_after_storing(world: World) -> None:
    study, _ = study_with_references(world)
    before = world.instances()
    request = body({"Replace": {"StudyDescription": "X"}, "KeepSource": False})
    answer = world.jobs.resource(Level.STUDY, study, request, False, REST)
    assert isinstance(answer, dict)
    after = world.instances()
    assert not (before & after) and len(after) == len(before) == 3
    assert world.index.lookup(study) is None


def test_modify_patient_needs_and_uses_a_new_patient_id(world: World) -> None:
    world.put(make_dataset(patient_id="OLD"))
    patient = world.index.list_public_ids(Level.PATIENT, 0, None)[0]
    answer = world.jobs.resource(
        Level.PATIENT, patient, body({"Replace": {"PatientID": "NEW"}}), False, REST
    )
    assert isinstance(answer, dict) and answer["Type"] == "Patient"
    assert answer["ID"] == answer["PatientID"] != patient
    assert world.datasets_of(Level.PATIENT, answer["ID"])[0].PatientID == "NEW"


@pytest.mark.parametrize(
    "request_body",
    [
        b"{not json",
        b"[1, 2]",
        body({"Replace": {"NoSuchTag": "x"}}),
        body({"Replace": {"PatientID": "x"}}),
        body({"Remove": ["StudyInstanceUID"]}),
        body({"Transcode": "1.2.3.4"}),
        body({"KeepSource": "no"}),
        body({"Priority": "high", "Asynchronous": True}),
    ],
)
def test_bad_requests_change_nothing(world: World, request_body: bytes) -> None:
    study, _ = study_with_references(world)
    before = world.instances()
    with pytest.raises(PharosError) as info:
        world.jobs.resource(Level.STUDY, study, request_body, False, REST)
    assert info.value.http_status == 400
    assert world.instances() == before


def test_unknown_resource_is_404(world: World) -> None:
    with pytest.raises(PharosError) as info:
        world.jobs.resource(Level.STUDY, "0" * 8 + "-" + "0" * 8, b"{}", False, REST)
    assert info.value.code is ErrorCode.UNKNOWN_RESOURCE


def test_keeping_every_identifier_is_refused(world: World) -> None:
    world.put(make_dataset())
    series = world.index.list_public_ids(Level.SERIES, 0, None)[0]
    request = body({"Keep": ["SeriesInstanceUID", "SOPInstanceUID"], "Force": True})
    with pytest.raises(PharosError, match="keeps the identifiers"):
        world.jobs.resource(Level.SERIES, series, request, False, REST)


def test_instance_file_is_not_stored(world: World) -> None:
    instance = world.put(make_dataset())
    before = world.instances()
    data = world.jobs.instance_file(instance, body({"Replace": {"PatientName": "A^B"}}), False)
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.PatientName == "A^B" and ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.SOPInstanceUID != world.dataset(instance).SOPInstanceUID
    assert world.instances() == before
    data = world.jobs.instance_file(
        instance, body({"Keep": ["SOPInstanceUID"], "Force": True}), False
    )
    assert (
        pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID == world.dataset(instance).SOPInstanceUID
    )


def test_transcode(world: World) -> None:
    instance = world.put(make_dataset())
    data = world.jobs.instance_file(instance, body({"Transcode": "1.2.840.10008.1.2.4.70"}), True)
    assert pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.70"


def run(job: Job, steps: int) -> list[StepStatus]:
    job.start()
    statuses = []
    for _ in range(steps):
        statuses.append(job.step().status)
        if statuses[-1] is not StepStatus.CONTINUE:
            break
    job.stop(StopReason.SHUTDOWN)
    return statuses


def test_job_resumes_with_the_same_identifiers(world: World) -> None:
    study, old = study_with_references(world)
    result = world.jobs.resource(Level.STUDY, study, body({"Asynchronous": True}), True, REST)
    assert isinstance(result, Submission)
    job = result.job
    assert job.job_type == MODIFICATION_JOB
    run(job, 1)  # one instance, then a "restart"
    assert 0 < job.progress() < 1
    saved = orjson.loads(orjson.dumps(job.serialize()))
    assert saved["Identifiers"]["Uids"]  # the UID map is in the saved state
    again = world.jobs.factories()[MODIFICATION_JOB](saved)
    assert run(again, 10)[-1] is StepStatus.SUCCESS
    content = again.public_content()
    assert content["IsAnonymization"] is True and content["InstancesCount"] == 3
    assert content["FailedInstancesCount"] == 0 and content["Type"] == "Study"
    new = by_number(world.datasets_of(Level.STUDY, content["ID"]))
    assert len(new) == 3  # all three in one new study, with one patient
    assert len({d.PatientID for d in new.values()}) == 1
    check_references(new, old)


def test_job_resumed_after_a_crash_passes_over_the_steps_it_redoes(world: World) -> None:
    """KeepSource false and a crash after two steps, the job last saved after the first: the
    resumed job finds the second source gone (its copy stored) and goes on, no failure, no
    duplicate."""
    study, old = study_with_references(world)
    request = body({"Asynchronous": True, "KeepSource": False, "Replace": {"StudyID": "X"}})
    result = world.jobs.resource(Level.STUDY, study, request, False, REST)
    assert isinstance(result, Submission)
    job = result.job
    run(job, 1)
    saved = orjson.loads(orjson.dumps(job.serialize()))  # the last save before the crash
    run(job, 1)  # one more instance modified (its source deleted), then the crash
    again = world.jobs.factories()[MODIFICATION_JOB](saved)
    assert run(again, 10)[-1] is StepStatus.SUCCESS
    content = again.public_content()
    assert (content["InstancesCount"], content["FailedInstancesCount"]) == (3, 0)
    new = by_number(world.datasets_of(Level.STUDY, content["ID"]))
    assert len(new) == 3 and len(world.instances()) == 3  # the sources are gone
    assert all(d.StudyID == "X" for d in new.values())
    check_references(new, old)
    # A job resumed where it stopped cleanly still fails on a source deleted meanwhile.
    study, _ = study_with_references(world)
    result = world.jobs.resource(Level.STUDY, study, body({"Asynchronous": True}), False, REST)
    assert isinstance(result, Submission)
    run(result.job, 1)
    state = orjson.loads(orjson.dumps(result.job.serialize()))
    resumed = world.jobs.factories()[MODIFICATION_JOB](state)
    assert run(resumed, 1)[-1] is StepStatus.CONTINUE  # sources found: replay over
    missing = world.index.lookup(state["Instances"][2][0])
    assert missing is not None
    world.index.delete_resource(missing)
    with pytest.raises(PharosError):
        run(resumed, 1)


def test_bulk_modify_of_mixed_levels(world: World) -> None:
    one = world.put(make_dataset(patient_id="A"))
    world.put(make_dataset(patient_id="B"))
    series_b = world.index.lookup(
        world.store.store(to_bytes(make_dataset(patient_id="B")), REST).ids.series
    )
    assert series_b is not None
    request = {"Resources": [one, series_b.public_id], "Replace": {"InstitutionName": "Here"}}
    answer = world.jobs.bulk(body(request), False, REST)
    assert isinstance(answer, dict)  # no Level: the instance level, as Orthanc
    assert [r["Type"] for r in answer["Resources"]] == ["Instance", "Instance"]
    assert answer["InstancesCount"] == 2 and answer["IsAnonymization"] is False
    new_instance = world.dataset(answer["Resources"][0]["ID"])
    assert new_instance.InstitutionName == "Here"
    assert new_instance.SeriesInstanceUID == world.dataset(one).SeriesInstanceUID
    patient = {**request, "Replace": {"PatientID": "C"}, "Force": True}
    answer = world.jobs.bulk(body(patient), False, REST)
    assert isinstance(answer, dict)
    assert [r["Type"] for r in answer["Resources"]] == ["Patient"]  # both moved to C
    answer = world.jobs.bulk(body({**request, "Level": "Study"}), True, REST)
    assert isinstance(answer, dict)
    assert [r["Type"] for r in answer["Resources"]] == ["Study", "Study"]
    patients = {r["PatientID"] for r in answer["Resources"]}
    assert len(patients) == 2  # one anonymized patient per original patient


@pytest.mark.parametrize(
    "request_body",
    [{}, {"Resources": []}, {"Resources": ["nope"]}, {"Resources": [1]}, {"Level": "Bad"}],
)
def test_bad_bulk_requests(world: World, request_body: dict[str, Any]) -> None:
    instance = world.put(make_dataset())
    if request_body.get("Level") == "Bad":
        request_body["Resources"] = [instance]
    with pytest.raises(PharosError):
        world.jobs.bulk(body(request_body), False, REST)
    assert world.instances() == {instance}


def test_permissive_skips_missing_instances(world: World) -> None:
    study, _ = study_with_references(world)
    service = world.jobs.service
    plan = service.plan(Level.STUDY, study, body({"Permissive": True}), False, REST)
    state = service.start(plan)
    gone = world.index.lookup(plan.instances[0][0])
    assert gone is not None
    world.index.delete_resource(gone)
    while state.position < len(plan.instances):
        service.step(plan, state)
    assert state.failed == [gone.public_id]
    assert service.answer(plan, state)["Type"] == "Study"
    plan = service.plan(Level.STUDY, study, b"{}", False, REST)
    state = service.start(plan)
    gone = world.index.lookup(plan.instances[0][0])
    assert gone is not None
    world.index.delete_resource(gone)
    with pytest.raises(PharosError):
        service.step(plan, state)


CORPUS = (
    Path(__file__).resolve().parents[3] / "shared" / "dicom-corpus" / "HierarchicalAnonymization"
)


def ui_values(ds: Dataset) -> set[str]:
    found: set[str] = set()
    for element in ds:
        if element.VR == "SQ":
            for item in element.value:
                found |= ui_values(item)
        elif element.VR == "UI" and element.value:
            values = element.value if isinstance(element.value, list) else [element.value]
            found |= {str(v) for v in values}
    return found


OWN = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


@pytest.mark.skipif(not CORPUS.is_dir(), reason="the DICOM corpus is absent")
@pytest.mark.parametrize("folder", ["RTH", "2019-03-28", "StructuredReports"])
@pytest.mark.parametrize("anonymize", [True, False])
def test_corpus_references_follow(tmp_path: Path, folder: str, anonymize: bool) -> None:
    """CT + RT structure set, CR + presentation state, SR + MR: every UID of the study's own
    instances (hierarchy, and frame of reference when anonymizing) is replaced everywhere in
    the new files, by the new value of the instance it belongs to."""
    index = open_sqlite_index(tmp_path / "db")
    world = World(index, tmp_path)
    try:
        originals = {}
        for path in sorted((CORPUS / folder).iterdir()):
            ds = pydicom.dcmread(path)
            originals[str(ds.Modality)] = ds
            study = world.store.store(path.read_bytes(), REST).ids.study
        answer = world.jobs.resource(Level.STUDY, study, b"{}", anonymize, REST)
        assert isinstance(answer, dict)
        new = {str(d.Modality): d for d in world.datasets_of(Level.STUDY, answer["ID"])}
        assert set(new) == set(originals)
        own = OWN if anonymize else OWN[:3]
        mapping = {}
        for modality, old in originals.items():
            for keyword in own:
                if keyword in old:
                    mapping[str(old.get(keyword))] = str(new[modality].get(keyword))
        assert all(old != value for old, value in mapping.items())
        for modality, old in originals.items():
            values = ui_values(new[modality])
            assert not values & set(mapping), f"{modality}: old UIDs left"
            referenced = {mapping[v] for v in ui_values(old) if v in mapping}
            assert referenced <= values, f"{modality}: references not mapped"
    finally:
        world.store.close()
        index.close()
