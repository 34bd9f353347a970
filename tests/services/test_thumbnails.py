"""The thumbnail cache against a real index (SQLite and PostgreSQL) and storage area: the races
that HTTP tests cannot force: losing the first-request race, the instance vanishing while its
thumbnail is rendered, a cached file gone missing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from pharos.index.base import Reception
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.deletion import DeletionService
from pharos.services.files import FileService
from pharos.services.options import ServiceOptions
from pharos.services.resources import ResourceService
from pharos.services.store import StoreService
from pharos.services.thumbnails import THUMBNAIL_CONTENT_TYPE, ThumbnailService
from pharos.storage.filesystem import FileSystemStorage
from tests.dicomgen import make_dicom

REST = Reception("RestApi", "", "127.0.0.1")


@dataclass
class Server:
    index: SqlIndex
    storage_dir: Path
    store: StoreService
    resources: ResourceService
    thumbnails: ThumbnailService
    deletion: DeletionService

    def files(self) -> list[Path]:
        return sorted(p for p in self.storage_dir.glob("??/??/*") if len(p.name) == 36)

    def thumbnail_record(self, instance_id: str) -> object:
        ref = self.resources.resolve(Level.INSTANCE, instance_id)
        return self.index.attachment(ref, THUMBNAIL_CONTENT_TYPE)


@pytest.fixture
def server(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Server]:
    if backend == "sqlite":
        index = open_sqlite_index(tmp_path)
    else:
        section = request.getfixturevalue("postgres_databases").create()
        index = open_postgres_index(postgres_url(section))
    storage = FileSystemStorage(tmp_path / "storage", fsync=False)
    store = StoreService(index, storage, ServiceOptions())
    resources = ResourceService(index)
    files = FileService(index, storage)
    yield Server(
        index,
        tmp_path / "storage",
        store,
        resources,
        ThumbnailService(index, storage, resources, files),
        DeletionService(index, storage),
    )
    store.close()
    index.close()


def test_loser_of_the_first_request_race_keeps_the_winner(server: Server) -> None:
    instance = server.store.store(make_dicom(rows=64, columns=64), REST).ids.instance
    thumbnails = server.thumbnails
    render = thumbnails.render
    # Another request caches its thumbnail while this one renders.
    other = ThumbnailService(
        server.index,
        FileSystemStorage(server.storage_dir, fsync=False),
        server.resources,
        FileService(server.index, FileSystemStorage(server.storage_dir)),
    )

    def racing_render(instance_id: str) -> bytes:
        data = render(instance_id)
        other.instance(instance_id)
        return data

    thumbnails.render = racing_render  # type: ignore[method-assign]
    data = thumbnails.instance(instance)
    winner = server.thumbnail_record(instance)
    assert winner is not None
    assert len(server.files()) == 2  # the DICOM file and the winner's thumbnail only
    thumbnails.render = render  # type: ignore[method-assign]
    assert thumbnails.instance(instance) == data
    assert server.thumbnail_record(instance) == winner


def test_instance_deleted_while_rendering_leaves_no_file(server: Server) -> None:
    instance = server.store.store(make_dicom(rows=64, columns=64), REST).ids.instance
    thumbnails = server.thumbnails
    render = thumbnails.render

    def render_then_delete(instance_id: str) -> bytes:
        data = render(instance_id)
        server.deletion.delete(server.resources.resolve(Level.INSTANCE, instance_id))
        return data

    thumbnails.render = render_then_delete  # type: ignore[method-assign]
    with pytest.raises(PharosError) as caught:
        thumbnails.instance(instance)
    assert caught.value.code is ErrorCode.UNKNOWN_RESOURCE
    assert server.files() == []


def test_missing_cached_file_is_generated_again(server: Server) -> None:
    instance = server.store.store(make_dicom(rows=64, columns=64), REST).ids.instance
    data = server.thumbnails.instance(instance)
    record = server.thumbnail_record(instance)
    assert record is not None
    cached = next(p for p in server.files() if p.name == record.uuid)  # type: ignore[attr-defined]
    cached.unlink()
    assert server.thumbnails.instance(instance) == data
    assert len(server.files()) == 2
    assert server.thumbnail_record(instance) != record  # a new revision, a new file


def test_non_images_are_refused_and_not_cached(server: Server) -> None:
    instance = server.store.store(make_dicom(PixelData=None), REST).ids.instance
    with pytest.raises(PharosError) as caught:
        server.thumbnails.instance(instance)
    assert caught.value.http_status == 415
    assert server.thumbnail_record(instance) is None
    assert len(server.files()) == 1
