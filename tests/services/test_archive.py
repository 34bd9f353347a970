"""Archives against a real index (SQLite and PostgreSQL) and storage area: the folder tree and
its names, the files byte-identical (stored plain or compressed), media with their DICOMDIR,
transcoding, instances deleted meanwhile, the requests' errors, and archive jobs (steps,
pause, cancel, outputs kept as MediaArchiveSize says, restore after a restart)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian

from pharos.index.base import Reception
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.jobs import StepStatus, StopReason
from pharos.model.levels import Level
from pharos.services.archive import ArchiveRequest, ArchiveService, archive_request
from pharos.services.archive_jobs import (
    ARCHIVE_JOB,
    MEDIA_JOB,
    ArchiveJob,
    ArchiveJobs,
    ArchiveOutputs,
)
from pharos.services.archive_layout import zip_name
from pharos.services.deletion import DeletionService
from pharos.services.files import FileService
from pharos.services.options import ServiceOptions
from pharos.services.resources import ResourceService
from pharos.services.store import StoreService
from pharos.storage.filesystem import FileSystemStorage
from tests.dicomgen import make_dicom, make_series

REST = Reception("RestApi", "", "127.0.0.1")


@dataclass
class Server:
    index: SqlIndex
    storage: FileSystemStorage
    store: StoreService
    files: FileService
    resources: ResourceService
    archive: ArchiveService
    jobs: ArchiveJobs
    outputs: ArchiveOutputs
    deletion: DeletionService

    def put(self, data: bytes) -> str:
        return self.store.store(data, REST).ids.instance

    def file(self, instance_id: str) -> bytes:
        return self.files.read_dicom(self.resources.resolve(Level.INSTANCE, instance_id))

    def zip(self, *resources: str, **options: object) -> zipfile.ZipFile:
        request = ArchiveRequest(tuple(resources), **options)  # type: ignore[arg-type]
        data = b"".join(self.archive.stream(self.archive.plan(request)))
        return zipfile.ZipFile(io.BytesIO(data))


@pytest.fixture(params=[False, True], ids=["plain", "compressed"])
def compression(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


def _server(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, compressed: bool = False
) -> Iterator[Server]:
    if backend == "sqlite":
        index = open_sqlite_index(tmp_path)
    else:
        section = request.getfixturevalue("postgres_databases").create()
        index = open_postgres_index(postgres_url(section))
    storage = FileSystemStorage(tmp_path / "storage", fsync=False)
    options = ServiceOptions(storage_compression=compressed)
    store = StoreService(index, storage, options)
    files = FileService(index, storage)
    archive = ArchiveService(index, storage, files, options)
    outputs = ArchiveOutputs(tmp_path / "archives", keep=2)
    yield Server(
        index,
        storage,
        store,
        files,
        ResourceService(index),
        archive,
        ArchiveJobs(archive, outputs),
        outputs,
        DeletionService(index, storage),
    )
    store.close()
    index.close()


@pytest.fixture
def server(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    yield from _server(backend, tmp_path, request)


@pytest.fixture
def either_server(
    backend: str, compression: bool, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Server]:
    """Files stored plain, or with StorageCompression (inflated chunk by chunk)."""
    yield from _server(backend, tmp_path, request, compression)


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("P1 Doe^John", "P1 Doe John"),
        ("../../etc/passwd x", "....etcpasswd x"),
        ("a/b\\c", "abc"),
        ("  Crâne   T1 ", "Crne T1"),
        ("..", ""),
        ("", ""),
        ("x:y*z?<>|\"'", "xyz"),
        ("tab\there\nnew", "tab here new"),
    ],
)
def test_zip_names_keep_letters_digits_dots_and_single_spaces(text: str, name: str) -> None:
    assert zip_name(text) == name


def test_archive_tree_is_named_as_orthanc_and_files_are_byte_identical(
    either_server: Server,
) -> None:
    server = either_server
    series = make_series(
        3, patient_id="P/1", patient_name="Doe^Jane", AccessionNumber="A..7", Modality="MR"
    )
    ids = [server.put(data) for data in series]
    study = server.resources.ancestor(server.resources.resolve(Level.INSTANCE, ids[0]), Level.STUDY)
    archive = server.zip(study.public_id)
    names = archive.namelist()
    assert names == [f"P1 Doe Jane/A..7 Chest/MR Axial/MR{n:06d}.dcm" for n in range(3)]
    for name, instance in zip(names, ids, strict=True):
        assert archive.read(name) == server.file(instance)
        assert archive.getinfo(name).compress_type == zipfile.ZIP_STORED


def test_empty_names_become_unknown_and_twins_are_numbered(server: Server) -> None:
    study_uid = "1.2.3.4"
    for series_uid in ("1.2.3.4.1", "1.2.3.4.2"):  # two series of the same name
        server.put(
            make_dicom(
                patient_id="///",
                patient_name="",
                study_uid=study_uid,
                series_uid=series_uid,
                AccessionNumber=None,
                StudyDescription=None,
                Modality="OT",
            )
        )
    patient = server.resources.list_ids(Level.PATIENT, 0, None)[0]
    names = sorted(server.zip(patient).namelist())
    assert names == [
        "Unknown Patient/Unknown Study/OT Axial-2/OT000000.dcm",
        "Unknown Patient/Unknown Study/OT Axial/OT000000.dcm",
    ]


def test_resources_are_merged_and_sorted_as_one_tree(server: Server) -> None:
    first = [server.put(d) for d in make_series(2, patient_id="A")]
    second = [server.put(d) for d in make_series(1, patient_id="B")]
    ref = server.resources.resolve(Level.INSTANCE, first[0])
    series = server.resources.ancestor(ref, Level.SERIES).public_id
    study = server.resources.ancestor(ref, Level.STUDY).public_id
    # The study and one of its series and instances: the study once, whole.
    archive = server.zip(first[1], series, study, second[0])
    assert len(archive.namelist()) == 3
    assert sorted(archive.read(n) for n in archive.namelist()) == sorted(
        server.file(i) for i in first + second
    )
    # One instance alone: only it, under its patient/study/series folders.
    only = server.zip(first[1])
    assert [only.read(n) for n in only.namelist()] == [server.file(first[1])]


def test_unknown_resources_are_404(server: Server) -> None:
    with pytest.raises(PharosError) as caught:
        server.archive.plan(ArchiveRequest(("0" * 8 + "-" + "0" * 8 + "-0-0-0",)))
    assert caught.value.code is ErrorCode.UNKNOWN_RESOURCE
    with pytest.raises(PharosError) as caught:
        server.archive.plan(ArchiveRequest(("../etc",)))
    assert caught.value.code is ErrorCode.UNKNOWN_RESOURCE


def test_instances_deleted_after_the_plan_are_left_out(server: Server) -> None:
    ids = [server.put(d) for d in make_series(3)]
    plan = server.archive.plan(ArchiveRequest(tuple(ids)))
    ref = server.resources.resolve(Level.INSTANCE, ids[1])
    attachment = server.index.attachment(ref, 1)
    assert attachment is not None
    server.storage.remove(attachment.uuid)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(server.archive.stream(plan))))
    assert [archive.read(n) for n in archive.namelist()] == [
        server.file(ids[0]),
        server.file(ids[2]),
    ]
    media = server.archive.plan(ArchiveRequest((ids[0], ids[2]), media=True))
    server.storage.remove(media.entries[0].attachment.uuid)
    archive = zipfile.ZipFile(io.BytesIO(b"".join(server.archive.stream(media))))
    assert archive.namelist() == ["IMAGES/IM1", "DICOMDIR"]
    dicomdir = pydicom.dcmread(io.BytesIO(archive.read("DICOMDIR")))
    images = [r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
    assert [list(r.ReferencedFileID) for r in images] == [["IMAGES", "IM1"]]


def test_media_has_a_dicomdir_naming_every_file(server: Server) -> None:
    ids = [server.put(d) for d in make_series(2, patient_id="M1")]
    ids.append(server.put(make_dicom(patient_id="M2")))
    archive = server.zip(*ids, media=True, extended=True)
    assert archive.namelist() == ["IMAGES/IM0", "IMAGES/IM1", "IMAGES/IM2", "DICOMDIR"]
    dicomdir = pydicom.dcmread(io.BytesIO(archive.read("DICOMDIR")))
    images = [r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "IMAGE"]
    assert [list(r.ReferencedFileID) for r in images] == [["IMAGES", f"IM{n}"] for n in range(3)]
    stored = {pydicom.dcmread(io.BytesIO(server.file(i))).SOPInstanceUID: i for i in ids}
    for record in images:
        data = archive.read("/".join(record.ReferencedFileID))
        assert data == server.file(stored[record.ReferencedSOPInstanceUIDInFile])
    patients = [r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "PATIENT"]
    assert sorted(r.PatientID for r in patients) == ["M1", "M2"]
    assert "SeriesDescription" in next(
        r for r in dicomdir.DirectoryRecordSequence if r.DirectoryRecordType == "SERIES"
    )


def test_transcoded_archive_and_its_dicomdir_say_the_new_syntax(server: Server) -> None:
    instance = server.put(make_dicom())
    archive = server.zip(instance, media=True, transcode=ImplicitVRLittleEndian)
    data = pydicom.dcmread(io.BytesIO(archive.read("IMAGES/IM0")))
    assert data.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    dicomdir = pydicom.dcmread(io.BytesIO(archive.read("DICOMDIR")))
    image = dicomdir.DirectoryRecordSequence[-1]
    assert image.ReferencedTransferSyntaxUIDInFile == ImplicitVRLittleEndian


# -- requests ---------------------------------------------------------------------------------


def test_request_fields_and_query_arguments() -> None:
    request = archive_request(
        b'{"Resources": ["a"], "Synchronous": false, "Priority": 3, '
        b'"Transcode": "1.2.840.10008.1.2", "Filename": "my/../study"}',
        {},
        None,
        media=False,
    )
    assert request.resources == ("a",) and request.asynchronous and request.priority == 3
    assert request.transcode == "1.2.840.10008.1.2" and request.filename == "my_.._study"
    query = archive_request(
        None, {"extended": "", "transcode": "1.2.840.10008.1.2.1"}, ["x"], media=True
    )
    assert query.extended and query.transcode == "1.2.840.10008.1.2.1" and not query.asynchronous
    assert archive_request(b"", {}, ["x"], media=True, extended=True).extended
    assert archive_request(b"{}", {}, ["x"], media=False).resources == ("x",)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"Resources": "abc"}',
        b'{"Resources": [1]}',
        b'{"Resources": []}',
        b"{}",
        b'{"Resources": ["a"], "Synchronous": "no"}',
        b'{"Resources": ["a"], "Priority": "high"}',
        b'{"Resources": ["a"], "Transcode": "1.2.3.4"}',
        b'{"Resources": ["a"], "Transcode": 12}',
    ],
)
def test_bad_request_bodies_are_400(body: bytes) -> None:
    with pytest.raises(PharosError) as caught:
        archive_request(body, {}, None, media=False)
    assert caught.value.code.http_status == 400


# -- jobs -------------------------------------------------------------------------------------


def run(job: ArchiveJob) -> int:
    job.start()
    steps = 0
    while True:
        steps += 1
        result = job.step()
        if result.status is not StepStatus.CONTINUE:
            assert result.status is StepStatus.SUCCESS
            job.stop(StopReason.SUCCESS)
            return steps


def test_archive_job_writes_its_zip_one_file_per_step(server: Server) -> None:
    ids = [server.put(d) for d in make_series(3)]
    submission = server.jobs.submission(ArchiveRequest(tuple(ids), asynchronous=True))
    job = submission.job
    assert isinstance(job, ArchiveJob) and job.job_type == ARCHIVE_JOB
    assert job.output("archive") is None
    assert run(job) == 4  # three files, then the central directory
    output = job.output("archive")
    assert output is not None and output.path is not None and output.mime_type == "application/zip"
    archive = zipfile.ZipFile(output.path)
    assert [archive.read(n) for n in archive.namelist()] == [server.file(i) for i in ids]
    content = job.public_content()
    assert content["InstancesCount"] == 3
    assert int(content["ArchiveSize"]) == Path(output.path).stat().st_size
    assert job.progress() == 1.0
    assert job.output("other") is None


def test_submission_of_unknown_resources_is_404(server: Server) -> None:
    with pytest.raises(PharosError) as caught:
        server.jobs.submission(ArchiveRequest(("nope",), asynchronous=True))
    assert caught.value.code is ErrorCode.UNKNOWN_RESOURCE


def test_paused_job_goes_on_and_cancelled_job_leaves_no_file(server: Server) -> None:
    ids = [server.put(d) for d in make_series(3)]
    job = server.jobs.submission(ArchiveRequest(tuple(ids), media=True)).job
    assert job.job_type == MEDIA_JOB
    job.start()
    job.step()
    job.stop(StopReason.PAUSE)
    assert run(job) == 4  # two more files, the DICOMDIR, the end
    output = job.output("archive")
    assert output is not None and output.path is not None
    assert "DICOMDIR" in zipfile.ZipFile(output.path).namelist()

    cancelled = server.jobs.submission(ArchiveRequest(tuple(ids))).job
    cancelled.start()
    cancelled.step()
    assert [p.name for p in server.outputs.directory.glob("*.part")]
    cancelled.stop(StopReason.CANCEL)
    assert not list(server.outputs.directory.glob("*.part"))
    assert cancelled.output("archive") is None


def test_media_archive_size_keeps_the_newest_outputs(server: Server) -> None:
    instance = server.put(make_dicom())
    jobs = [server.jobs.submission(ArchiveRequest((instance,))).job for _ in range(3)]
    for job in jobs:
        run(job)  # type: ignore[arg-type]
    assert jobs[0].output("archive") is None  # keep=2: the oldest is removed
    assert all(job.output("archive") is not None for job in jobs[1:])
    assert len(list(server.outputs.directory.glob("*.zip"))) == 2


def test_saved_job_comes_back_with_its_output(server: Server, tmp_path: Path) -> None:
    instance = server.put(make_dicom())
    job = server.jobs.submission(ArchiveRequest((instance,), filename="mine")).job
    run(job)  # type: ignore[arg-type]
    state = job.serialize()
    # A restart: new outputs registry over the same folder, the job re-created.
    outputs = ArchiveOutputs(server.outputs.directory, keep=2)
    restored = ArchiveJobs(server.archive, outputs).factories()[ARCHIVE_JOB](state)
    output = restored.output("archive")
    assert output is not None and output.filename == "mine.zip"
    assert restored.public_content() == job.public_content()
    # An unfinished job is made again from its start.
    pending = server.jobs.submission(ArchiveRequest((instance,))).job
    again = ArchiveJobs(server.archive, outputs).factories()[ARCHIVE_JOB](pending.serialize())
    assert run(again) == 2  # type: ignore[arg-type]
    assert again.output("archive") is not None


def test_discarded_job_removes_its_zip(server: Server) -> None:
    """A job leaving the jobs history (JobsHistorySize) takes its ZIP with it; the others stay."""
    instance = server.put(make_dicom())
    first, second = (server.jobs.submission(ArchiveRequest((instance,))).job for _ in range(2))
    for job in (first, second):
        run(job)  # type: ignore[arg-type]
    output = first.output("archive")
    assert output is not None and output.path is not None
    assert isinstance(first, ArchiveJob)
    first.discard()
    assert not Path(output.path).exists() and first.output("archive") is None
    assert second.output("archive") is not None
    assert len(list(server.outputs.directory.glob("*.zip"))) == 1
    first.discard()  # twice: nothing left to remove

    unfinished = server.jobs.submission(ArchiveRequest((instance,))).job
    assert isinstance(unfinished, ArchiveJob)
    unfinished.start()
    unfinished.step()
    unfinished.discard()  # e.g. a failed job forgotten while its part file is open
    assert not list(server.outputs.directory.glob("*.part"))
