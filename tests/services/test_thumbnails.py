"""The thumbnail cache against a real index (SQLite and PostgreSQL) and storage area: the races
that HTTP tests cannot force: losing the first-request race, the instance vanishing while its
thumbnail is rendered, a cached file gone missing."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image as PilImage

from pharos.dicom.image_formats import ImageFormat
from pharos.dicom.rendering import RenderOptions
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
from pharos.services.thumbnails import (
    THUMBNAIL_CONTENT_TYPE,
    THUMBNAIL_QUALITY,
    ThumbnailService,
)
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


def test_custom_thumbnails_show_the_same_instance_and_are_not_cached(server: Server) -> None:
    study = "1.2.826.7.1"
    # A study whose first series (by number) has no image: its second series is shown.
    server.store.store(
        make_dicom(study_uid=study, series_uid=f"{study}.1", SeriesNumber=1, PixelData=None), REST
    )
    ids = [
        server.store.store(
            make_dicom(
                study_uid=study,
                series_uid=f"{study}.2",
                sop_uid=f"{study}.2.{number}",
                instance_number=number,
                seed=number,  # each instance its own pixels
                SeriesNumber=2,
                rows=64,
                columns=32,
            ),
            REST,
        ).ids
        for number in (3, 1, 2)
    ]
    middle = ids[2].instance  # instance number 2 of 1, 2, 3
    png = RenderOptions(smooth=True)
    expected = server.thumbnails.render(middle, png, ImageFormat.PNG, 90)
    assert expected.startswith(b"\x89PNG")
    for level, public_id in (
        (Level.STUDY, ids[0].study),
        (Level.SERIES, ids[0].series),
        (Level.INSTANCE, middle),
    ):
        assert server.thumbnails.custom(level, public_id, png, ImageFormat.PNG, 90) == expected
    # Never enlarged without a viewport; fit in the viewport keeping the aspect ratio.
    assert PilImage.open(io.BytesIO(expected)).size == (32, 64)
    sized = server.thumbnails.custom(
        Level.SERIES, ids[0].series, RenderOptions(width=20, height=20), ImageFormat.JPEG, 80
    )
    assert PilImage.open(io.BytesIO(sized)).size == (10, 20)
    assert all(server.thumbnail_record(instance.instance) is None for instance in ids)
    others = [server.thumbnails.render(i.instance, png, ImageFormat.PNG, 90) for i in ids[:2]]
    assert expected not in others


def test_custom_thumbnail_of_a_study_without_images_is_refused(server: Server) -> None:
    ids = server.store.store(make_dicom(PixelData=None), REST).ids
    with pytest.raises(PharosError) as caught:
        server.thumbnails.custom(
            Level.STUDY, ids.study, RenderOptions(), ImageFormat.PNG, THUMBNAIL_QUALITY
        )
    assert caught.value.http_status == 415
