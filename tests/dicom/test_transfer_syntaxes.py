"""The transfer syntaxes accepted for storage, from AcceptedTransferSyntaxes and the groups."""

from __future__ import annotations

import pytest

from pharos.dicom.transfer_syntaxes import GROUPS, KNOWN, UNCOMPRESSED, accepted_transfer_syntaxes

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
J2K = "1.2.840.10008.1.2.4.90"
RLE = "1.2.840.10008.1.2.5"
DEFLATED = "1.2.840.10008.1.2.1.99"


def test_default_accepts_everything_known() -> None:
    assert accepted_transfer_syntaxes(["1.2.840.10008.1.*"], {}) == list(KNOWN)


def test_unset_groups_change_nothing() -> None:
    groups = {option: None for option in GROUPS}
    assert accepted_transfer_syntaxes(["1.2.840.10008.1.*"], groups) == list(KNOWN)


def test_a_group_set_to_false_is_removed() -> None:
    accepted = accepted_transfer_syntaxes(
        ["1.2.840.10008.1.*"], {"JpegTransferSyntaxAccepted": False}
    )
    assert JPEG_BASELINE not in accepted
    assert "1.2.840.10008.1.2.4.70" not in accepted  # process 14 SV1 is in the JPEG group
    assert J2K in accepted and RLE in accepted


def test_groups_add_to_a_narrow_pattern() -> None:
    accepted = accepted_transfer_syntaxes(
        ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"],
        {"RleTransferSyntaxAccepted": True, "DeflatedTransferSyntaxAccepted": True},
    )
    assert accepted == ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2", DEFLATED, RLE]


def test_wildcards_match_whole_uids() -> None:
    assert accepted_transfer_syntaxes(["1.2.840.10008.1.2.4.9?"], {}) == [
        J2K,
        "1.2.840.10008.1.2.4.91",
        "1.2.840.10008.1.2.4.92",
        "1.2.840.10008.1.2.4.93",
        "1.2.840.10008.1.2.4.94",
        "1.2.840.10008.1.2.4.95",
    ]
    assert accepted_transfer_syntaxes(["1.2.840.10008.1.2.4"], {}) == []


def test_uncompressed_syntaxes_are_known() -> None:
    assert set(UNCOMPRESSED) <= set(KNOWN)


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="strings"):
        accepted_transfer_syntaxes([42], {})  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unknown group"):
        accepted_transfer_syntaxes([], {"GifTransferSyntaxAccepted": True})
