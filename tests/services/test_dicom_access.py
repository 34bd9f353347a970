"""Who may associate and what they may ask: Orthanc's application entity filter."""

from __future__ import annotations

from typing import Any

from pharos.services.dicom_access import AccessRules, DicomAccess
from pharos.services.modalities import DicomRequest, Modalities, parse_modalities


def access(modalities: dict[str, Any], **rules: Any) -> DicomAccess:
    declared, _ = parse_modalities(modalities)
    return DicomAccess(AccessRules(aet="PHAROS", **rules), Modalities.of(declared))


def test_defaults_allow_echo_and_store_from_anyone_only() -> None:
    checker = access({})
    assert checker.association_refusal("ANYONE", "WHATEVER", "10.1.1.1") is None
    assert checker.request_refusal("ANYONE", "10.1.1.1", DicomRequest.ECHO) is None
    assert checker.request_refusal("ANYONE", "10.1.1.1", DicomRequest.STORE) is None
    reason = checker.request_refusal("ANYONE", "10.1.1.1", DicomRequest.FIND)
    assert reason is not None
    assert '"ANYONE" is not declared in DicomModalities' in reason
    assert "DicomAlwaysAllowFind is false" in reason


def test_called_aet_is_checked_when_asked() -> None:
    checker = access({}, check_called_aet=True)
    assert checker.association_refusal("X", "pharos", "10.1.1.1") is None  # case-insensitive
    refusal = checker.association_refusal("X", "OTHER", "10.1.1.1")
    assert refusal is not None and refusal[0] == "called"
    assert '"OTHER"' in refusal[1] and "DicomCheckCalledAet" in refusal[1]


def test_unknown_calling_aet_is_rejected_when_nothing_is_always_allowed() -> None:
    checker = access({"known": ["KNOWN", "10.1.1.1", 104]}, always_allowed=frozenset())
    refusal = checker.association_refusal("STRANGER", "PHAROS", "10.1.1.1")
    assert refusal is not None and refusal[0] == "calling"
    assert checker.association_refusal("known", "PHAROS", "10.9.9.9") is None


def test_modality_host_is_checked_when_asked() -> None:
    checker = access(
        {"known": ["KNOWN", "127.0.0.1", 104], "named": ["NAMED", "localhost", 104]},
        always_allowed=frozenset(),
        check_modality_host=True,
    )
    assert checker.association_refusal("KNOWN", "PHAROS", "127.0.0.1") is None
    refusal = checker.association_refusal("KNOWN", "PHAROS", "10.2.2.2")
    assert refusal is not None and "10.2.2.2" in refusal[1] and "127.0.0.1" in refusal[1]
    # A host name is compared with the addresses it resolves to.
    assert checker.association_refusal("NAMED", "PHAROS", "127.0.0.1") is None
    assert checker.request_refusal("KNOWN", "10.2.2.2", DicomRequest.FIND) is not None


def test_per_modality_permissions() -> None:
    checker = access(
        {"ro": {"AET": "RO", "Host": "h", "Port": 104, "AllowStore": False, "AllowMove": False}},
        always_allowed=frozenset(),
    )
    assert checker.request_refusal("RO", "10.1.1.1", DicomRequest.FIND) is None
    reason = checker.request_refusal("RO", "10.1.1.1", DicomRequest.MOVE)
    assert reason == 'C-MOVE is not allowed for the modality "ro" (DicomModalities)'
    # DicomAlwaysAllowStore wins over the modality's AllowStore, as in Orthanc.
    lenient = access(
        {"ro": {"AET": "RO", "Host": "h", "Port": 104, "AllowStore": False}},
        always_allowed=frozenset({DicomRequest.STORE}),
    )
    assert lenient.request_refusal("RO", "10.1.1.1", DicomRequest.STORE) is None


def test_several_modalities_with_one_aet() -> None:
    modalities = {
        "a": {"AET": "SHARED", "Host": "10.0.0.1", "Port": 104, "AllowMove": False},
        "b": {"AET": "SHARED", "Host": "10.0.0.2", "Port": 104},
    }
    # Without the host check, every one of them must allow the request.
    loose = access(modalities, always_allowed=frozenset())
    assert loose.request_refusal("SHARED", "10.0.0.2", DicomRequest.MOVE) is not None
    assert loose.request_refusal("SHARED", "10.0.0.2", DicomRequest.FIND) is None
    # With it, the one at the peer's address decides.
    strict = access(modalities, always_allowed=frozenset(), check_modality_host=True)
    assert strict.request_refusal("SHARED", "10.0.0.2", DicomRequest.MOVE) is None
    assert strict.request_refusal("SHARED", "10.0.0.1", DicomRequest.MOVE) is not None
