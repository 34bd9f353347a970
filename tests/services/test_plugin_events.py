"""Plugins on the store path, on a real index (SQLite, PostgreSQL): filters refuse before
anything is written, listeners hear of committed instances, and a failing plugin never costs
an instance. (Changes and stable resources: tests/events/test_plugin_listeners.py.)"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pharos.index.base import Reception
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.plugins import IncomingInstance, PluginManager, hookimpl
from pharos.services.options import ServiceOptions
from pharos.services.store import StoreService
from pharos.storage.filesystem import FileSystemStorage
from tests.dicomgen import make_dicom

DICOM = Reception(
    origin="DicomProtocol", remote_aet="MODALITY", remote_ip="10.1.2.3", called_aet="PHAROS"
)


@pytest.fixture
def index(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SqlIndex]:
    opened: SqlIndex
    if backend == "sqlite":
        opened = open_sqlite_index(tmp_path)
    else:
        section = request.getfixturevalue("postgres_databases").create()
        opened = open_postgres_index(postgres_url(section), 2)  # type: ignore[arg-type]
    yield opened
    opened.close()


class Plugin:
    """Refuses MR, remembers what it hears; may be told to fail."""

    def __init__(self) -> None:
        self.stored: list[tuple[str, dict[str, Any], dict[str, str], dict[str, str]]] = []
        self.changes: list[dict[str, Any]] = []
        self.stable: list[tuple[str, str, dict[str, Any]]] = []
        self.fail = False

    @hookimpl
    def pharos_incoming_instance_filter(self, instance: IncomingInstance) -> bool:
        if instance.simplified_tags.get("PatientID") == "BOOM":
            raise ValueError("cannot decide")
        return instance.simplified_tags.get("Modality") != "MR"

    @hookimpl
    def pharos_on_stored_instance(
        self,
        instance_id: str,
        simplified_tags: dict[str, Any],
        metadata: dict[str, str],
        origin: dict[str, str],
    ) -> None:
        if self.fail:
            raise RuntimeError("listener bug")
        self.stored.append((instance_id, simplified_tags, metadata, origin))

    @hookimpl
    def pharos_on_change(self, change: dict[str, Any]) -> None:
        self.changes.append(change)

    @hookimpl
    def pharos_on_stable(self, level: str, resource_id: str, tags: dict[str, Any]) -> None:
        self.stable.append((level, resource_id, tags))


class World:
    def __init__(self, index: SqlIndex, tmp_path: Path):
        self.index = index
        self.storage = FileSystemStorage(tmp_path / "files")
        self.plugin = Plugin()
        self.plugins = PluginManager()
        self.plugins.register(self.plugin, "test")
        self.store = StoreService(index, self.storage, ServiceOptions(), self.plugins)

    def files(self) -> list[str]:
        return [uuid for uuid, _ in self.storage.scan()]


@pytest.fixture
def world(index: SqlIndex, tmp_path: Path) -> Iterator[World]:
    made = World(index, tmp_path)
    yield made
    made.plugins.shutdown()
    made.store.close()


def test_refused_instances_leave_nothing(world: World) -> None:
    with pytest.raises(PharosError) as refused:
        world.store.store(make_dicom(Modality="MR"), DICOM)
    assert refused.value.code is ErrorCode.FORBIDDEN_ACCESS
    assert refused.value.details == "Instance refused by plugin test: filtered out"
    with pytest.raises(PharosError) as failed:
        world.store.store(make_dicom(PatientID="BOOM"), DICOM)
    assert failed.value.details == ("Instance refused by plugin test: filter failed: cannot decide")
    assert world.index.list_public_ids(Level.INSTANCE, 0, None) == []
    assert world.files() == []
    assert world.index.last_change() is None


def test_listeners_hear_of_stored_instances_and_a_failing_one_costs_nothing(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    first = world.store.store(make_dicom(PatientID="P1", InstanceNumber=3), DICOM)
    world.store.store(make_dicom(), DICOM)
    assert world.plugins.wait_idle(10)
    instance_id, tags, metadata, origin = world.plugin.stored[0]
    assert instance_id == first.ids.instance
    assert tags["PatientID"] == "P1"
    assert origin == {
        "RequestOrigin": "DicomProtocol",
        "RemoteIp": "10.1.2.3",
        "RemoteAet": "MODALITY",
        "CalledAet": "PHAROS",
    }
    assert metadata["RemoteAET"] == "MODALITY"
    assert metadata["Origin"] == "DicomProtocol"
    assert metadata["IndexInSeries"] == "3"
    assert metadata["TransferSyntax"] == "1.2.840.10008.1.2.1"
    assert len(world.plugin.stored) == 2

    world.plugin.fail = True
    with caplog.at_level(logging.ERROR, "pharos.plugins"):
        kept = world.store.store(make_dicom(PatientID="P2"), DICOM)
        assert world.plugins.wait_idle(10)
    assert world.index.lookup(kept.ids.instance) is not None
    assert "listener bug" in caplog.text


def test_resent_instances_are_not_told_again(world: World) -> None:
    data = make_dicom()
    world.store.store(data, DICOM)
    world.store.store(data, DICOM)  # AlreadyStored
    assert world.plugins.wait_idle(10)
    assert len(world.plugin.stored) == 1


def test_a_refused_archive_member_is_reported_alone(world: World) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ct.dcm", make_dicom(Modality="CT"))
        archive.writestr("mr.dcm", make_dicom(Modality="MR"))
    results = world.store.store_archive(buffer.getvalue(), Reception(origin="RestApi"))
    assert [type(result).__name__ for result in results] == [
        "StoreResult",
        "ArchiveMemberFailure",
    ]
    assert results[1].to_json()["Details"] == "Instance refused by plugin test: filtered out"
