"""The plugins' C-FIND filters on identifiers: outgoing (find_filters) and incoming
(DicomQueryService.filtered)."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from pharos.dicom.query import parse_identifier
from pharos.model.errors import ErrorCode, PharosError
from pharos.plugins import PluginManager, hookimpl
from pharos.services.dicom_query import DicomQueryService
from pharos.services.find_filters import filter_outgoing_find
from pharos.services.options import ServiceOptions


def identifier() -> Dataset:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientID = "P1"
    ds.PatientName = "Doe*"
    ds.StudyDate = ""
    item = Dataset()
    item.CodeValue = "X"
    ds.ProcedureCodeSequence = Sequence([item])
    return ds


def manager_with(plugin: object) -> PluginManager:
    manager = PluginManager()
    manager.register(plugin, "filter")
    return manager


def test_outgoing_without_filter_is_the_same_object() -> None:
    original = identifier()
    assert filter_outgoing_find(PluginManager(), original, "pacs", "Latin1") is original


def test_outgoing_rewrite_keeps_sequences_and_level() -> None:
    seen: list[tuple[dict[str, str], str]] = []

    class Rewrite:
        @hookimpl
        def pharos_outgoing_find_filter(self, query: dict[str, str], modality: str) -> Any:
            seen.append((dict(query), modality))
            query.pop("0010,0010")
            return {**query, "StudyDescription": "Brain", "NotATag": "x", "0008,0052": "SERIES"}

    rewritten = filter_outgoing_find(manager_with(Rewrite()), identifier(), "pacs", "Latin1")
    assert seen == [
        (
            {
                "0008,0020": "",
                "0008,0052": "STUDY",
                "0010,0010": "Doe*",
                "0010,0020": "P1",
            },
            "pacs",
        )
    ]
    assert rewritten.QueryRetrieveLevel == "SERIES"
    assert rewritten.StudyDescription == "Brain"
    assert "PatientName" not in rewritten
    assert rewritten.ProcedureCodeSequence[0].CodeValue == "X"
    assert rewritten.SpecificCharacterSet == "ISO_IR 100"


def service(plugins: PluginManager) -> DicomQueryService:
    return DicomQueryService(None, None, None, ServiceOptions(), "PHAROS", plugins)  # type: ignore[arg-type]


def test_incoming_rewrite_and_refusal() -> None:
    class Incoming:
        @hookimpl
        def pharos_incoming_find_filter(self, query: dict[str, str], origin: dict[str, str]) -> Any:
            if origin.get("RemoteAet") == "BAD":
                return False
            return {"0008,0052": "SERIES", "0010,0020": "P2", "0008,0060": "CT"}

    queries = service(manager_with(Incoming()))
    parsed = parse_identifier(identifier(), "Latin1")
    filtered = queries.filtered(parsed, {"RemoteAet": "GOOD"})
    assert filtered.level == "SERIES"
    assert filtered.value(0x00100020) == "P2"
    assert filtered.value(0x00080060) == "CT"
    assert filtered.value(0x00100010) is None  # removed by the filter
    assert [key.tag for key in filtered.keys if key.is_sequence] == [0x00081032]  # kept
    assert [key.tag for key in filtered.keys] == sorted(key.tag for key in filtered.keys)
    with pytest.raises(PharosError) as refused:
        queries.filtered(parsed, {"RemoteAet": "BAD"})
    assert refused.value.code is ErrorCode.FORBIDDEN_ACCESS
    assert refused.value.details == "C-FIND refused by plugin filter: filtered out"


def test_incoming_without_filter_is_unchanged() -> None:
    parsed = parse_identifier(identifier(), "Latin1")
    assert service(PluginManager()).filtered(parsed, {}) is parsed
