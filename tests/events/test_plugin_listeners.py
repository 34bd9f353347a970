"""The plugins' change and stability listeners fed from the change log (both backends):
changes after the sink started, stable resources with their main tags, a failing listener
costing nothing, and one telling per change when two processes share the index."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pharos.events import PluginListenersSink, SinkFollower
from pharos.index.base import Reception
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.plugins import PluginManager, hookimpl
from pharos.services.maintenance import StabilityMonitor
from pharos.services.options import ServiceOptions
from pharos.services.store import StoreService
from pharos.storage.filesystem import FileSystemStorage
from tests.dicomgen import make_dicom

DICOM = Reception(origin="DicomProtocol", remote_aet="MODALITY")


class Listener:
    def __init__(self) -> None:
        self.changes: list[dict[str, Any]] = []
        self.stable: list[tuple[str, str, dict[str, Any]]] = []

    @hookimpl
    def pharos_on_change(self, change: dict[str, Any]) -> None:
        self.changes.append(change)

    @hookimpl
    def pharos_on_stable(self, level: str, resource_id: str, tags: dict[str, Any]) -> None:
        self.stable.append((level, resource_id, tags))


class Failing:
    @hookimpl
    def pharos_on_change(self, change: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")


@pytest.fixture
def indexes(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[list[SqlIndex]]:
    """Two handles on one index: two processes (PostgreSQL) or one reopened (SQLite)."""
    if backend == "sqlite":
        opened = [open_sqlite_index(tmp_path), open_sqlite_index(tmp_path)]
    else:
        url = postgres_url(request.getfixturevalue("postgres_databases").create())
        opened = [open_postgres_index(url, 2), open_postgres_index(url, 2)]
    yield opened
    for index in opened:
        index.close()


def plugins_with(*plugins: object) -> PluginManager:
    manager = PluginManager()
    for number, plugin in enumerate(plugins):
        manager.register(plugin, f"plugin{number}")
    return manager


def drain(follower: SinkFollower) -> None:
    while follower.step():
        pass


def test_changes_after_start_and_stable_resources(indexes: list[SqlIndex], tmp_path: Path) -> None:
    index = indexes[0]
    listener = Listener()
    plugins = plugins_with(Failing(), listener)
    store = StoreService(index, FileSystemStorage(tmp_path / "files"), ServiceOptions(), plugins)
    try:
        before = store.store(make_dicom(PatientID="OLD"), DICOM)  # before the sink existed
        follower = SinkFollower(index, PluginListenersSink(index, plugins), "me")
        assert PluginListenersSink.wanted(plugins)
        follower.step()
        after = store.store(make_dicom(PatientID="NEW", StudyDescription="Knee"), DICOM)
        assert follower.step() == 4  # new instance, series, study, patient (told, then done)
        StabilityMonitor(index, stable_age=-1).check_now()
        drain(follower)
    finally:
        plugins.shutdown()
        store.close()
    types = [change["ChangeType"] for change in listener.changes]
    assert types[:4] == ["NewInstance", "NewSeries", "NewStudy", "NewPatient"]  # as Orthanc
    assert types[4:] == ["StableSeries"] * 2 + ["StableStudy"] * 2 + ["StablePatient"] * 2
    seqs = [change["Seq"] for change in listener.changes]
    assert seqs == sorted(seqs)
    assert before.ids.instance not in {change["ID"] for change in listener.changes}
    stable = {(level, resource): tags for level, resource, tags in listener.stable}
    assert stable[("Study", after.ids.study)]["StudyDescription"] == "Knee"
    assert stable[("Patient", after.ids.patient)]["PatientID"] == "NEW"
    assert len(listener.stable) == 6


def test_two_processes_tell_each_change_once(indexes: list[SqlIndex], tmp_path: Path) -> None:
    listeners = [Listener(), Listener()]
    managers = [plugins_with(listener) for listener in listeners]
    followers = [
        SinkFollower(index, PluginListenersSink(index, manager), f"process{n}")
        for n, (index, manager) in enumerate(zip(indexes, managers, strict=True))
    ]
    store = StoreService(indexes[1], FileSystemStorage(tmp_path / "files"), ServiceOptions())
    try:
        for follower in followers:
            follower.step()
        for number in range(3):
            store.store(make_dicom(PatientID=f"P{number}"), DICOM)
            for follower in followers:
                drain(follower)
    finally:
        store.close()
        for manager in managers:
            manager.shutdown()
    told = [change["Seq"] for listener in listeners for change in listener.changes]
    assert sorted(told) == [change.seq for change in indexes[0].changes(0, 100)[0]]
    assert listeners[1].changes == []  # the first holds the lease


def test_not_wanted_without_listeners() -> None:
    assert not PluginListenersSink.wanted(PluginManager())
