"""The PS3.15 table E.1-1 basic profile (2023b): every attribute it lists, put in a dataset
(top level and inside a sequence item) and anonymized, ends as the table says."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import generate_uid

from pharos.dicom import anonymization as profile
from pharos.dicom.anonymization import Action, action_of, code_of, resolve
from pharos.dicom.modification import IdentifierMap, apply, parse_request
from pharos.model.levels import Level

_SAMPLES: dict[str, Any] = {
    "AE": "STATION1",
    "AS": "030Y",
    "CS": "VALUE",
    "DA": "20200102",
    "DS": "1.5",
    "DT": "20200102030405",
    "IS": "5",
    "LO": "secret long",
    "LT": "secret text",
    "PN": "Secret^Person",
    "SH": "secret",
    "ST": "secret text",
    "TM": "030405",
    "UC": "secret",
    "UR": "http://example.org/secret",
    "UT": "secret text",
    "US": 7,
    "SS": -7,
    "UL": 7,
    "SL": -7,
    "FL": 1.5,
    "FD": 1.5,
    "OB": b"\x01\x02",
    "OW": b"\x01\x02",
    "OD": b"\x00" * 8,
    "OF": b"\x00" * 4,
    "OL": b"\x00" * 4,
    "OV": b"\x00" * 8,
    "UN": b"\x01\x02",
    "AT": Tag(0x0010, 0x0010),
}


def vr(tag: BaseTag) -> str:
    return str(dictionary_VR(tag)).split(" or ")[0]


def element(tag: BaseTag) -> DataElement:
    kind = vr(tag)
    if kind == "SQ":
        item = Dataset()
        item.CodeValue = "KEPT"
        return DataElement(tag, kind, Sequence([item]))
    if kind == "UI":
        return DataElement(tag, kind, generate_uid())
    return DataElement(tag, kind, _SAMPLES[kind])


def full_dataset() -> Dataset:
    ds = Dataset()
    for tag in profile.BASIC_PROFILE:
        ds[tag] = element(tag)
    ds.add_new(0x50000010, "US", 3)  # curve data (50xx)
    ds.add_new(0x60003000, "OW", b"\x00\x00")  # overlay data
    ds.add_new(0x60024000, "LT", "overlay comment")
    ds.add_new(0x60000010, "US", 16)  # overlay rows: not in the table, kept
    ds.Modality = "CT"  # not in the table: kept
    return ds


def anonymized(ds: Dataset, ids: IdentifierMap | None = None, **body: Any) -> Dataset:
    apply(ds, parse_request(body, Level.INSTANCE, anonymize=True), ids or IdentifierMap())
    return ds


def test_the_table_is_the_2023b_basic_profile() -> None:
    assert len(profile.BASIC_PROFILE) == 604
    assert all(keyword_for_tag(tag) for tag in profile.BASIC_PROFILE)
    # a few rows checked against the standard by hand
    assert code_of(Tag("PatientName")) == "Z"
    assert code_of(Tag("PatientBirthDate")) == "Z"
    assert code_of(Tag("PatientAge")) == "X"
    assert code_of(Tag("InstitutionName")) == "X/Z/D"
    assert code_of(Tag("ContentDate")) == "Z/D"
    assert code_of(Tag("SeriesDate")) == "X/D"
    assert code_of(Tag("AcquisitionDate")) == "X/Z"
    assert code_of(Tag("VerifyingObserverName")) == "D"
    assert code_of(Tag("FrameOfReferenceUID")) == "U"
    assert code_of(Tag("ReferencedImageSequence")) == "X/Z/U*"
    assert code_of(Tag("Modality")) is None
    assert code_of(0x50100020) == "X" and code_of(0x601E3000) == "X"
    assert code_of(0x60000010) is None


@pytest.mark.parametrize(
    ("code", "action"),
    [
        ("X", Action.REMOVE),
        ("Z", Action.EMPTY),
        ("D", Action.DUMMY),
        ("U", Action.UID),
        ("K", Action.KEEP),
        ("X/Z", Action.REMOVE),
        ("X/D", Action.REMOVE),
        ("X/Z/D", Action.REMOVE),
        ("Z/D", Action.EMPTY),
        ("X/Z/U*", Action.KEEP),
    ],
)
def test_codes_resolve_to_one_action(code: str, action: Action) -> None:
    assert resolve(code) is action


def check(ds: Dataset, original: Dataset, ids: IdentifierMap, where: str) -> list[str]:
    """Every listed attribute as the table says; the problems found."""
    problems = []
    for tag, code in profile.BASIC_PROFILE.items():
        name = f"{where} {keyword_for_tag(tag)} ({code})"
        if tag in (Tag("PatientID"), Tag("PatientName")) and where == "top":
            continue  # the generated patient, checked apart
        action = action_of(tag)
        if action is Action.REMOVE:
            if tag in ds:
                problems.append(f"{name} not removed")
            continue
        if tag not in ds:
            problems.append(f"{name} missing")
            continue
        value = ds[tag].value
        if action is Action.EMPTY:
            if value not in (None, "", b"") and not (isinstance(value, Sequence) and not value):
                problems.append(f"{name} not emptied: {value!r}")
        elif action is Action.DUMMY:
            expected = profile.DUMMY_VALUES.get(vr(tag))
            if vr(tag) == "SQ":
                if len(value) != 0:
                    problems.append(f"{name} sequence not replaced")
            elif expected is not None and value != expected:
                problems.append(f"{name} not a dummy: {value!r}")
            elif expected is None and value == original[tag].value and value:
                problems.append(f"{name} kept its value")
        elif action is Action.UID:
            old = str(original[tag].value)
            if str(value) != ids.uids.get(old) or str(value) == old:
                problems.append(f"{name} not mapped: {value!r}")
        elif action is Action.KEEP and vr(tag) == "SQ" and len(value) != 1:
            problems.append(f"{name} not kept")
    return problems


def test_every_listed_attribute_is_handled_at_top_level_and_in_sequences() -> None:
    ds = full_dataset()
    nested = full_dataset()
    holder = Dataset()
    holder.Modality = "CT"
    holder.ReferencedImageSequence = Sequence([nested])  # X/Z/U*: kept, contents anonymized
    ds.SourceImageSequence = holder.ReferencedImageSequence
    original = copy.deepcopy(ds)
    ids = IdentifierMap()
    anonymized(ds, ids)
    problems = check(ds, original, ids, "top")
    item = ds.SourceImageSequence[0]
    problems += check(item, original.SourceImageSequence[0], ids, "nested")
    assert problems == []
    assert 0x50000010 not in ds and 0x60003000 not in ds and 0x60024000 not in ds
    assert ds[0x60000010].value == 16 and ds.Modality == "CT"
    assert ds.PatientIdentityRemoved == "YES"
    assert "PS 3.15-2023b Table E.1-1" in ds.DeidentificationMethod


def test_the_same_uid_gets_the_same_new_value_everywhere() -> None:
    frame = generate_uid()
    first, second = Dataset(), Dataset()
    for ds in (first, second):
        ds.PatientID = "P"
        ds.FrameOfReferenceUID = frame
        ref = Dataset()
        ref.FrameOfReferenceUID = frame
        ds.ReferencedFrameOfReferenceSequence = Sequence([ref])
    ids = IdentifierMap()
    anonymized(first, ids)
    anonymized(second, ids)
    new = ids.uids[frame]
    assert first.FrameOfReferenceUID == second.FrameOfReferenceUID == new != frame
    assert first.ReferencedFrameOfReferenceSequence[0].FrameOfReferenceUID == new
    assert first.PatientID == second.PatientID == first.PatientName


@pytest.mark.parametrize("version", ["2008", "2017c", "2021b", "2023b", None])
def test_older_dicom_versions_use_the_2023b_table(version: str | None) -> None:
    assert profile.profile_version(version) == "2023b"


def test_unknown_dicom_version_is_refused() -> None:
    with pytest.raises(ValueError, match="Unknown DicomVersion"):
        profile.profile_version("1999")
