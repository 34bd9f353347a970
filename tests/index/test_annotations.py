"""Metadata, attachments, labels and protection in the SQL index, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pharos.index.base import Attachment, NewInstance, Reception, ResourceRef
from pharos.index.base_annotations import (
    HTTP_USERNAME,
    LAST_UPDATE,
    ExpectedRevision,
    MetadataValue,
)
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.model.changes import ChangeType
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.ids import ResourceIds
from pharos.model.levels import Level


@pytest.fixture
def index(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SqlIndex]:
    if backend == "sqlite":
        opened = open_sqlite_index(tmp_path)
    else:
        section = request.getfixturevalue("postgres_databases").create()
        opened = open_postgres_index(postgres_url(section))
    yield opened
    opened.close()


def store(index: SqlIndex, sop: str = "1.2.3.4.1", patient: str = "P1") -> ResourceIds:
    ids = ResourceIds.compute(patient, "1.2.3", "1.2.3.4", sop)
    index.store_instance(
        NewInstance(
            ids=ids,
            tags={
                Level.PATIENT: {"PatientID": patient},
                Level.STUDY: {"StudyInstanceUID": "1.2.3"},
                Level.SERIES: {"SeriesInstanceUID": "1.2.3.4"},
                Level.INSTANCE: {"SOPInstanceUID": sop},
            },
            attachment=Attachment(1, str(uuid.uuid4()), 100, 100, 1, "md5", "md5"),
            reception=Reception("RestApi", "", "127.0.0.1"),
            transfer_syntax="1.2.840.10008.1.2.1",
            sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
            pixel_data_offset=500,
            expected_instances=3,
            index_in_series=1,
            now=time.time(),
        ),
        overwrite=False,
    )
    return ids


def ref_of(index: SqlIndex, public_id: str) -> ResourceRef:
    ref = index.lookup(public_id)
    assert ref is not None
    return ref


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def user_file(content_type: int = 1025, md5_value: str | None = "aa") -> Attachment:
    return Attachment(content_type, str(uuid.uuid4()), 10, 10, 1, md5_value, md5_value)


def changes_of(index: SqlIndex, kind: ChangeType) -> list[str]:
    return [c.public_id for c in index.changes(0, 1000)[0] if c.change_type is kind]


def test_builtin_metadata_come_from_the_columns(index: SqlIndex) -> None:
    ids = store(index)
    instance = index.all_metadata(ref_of(index, ids.instance))
    assert list(instance) == [1, 2, 3, 8, 9, 10, 11, 13, 14]  # Orthanc's order, by number
    assert instance[1] == MetadataValue("1")
    assert instance[3].value == ""
    assert instance[8].value == "RestApi"
    assert instance[HTTP_USERNAME].value == ""  # REST upload without authentication
    assert instance[14].value == "500"
    series = index.all_metadata(ref_of(index, ids.series))
    assert list(series) == [3, 4, LAST_UPDATE]
    assert series[4].value == "3"
    assert series[LAST_UPDATE].value == instance[2].value  # the reception date
    for public_id in (ids.patient, ids.study):
        assert list(index.all_metadata(ref_of(index, public_id))) == [LAST_UPDATE]
    assert index.metadata_value(ref_of(index, ids.patient), 1024) is None


def test_user_metadata_revisions_and_changes(index: SqlIndex) -> None:
    patient = ref_of(index, store(index).patient)
    assert index.set_metadata(patient, 1024, "a", None, log_change=True) == 0
    # Creating ignores the expected revision (Orthanc), replacing checks it.
    assert index.delete_metadata(patient, 1024, None, log_change=True)
    assert index.set_metadata(patient, 1024, "a", ExpectedRevision(7, "x"), True) == 0
    assert index.set_metadata(patient, 1024, "b", ExpectedRevision(0, md5("a")), True) == 1
    with pytest.raises(PharosError) as refused:
        index.set_metadata(patient, 1024, "c", ExpectedRevision(0, md5("a")), True)
    assert refused.value.code is ErrorCode.REVISION
    with pytest.raises(PharosError):
        index.set_metadata(patient, 1024, "c", ExpectedRevision(1, md5("wrong")), True)
    assert index.metadata_value(patient, 1024) == MetadataValue("b", 1)
    assert index.all_metadata(patient)[1024] == MetadataValue("b", 1)
    with pytest.raises(PharosError):
        index.delete_metadata(patient, 1024, ExpectedRevision(0, md5("b")), True)
    assert index.delete_metadata(patient, 1024, ExpectedRevision(1, md5("b")), True)
    assert not index.delete_metadata(patient, 1024, None, True)
    assert index.metadata_value(patient, 1024) is None
    assert changes_of(index, ChangeType.UPDATED_METADATA) == [patient.public_id] * 5
    index.set_metadata(patient, 5, "from", None, log_change=False)
    assert changes_of(index, ChangeType.UPDATED_METADATA) == [patient.public_id] * 5


def test_attachments_are_replaced_with_their_revision(index: SqlIndex) -> None:
    ids = store(index)
    patient = ref_of(index, ids.patient)
    first = user_file()
    assert index.set_attachment(patient, first, None, True).revision == 0
    second = user_file(md5_value="bb")
    update = index.set_attachment(patient, second, ExpectedRevision(0, "aa"), True)
    assert (update.revision, update.replaced_uuid) == (1, first.uuid)
    with pytest.raises(PharosError):
        index.set_attachment(patient, user_file(), ExpectedRevision(0, "aa"), True)
    stored = index.attachment(patient, 1025)
    assert stored is not None and stored.uuid == second.uuid and stored.revision == 1
    other = user_file(content_type=1030)
    index.set_attachment(patient, other, None, False)
    assert [a.content_type for a in index.attachments(patient)] == [1025, 1030]
    assert index.resource_statistics(patient).disk_size == 120
    with pytest.raises(PharosError):
        index.delete_attachment(patient, 1025, ExpectedRevision(1, "aa"), True)
    assert index.delete_attachment(patient, 1025, ExpectedRevision(1, "bb"), True) == second.uuid
    assert index.delete_attachment(patient, 1025, None, True) is None
    assert changes_of(index, ChangeType.UPDATED_ATTACHMENT) == [patient.public_id] * 3
    # Deleting the resource reports every file below it, user attachments included.
    dicom = index.attachment(ref_of(index, ids.instance), 1)
    assert dicom is not None
    assert set(index.delete_resource(patient).removed_files) == {other.uuid, dicom.uuid}


def test_labels(index: SqlIndex) -> None:
    ids = store(index)
    store(index, sop="1.2.3.4.2")
    study = ref_of(index, ids.study)
    instance = ref_of(index, ids.instance)
    index.add_label(study, "b")
    index.add_label(study, "a")
    index.add_label(study, "a")  # idempotent
    index.add_label(instance, "a")
    assert index.labels(study) == ["a", "b"]
    assert index.all_labels() == ["a", "b"]
    assert index.resource_info(study).labels == ["a", "b"]
    listed = index.list_resources(Level.INSTANCE, 0, None)
    assert [info.labels for info in listed] == [["a"], []]
    index.remove_label(study, "b")
    index.remove_label(study, "b")  # absent: nothing to do
    assert index.labels(study) == ["a"]
    index.delete_resource(instance)
    assert index.all_labels() == ["a"]


def test_protection(index: SqlIndex) -> None:
    ids = store(index)
    patient = ref_of(index, ids.patient)
    assert not index.is_protected(patient)
    index.set_protected(patient, True)
    assert index.is_protected(patient)
    index.set_protected(patient, False)
    assert not index.is_protected(patient)
    with pytest.raises(PharosError):
        index.set_protected(ref_of(index, ids.study), True)


def test_writes_on_a_deleted_resource_are_unknown_resource(index: SqlIndex) -> None:
    ids = store(index)
    patient = ref_of(index, ids.patient)
    index.delete_resource(patient)
    writes = [
        lambda: index.set_metadata(patient, 1024, "x", None, True),
        lambda: index.delete_metadata(patient, 1024, None, True),
        lambda: index.set_attachment(patient, user_file(), None, True),
        lambda: index.delete_attachment(patient, 1025, None, True),
        lambda: index.add_label(patient, "a"),
        lambda: index.remove_label(patient, "a"),
        lambda: index.set_protected(patient, True),
        lambda: index.is_protected(patient),
        lambda: index.all_metadata(patient),
    ]
    for write in writes:
        with pytest.raises(PharosError) as raised:
            write()
        assert raised.value.code is ErrorCode.UNKNOWN_RESOURCE


def test_concurrent_writers_see_each_others_revisions(index: SqlIndex) -> None:
    patient = ref_of(index, store(index).patient)
    errors: list[BaseException] = []
    revisions: list[int] = []

    def worker(n: int) -> None:
        try:
            for i in range(5):
                revisions.append(index.set_metadata(patient, 2000, f"{n}-{i}", None, True))
                index.add_label(patient, f"label{i}")
                index.set_attachment(patient, user_file(), None, True)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    # Every write got its own revision: none was lost, none was given twice.
    assert sorted(revisions) == list(range(30))
    value = index.metadata_value(patient, 2000)
    assert value is not None and value.revision == 29
    attachment = index.attachment(patient, 1025)
    assert attachment is not None and attachment.revision == 29
    assert index.labels(patient) == [f"label{i}" for i in range(5)]
