"""The modalities table (DicomModalitiesInDatabase, schema version 4), on both backends."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect

from pharos.index.base import Reception
from pharos.index.migrations import migrate
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.schema import SCHEMA_VERSION, modalities, properties
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.model.levels import Level
from pharos.services.options import ServiceOptions
from pharos.services.store import StoreService
from pharos.storage.filesystem import FileSystemStorage
from tests.dicomgen import make_dicom
from tests.index.test_migrations import engine, version_of  # noqa: F401 - fixture


@pytest.fixture
def index(backend: str, tmp_path: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    opened: SqlIndex
    if backend == "sqlite":
        opened = open_sqlite_index(tmp_path)
    else:
        section = request.getfixturevalue("postgres_databases").create()
        opened = open_postgres_index(postgres_url(section), 2)
    yield opened
    opened.close()


def test_put_get_replace_delete(index: SqlIndex) -> None:
    assert index.stored_modalities() == {}
    index.put_modality("pacs", '{"AET": "PACS"}')
    index.put_modality("ct", '{"AET": "CT"}')
    index.put_modality("pacs", '{"AET": "PACS2"}')  # an upsert, not a duplicate key
    assert index.stored_modalities() == {"ct": '{"AET": "CT"}', "pacs": '{"AET": "PACS2"}'}
    assert index.stored_modality("pacs") == '{"AET": "PACS2"}'
    assert index.stored_modality("nope") is None
    assert index.delete_modality("pacs") is True
    assert index.delete_modality("pacs") is False
    assert list(index.stored_modalities()) == ["ct"]


def test_version_3_database_gains_the_modalities_table(engine) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    assert SCHEMA_VERSION >= 4  # 3 -> 4, then any later steps
    with engine.begin() as conn:
        migrate(conn)
        modalities.drop(conn)
        conn.execute(properties.update().values(value="3"))
    assert not inspect(engine).has_table("modalities")
    with engine.begin() as conn:
        assert migrate(conn) == SCHEMA_VERSION
    assert inspect(engine).has_table("modalities")
    assert version_of(engine) == SCHEMA_VERSION
    with engine.begin() as conn:
        conn.execute(modalities.insert().values(name="a", definition="{}"))


def test_exports_log(index: SqlIndex, tmp_path: Path) -> None:
    store = StoreService(index, FileSystemStorage(tmp_path / "files"), ServiceOptions())
    try:
        ids = store.store(
            make_dicom(patient_id="P9", study_uid="1.9", series_uid="1.9.1", sop_uid="1.9.1.1"),
            Reception("RestApi"),
        ).ids
    finally:
        store.close()
    index.log_exports([ids.series, ids.instance, "unknown"], "pacs")
    logged, done = index.exports(0, 10)
    assert done and [(e.level, e.public_id, e.remote_modality) for e in logged] == [
        (Level.SERIES, ids.series, "pacs"),
        (Level.INSTANCE, ids.instance, "pacs"),
    ]
    assert (logged[0].patient_id, logged[0].study_instance_uid) == ("P9", "1.9")
    assert (logged[0].series_instance_uid, logged[0].sop_instance_uid) == ("1.9.1", "")
    assert logged[1].sop_instance_uid == "1.9.1.1"
