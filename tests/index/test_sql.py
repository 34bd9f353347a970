"""The SQL index on SQLite and on PostgreSQL: the same tests, the same expectations."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pharos.index.base import Attachment, NewInstance, Reception, StoreStatus
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.model.changes import ChangeType
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


def new_instance(
    sop: str,
    series: str = "1.2.3.4",
    study: str = "1.2.3",
    patient: str = "P1",
    number: int | None = 1,
    expected: int | None = None,
) -> NewInstance:
    ids = ResourceIds.compute(patient, study, series, sop)
    return NewInstance(
        ids=ids,
        tags={
            Level.PATIENT: {"PatientID": patient, "PatientName": "Doe^John"},
            Level.STUDY: {"StudyInstanceUID": study, "StudyDate": "20240131"},
            Level.SERIES: {"SeriesInstanceUID": series, "Modality": "CT"},
            Level.INSTANCE: {"SOPInstanceUID": sop, "InstanceNumber": str(number)},
        },
        attachment=Attachment(1, str(uuid.uuid4()), 100, 100, 1, "md5", "md5"),
        reception=Reception("RestApi", "", "127.0.0.1"),
        transfer_syntax="1.2.840.10008.1.2.1",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        pixel_data_offset=500,
        expected_instances=expected,
        index_in_series=number,
        now=time.time(),
    )


def test_store_creates_the_hierarchy_and_logs_changes(index: SqlIndex) -> None:
    outcome = index.store_instance(new_instance("1.2.3.4.1"), overwrite=False)
    assert outcome.status is StoreStatus.SUCCESS
    changes, done = index.changes(0, 100)
    assert done
    assert [c.change_type for c in changes] == [
        ChangeType.NEW_INSTANCE,
        ChangeType.NEW_SERIES,
        ChangeType.NEW_STUDY,
        ChangeType.NEW_PATIENT,
    ]
    assert [c.seq for c in changes] == sorted(c.seq for c in changes)
    stats = index.statistics()
    assert (stats.patients, stats.studies, stats.series, stats.instances) == (1, 1, 1, 1)
    assert stats.disk_size == 100


def test_second_store_is_already_stored_unless_overwriting(index: SqlIndex) -> None:
    first = new_instance("1.2.3.4.1")
    index.store_instance(first, overwrite=False)
    again = index.store_instance(new_instance("1.2.3.4.1"), overwrite=False)
    assert again.status is StoreStatus.ALREADY_STORED
    replacement = new_instance("1.2.3.4.1")
    replaced = index.store_instance(replacement, overwrite=True)
    assert replaced.status is StoreStatus.SUCCESS
    assert replaced.replaced_files == [first.attachment.uuid]
    ref = index.lookup(first.ids.instance)
    assert ref is not None
    attachment = index.attachment(ref, 1)
    assert attachment is not None and attachment.uuid == replacement.attachment.uuid
    assert index.statistics().instances == 1


def test_resource_details(index: SqlIndex) -> None:
    for number in (1, 2):
        index.store_instance(new_instance(f"1.2.3.4.{number}", number=number, expected=2), False)
    study = index.list_resources(Level.STUDY, 0, None)[0]
    assert study.tags == {"StudyInstanceUID": "1.2.3", "StudyDate": "20240131"}
    assert study.patient_tags == {"PatientID": "P1", "PatientName": "Doe^John"}
    assert len(study.children) == 1
    series = index.list_resources(Level.SERIES, 0, None)[0]
    assert series.expected_instances == 2
    assert series.series_status == "Complete"
    assert series.parent_public_id == study.ref.public_id
    assert len(series.children) == 2
    instance = index.list_resources(Level.INSTANCE, 0, 1)[0]
    assert instance.file_size == 100
    assert instance.index_in_series == 1
    kinds = [c.change_type for c in index.changes(0, 100)[0]]
    assert kinds.count(ChangeType.COMPLETED_SERIES) == 1


def test_series_status_missing_and_inconsistent(index: SqlIndex) -> None:
    index.store_instance(new_instance("1.1", series="9.1", number=1, expected=3), False)
    assert index.list_resources(Level.SERIES, 0, None)[0].series_status == "Missing"
    index.store_instance(new_instance("1.2", series="9.1", number=7, expected=3), False)
    assert index.list_resources(Level.SERIES, 0, None)[0].series_status == "Inconsistent"


def test_paging_follows_creation_order(index: SqlIndex) -> None:
    sops = [f"1.2.3.4.{n}" for n in range(1, 8)]
    for n, sop in enumerate(sops, start=1):
        index.store_instance(new_instance(sop, number=n), False)
    every = index.list_public_ids(Level.INSTANCE, 0, None)
    assert len(every) == 7
    assert index.list_public_ids(Level.INSTANCE, 2, 3) == every[2:5]
    assert index.list_public_ids(Level.INSTANCE, 6, 10) == every[6:]
    assert index.list_public_ids(Level.INSTANCE, 0, 0) == []


def test_navigation(index: SqlIndex) -> None:
    index.store_instance(new_instance("1.1", series="9.1"), False)
    index.store_instance(new_instance("1.2", series="9.2"), False)
    patient = index.lookup(ResourceIds.compute("P1", "1.2.3", "9.1", "1.1").patient)
    assert patient is not None
    assert len(index.descendants(patient, Level.INSTANCE)) == 2
    assert len(index.descendants(patient, Level.SERIES)) == 2
    assert len(index.children(patient)) == 1
    instance = index.descendants(patient, Level.INSTANCE)[0]
    assert index.ancestor(instance, Level.PATIENT) == patient
    assert index.main_tags(instance) == {"SOPInstanceUID": "1.1", "InstanceNumber": "1"}


def test_delete_removes_empty_parents_and_reports_files(index: SqlIndex) -> None:
    a = new_instance("1.1", series="9.1")
    b = new_instance("1.2", series="9.2")
    index.store_instance(a, False)
    index.store_instance(b, False)
    ref_a = index.lookup(a.ids.instance)
    assert ref_a is not None
    outcome = index.delete_resource(ref_a)
    assert outcome.deleted
    assert outcome.removed_files == [a.attachment.uuid]
    assert outcome.remaining_ancestor == (Level.STUDY, a.ids.study)
    assert index.lookup(a.ids.series) is None
    ref_b = index.lookup(b.ids.instance)
    assert ref_b is not None
    last = index.delete_resource(ref_b)
    assert last.remaining_ancestor is None
    assert index.statistics().patients == 0
    deleted = [c for c in index.changes(0, 100)[0] if c.change_type is ChangeType.DELETED]
    assert {c.level for c in deleted} == set(Level)
    assert index.delete_resource(ref_b).deleted is False


def test_delete_study_cascades(index: SqlIndex) -> None:
    for n in range(5):
        index.store_instance(new_instance(f"1.{n}", series=f"9.{n % 2}"), False)
    study = index.list_resources(Level.STUDY, 0, None)[0].ref
    stats = index.resource_statistics(study)
    assert (stats.series, stats.instances, stats.disk_size) == (2, 5, 500)
    outcome = index.delete_resource(study)
    assert len(outcome.removed_files) == 5
    assert outcome.remaining_ancestor is None
    assert index.statistics().instances == 0


def test_stability_is_logged_once(index: SqlIndex) -> None:
    index.store_instance(new_instance("1.1"), False)
    assert index.mark_stable(time.time() - 3600, time.time()) == 0
    assert index.mark_stable(time.time() + 1, time.time()) == 3
    assert index.mark_stable(time.time() + 1, time.time()) == 0
    kinds = [c.change_type for c in index.changes(0, 100)[0]][-3:]
    assert kinds == [ChangeType.STABLE_SERIES, ChangeType.STABLE_STUDY, ChangeType.STABLE_PATIENT]
    assert all(info.stable for info in index.list_resources(Level.STUDY, 0, None))
    index.store_instance(new_instance("1.2"), False)
    assert not index.list_resources(Level.STUDY, 0, None)[0].stable


def test_changes_paging_and_clearing(index: SqlIndex) -> None:
    for n in range(3):
        index.store_instance(new_instance(f"1.{n}"), False)
    first, done = index.changes(0, 2)
    assert len(first) == 2 and not done
    rest, done = index.changes(first[-1].seq, 100)
    assert done and len(rest) == 4
    last = index.last_change()
    assert last is not None and last.seq == rest[-1].seq
    index.clear_changes()
    assert index.changes(0, 100) == ([], True)


def test_unknown_files(index: SqlIndex) -> None:
    stored = new_instance("1.1")
    index.store_instance(stored, False)
    stray = str(uuid.uuid4())
    assert index.unknown_files([stored.attachment.uuid, stray]) == {stray}


def test_concurrent_stores_into_one_series(index: SqlIndex) -> None:
    errors: list[BaseException] = []

    def worker(start: int) -> None:
        try:
            for n in range(start, start + 10):
                index.store_instance(new_instance(f"1.{n}", number=n), False)
                index.store_instance(new_instance(f"1.{n}", number=n), False)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i * 10,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    stats = index.statistics()
    assert (stats.patients, stats.studies, stats.series, stats.instances) == (1, 1, 1, 60)
    kinds = [c.change_type for c in index.changes(0, 1000)[0]]
    assert kinds.count(ChangeType.NEW_INSTANCE) == 60
    assert kinds.count(ChangeType.NEW_SERIES) == 1


def test_reads_in_a_reading_block_share_one_transaction(index: SqlIndex) -> None:
    index.store_instance(new_instance("1.1"), False)
    seen: list[object] = []

    def read(conn: object) -> None:
        seen.append(conn)

    with index.reading():
        index._read(read)
        assert index.lookup_identifier("1.1", Level.INSTANCE)
        with index.reading():  # nested: the same transaction
            index._read(read)
    assert seen[0] is seen[1]
    index._read(read)
    assert seen[2] is not seen[0]  # outside: a transaction of its own
    with pytest.raises(RuntimeError), index.reading():
        raise RuntimeError("a failing block ends its transaction")
    assert getattr(index._reader, "conn", None) is None
