"""The live registry of modalities: configured, defined through REST, kept in the index
(DicomModalitiesInDatabase, both backends), and seen at once by the DICOM access control."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.dicom_access import AccessRules, DicomAccess
from pharos.services.modalities import DicomRequest, parse_modalities
from pharos.services.remote_modalities import ModalityRegistry, modality_json

CONFIGURED, _ = parse_modalities({"pacs": ["PACS", "10.0.0.1", 104]})


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


def test_object_form_as_orthanc_serializes_it() -> None:
    registry = ModalityRegistry(CONFIGURED)
    assert modality_json(registry.require("pacs")) == {
        "AET": "PACS",
        "Host": "10.0.0.1",
        "Port": 104,
        "Manufacturer": "Generic",
        "AllowEcho": True,
        "AllowStore": True,
        "AllowFind": True,
        "AllowFindWorklist": True,
        "AllowGet": True,
        "AllowMove": True,
        "AllowNAction": True,
        "AllowEventReport": True,
        "AllowTranscoding": True,
        "UseDicomTls": False,
        "LocalAet": "",
        "Timeout": 0,
    }


def test_in_memory_put_and_delete() -> None:
    registry = ModalityRegistry(CONFIGURED)
    registry.put("ct", {"AET": "CT", "Host": "10.0.0.2", "Port": "4242", "AllowStore": False})
    assert registry.names() == ["ct", "pacs"]
    ct = registry.require("ct")
    assert ct.port == 4242 and not ct.allows(DicomRequest.STORE)
    registry.put("ct", ["CT2", "10.0.0.3", 4243])  # replaced
    assert registry.require("ct").aet == "CT2"
    registry.delete("pacs")
    assert registry.names() == ["ct"]
    with pytest.raises(PharosError) as info:
        registry.delete("pacs")
    assert info.value.code is ErrorCode.INEXISTENT_ITEM
    with pytest.raises(PharosError) as info:
        registry.require("pacs")
    assert info.value.code is ErrorCode.INEXISTENT_ITEM


@pytest.mark.parametrize(
    "value",
    [
        ["CT", "host"],
        ["CT", "host", 70000],
        {"AET": "CT", "Host": "h"},
        {"AET": "CT", "Host": "h", "Port": 1, "AllowEcho": "yes"},
        {"AET": "CT", "Host": "h", "Port": 1, "Manufacturer": "Acme"},
        "CT",
    ],
)
def test_invalid_definitions_change_nothing(value: object) -> None:
    registry = ModalityRegistry(CONFIGURED)
    with pytest.raises(PharosError) as info:
        registry.put("ct", value)
    assert info.value.code is ErrorCode.BAD_FILE_FORMAT
    assert "ct" in (info.value.details or "")
    assert registry.names() == ["pacs"]


def test_names_fit_the_index() -> None:
    registry = ModalityRegistry(CONFIGURED)
    with pytest.raises(PharosError) as info:
        registry.put("x" * 256, ["CT", "h", 104])
    assert info.value.code is ErrorCode.BAD_REQUEST
    registry.put("x" * 255, ["CT", "h", 104])


def test_in_database_shared_between_registries(index: SqlIndex) -> None:
    first = ModalityRegistry(CONFIGURED, index=index)
    second = ModalityRegistry(CONFIGURED, index=index)  # another process on the same index
    first.put("ct", {"AET": "CT", "Host": "10.0.0.2", "Port": 4242, "LocalAet": "ME"})
    assert second.names() == ["ct", "pacs"]
    assert second.require("ct").local_aet == "ME"
    first.put("pacs", ["PACS2", "10.0.0.9", 11112])  # a stored one overrides the configured
    assert second.require("pacs").aet == "PACS2"
    second.delete("ct")
    assert first.get("ct") is None
    assert index.stored_modalities().keys() == {"pacs"}


def test_access_control_sees_changes_at_once() -> None:
    registry = ModalityRegistry(CONFIGURED)
    access = DicomAccess(AccessRules(aet="PHAROS", always_allowed=frozenset()), registry)
    assert access.association_refusal("CT", "PHAROS", "10.0.0.2") is not None
    registry.put("ct", {"AET": "CT", "Host": "10.0.0.2", "Port": 104, "AllowFind": False})
    assert access.association_refusal("ct", "PHAROS", "10.0.0.2") is None  # case-insensitive
    assert access.request_refusal("CT", "10.0.0.2", DicomRequest.ECHO) is None
    refusal = access.request_refusal("CT", "10.0.0.2", DicomRequest.FIND)
    assert refusal is not None and '"ct"' in refusal
    registry.delete("ct")
    assert access.request_refusal("CT", "10.0.0.2", DicomRequest.ECHO) is not None
    assert [m.name for m in access.modalities] == ["pacs"]
