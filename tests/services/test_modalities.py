"""DicomModalities as Orthanc 1.10 reads it: array and object forms, permissions, errors."""

from __future__ import annotations

from typing import Any

import pytest

from pharos.services.modalities import (
    DicomRequest,
    Modalities,
    ModalityError,
    parse_modalities,
    parse_modality,
)


def test_array_form() -> None:
    modality, warnings = parse_modality("sample", ["STORESCP", "127.0.0.1", 2000])
    assert (modality.name, modality.aet, modality.host, modality.port) == (
        "sample",
        "STORESCP",
        "127.0.0.1",
        2000,
    )
    assert modality.manufacturer == "Generic"
    assert all(modality.allows(request) for request in DicomRequest)
    assert warnings == []


def test_array_form_with_manufacturer_and_string_port() -> None:
    modality, _ = parse_modality("ge", ["GEPACS", "pacs.local", "104", "GE"])
    assert modality.port == 104
    assert modality.manufacturer == "GE"


def test_obsolete_manufacturer_is_read_as_its_replacement() -> None:
    modality, _ = parse_modality("old", ["OLD", "h", 104, "SyngoVia"])
    assert modality.manufacturer == "GenericNoWildcardInDates"


def test_object_form_with_permissions() -> None:
    modality, warnings = parse_modality(
        "untrusted",
        {
            "AET": "ORTHANC",
            "Port": 104,
            "Host": "127.0.0.1",
            "Manufacturer": "Generic",
            "AllowEcho": False,
            "AllowFind": False,
            "AllowGet": False,
            "AllowMove": False,
            "AllowStore": True,
            "AllowStorageCommitment": False,
            "AllowTranscoding": True,
            "UseDicomTls": False,
            "LocalAet": "HELLO",
            "Timeout": 60,
            "Colour": "blue",
        },
    )
    assert modality.allowed == frozenset({DicomRequest.STORE, DicomRequest.FIND_WORKLIST})
    assert modality.local_aet == "HELLO"
    assert modality.timeout == 60
    assert warnings == ['modality "untrusted": unknown option "Colour" ignored']


def test_storage_commitment_alias_wins_over_its_parts() -> None:
    modality, _ = parse_modality(
        "m",
        {"AET": "A", "Host": "h", "Port": 1, "AllowNAction": True, "AllowStorageCommitment": False},
    )
    assert not modality.allows(DicomRequest.N_ACTION)
    assert not modality.allows(DicomRequest.N_EVENT_REPORT)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["A", "h"], "array form"),
        (["A", "h", 1, 2, 3], "array form"),
        (["A", 5, 104], "array form"),
        (["A", "h", 0], r"range \[1..65534\]"),
        (["A", "h", 65535], r"range \[1..65534\]"),
        (["A", "h", "http"], "must be a number"),
        (["A", "h", 104, "Philips"], "unknown manufacturer"),
        ({"Host": "h", "Port": 104}, '"AET" is missing'),
        ({"AET": "A", "Host": "h"}, '"Port" is missing'),
        ({"AET": "A", "Host": "h", "Port": 104, "AllowEcho": "no"}, "true or false"),
        ({"AET": "A", "Host": "h", "Port": 104, "Timeout": -1}, "positive integer"),
        ("A h 104", "expected"),
    ],
)
def test_bad_entries_are_refused(value: Any, message: str) -> None:
    with pytest.raises(ModalityError, match=message):
        parse_modality("bad", value)


def test_lookup_by_aet_is_case_insensitive_unless_strict() -> None:
    declared, _ = parse_modalities(
        {"a": ["PACS", "10.0.0.1", 104], "b": ["pacs", "10.0.0.2", 104], "c": ["OTHER", "h", 1]}
    )
    relaxed = Modalities.of(declared)
    assert [m.name for m in relaxed.by_aet("Pacs")] == ["a", "b"]
    strict = Modalities.of(declared, strict_aet=True)
    assert [m.name for m in strict.by_aet("PACS")] == ["a"]
    assert strict.by_aet("Pacs") == []
    assert relaxed.get("c") is not None and relaxed.get("d") is None
    assert len(relaxed) == 3
