"""Modification requests read and applied to one dataset: Replace (nested paths too), Remove,
Keep, private tags, Force, the identifier map and the remapping of references."""

from __future__ import annotations

from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from pharos.dicom.modification import (
    IdentifierMap,
    Modification,
    apply,
    parse_path,
    parse_request,
    parse_tag,
    remap_uids,
)
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from tests.dicomgen import make_dataset


def modified(ds: Dataset, level: Level = Level.SERIES, **body: Any) -> IdentifierMap:
    ids = IdentifierMap()
    apply(ds, parse_request(body, level, anonymize=False), ids)
    return ids


def refused(body: dict[str, Any], level: Level = Level.STUDY, anonymize: bool = False) -> str:
    with pytest.raises(PharosError) as info:
        parse_request(body, level, anonymize)
    assert info.value.code is ErrorCode.BAD_REQUEST
    assert info.value.http_status == 400
    return info.value.details or ""


def test_tags_by_keyword_or_number() -> None:
    assert parse_tag("PatientName") == 0x00100010
    assert parse_tag("0010,1001") == parse_tag("0010-1001") == parse_tag("(0010,1001)")
    path = parse_path("ReferencedImageSequence[1].ReferencedSOPInstanceUID")
    assert path.parents == ((0x00081140, 1),) and path.tag == 0x00081155
    assert parse_path("ReferencedImageSequence[*].ReferencedSOPInstanceUID").parents[0][1] is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Replace": {"NoSuchTag": "x"}}, "Unknown DICOM tag"),
        ({"Remove": ["NoSuchTag"]}, "Unknown DICOM tag"),
        ({"Keep": ["Nope"]}, "Unknown DICOM tag"),
        ({"Replace": {"PatientID": "x"}}, "Force"),
        ({"Replace": {"StudyInstanceUID": "1.2"}}, "Force"),
        ({"Remove": ["SeriesInstanceUID"]}, "Force"),
        ({"Keep": ["SOPInstanceUID"]}, "Force"),
        ({"Replace": []}, "JSON object"),
        ({"Remove": "PatientName"}, "array"),
        ({"Force": "yes"}, "true or false"),
        ({"Replace": {"PatientName": ["a"]}}, "not a sequence"),
        ({"Replace": {"ReferencedImageSequence": "x"}}, "is a sequence"),
        ({"Replace": {"Rows": "many"}}, "not a valid value"),
        ({"Replace": {"0009,1001": "x"}}, "private creator"),
        ({"Replace": {"PatientName": "a"}, "Remove": ["PatientName"]}, "both"),
        ({"Replace": {"Bad[0].PatientName": "a"}}, "Unknown DICOM tag"),
        ({"Replace": {"ReferencedImageSequence.PatientName": "a"}}, "Sequence[index]"),
        ({"Remove": ["PixelData"]}, "pixel data"),
        ({"Transcode": 12}, "Transcode"),
        ({"DicomVersion": "1999"}, "DicomVersion"),
    ],
)
def test_bad_requests_are_refused(body: dict[str, Any], message: str) -> None:
    assert message in refused(body)


def test_a_patient_needs_a_new_patient_id_which_needs_no_force() -> None:
    assert "PatientID" in refused({"Replace": {"PatientName": "X"}}, Level.PATIENT)
    parse_request({"Replace": {"PatientID": "new"}}, Level.PATIENT, anonymize=False)
    assert "Force" in refused({"Replace": {"PatientID": "new"}}, Level.PATIENT, anonymize=True)


def test_replace_remove_and_insert() -> None:
    ds = make_dataset()
    modified(ds, Replace={"PatientName": "New^Name", "InstitutionName": "Here"}, Remove=["StudyID"])
    assert ds.PatientName == "New^Name" and ds.InstitutionName == "Here"
    assert "StudyID" not in ds


def test_level_uids_get_new_values_at_and_below_the_level() -> None:
    ds = make_dataset()
    study, series, sop = ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID
    ids = modified(ds, Level.SERIES)
    assert ds.StudyInstanceUID == study
    assert ds.SeriesInstanceUID == ids.uids[series] != series
    assert ds.SOPInstanceUID == ids.uids[sop] != sop
    ds = make_dataset()
    study = ds.StudyInstanceUID
    ids = modified(ds, Level.STUDY)
    assert ds.StudyInstanceUID == ids.uids[study] != study


def test_keep_and_replace_identifiers_with_force() -> None:
    ds = make_dataset()
    sop = ds.SOPInstanceUID
    modified(ds, Level.SERIES, Keep=["SOPInstanceUID"], Force=True)
    assert ds.SOPInstanceUID == sop
    ds = make_dataset()
    modified(ds, Level.SERIES, Replace={"SeriesInstanceUID": "1.2.3"}, Force=True)
    assert ds.SeriesInstanceUID == "1.2.3"


def test_nested_paths_replace_and_remove_in_existing_items() -> None:
    ds = make_dataset()
    items = []
    for _ in range(2):
        item = Dataset()
        item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        item.ReferencedSOPInstanceUID = generate_uid()
        items.append(item)
    ds.ReferencedImageSequence = Sequence(items)
    modified(
        ds,
        Replace={"ReferencedImageSequence[1].ReferencedSOPInstanceUID": "1.2.3"},
        Remove=["ReferencedImageSequence[*].ReferencedSOPClassUID"],
        Force=True,
    )
    assert ds.ReferencedImageSequence[1].ReferencedSOPInstanceUID == "1.2.3"
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID != "1.2.3"
    assert all("ReferencedSOPClassUID" not in i for i in ds.ReferencedImageSequence)
    modified(ds, Replace={"ReferencedImageSequence[7].ReferencedSOPInstanceUID": "9.9"})
    assert len(ds.ReferencedImageSequence) == 2  # no item is created


def test_replace_a_whole_sequence() -> None:
    ds = make_dataset()
    modified(ds, Replace={"ProcedureCodeSequence": [{"CodeValue": "1", "CodeMeaning": "x"}]})
    assert ds.ProcedureCodeSequence[0].CodeMeaning == "x"


def test_private_tags_removed_kept_or_replaced() -> None:
    def with_private() -> Dataset:
        ds = make_dataset()
        block = ds.private_block(0x0009, "ACME", create=True)
        block.add_new(0x01, "LO", "secret")
        return ds

    ds = with_private()
    modified(ds, RemovePrivateTags=True)
    assert not any(e.tag.is_private for e in ds)
    ds = with_private()
    modified(ds)
    assert ds[0x00091001].value == "secret"
    ds = with_private()
    modified(ds, RemovePrivateTags=True, Keep=["0009,1001"])
    assert ds[0x00091001].value == "secret" and ds[0x00090010].value == "ACME"
    ds = make_dataset()
    modified(ds, Replace={"0011,1001": "value"}, PrivateCreator="MINE")
    assert ds[0x00111001].value == "value" and ds[0x00110010].value == "MINE"


def test_references_to_mapped_uids_follow_at_any_depth() -> None:
    old = generate_uid()
    ds = Dataset()
    inner = Dataset()
    inner.ReferencedSOPInstanceUID = old
    inner.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    outer = Dataset()
    outer.ReferencedInstanceSequence = Sequence([inner])
    ds.ReferencedSeriesSequence = Sequence([outer])
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    remap_uids(ds, {old: "1.2.3"})
    assert inner.ReferencedSOPInstanceUID == "1.2.3"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"


def test_identifier_map_round_trips() -> None:
    ids = IdentifierMap()
    new = ids.uid("1.2.3")
    patient = ids.patient("P1")
    again = IdentifierMap.from_json(ids.to_json())
    assert again.uid("1.2.3") == new and again.patient("P1") == patient
    assert ids.uid("1.2.4") != new


def test_anonymization_keeps_what_is_asked_and_replaces_the_patient() -> None:
    ds = make_dataset()
    apply(
        ds,
        parse_request(
            {"Keep": ["StudyDescription"], "Replace": {"PatientName": "Anon^One"}},
            Level.STUDY,
            anonymize=True,
        ),
        IdentifierMap(),
    )
    assert ds.StudyDescription == "Chest"  # X in the table, kept
    assert "SeriesDescription" not in ds
    assert ds.PatientName == "Anon^One" and ds.PatientID not in ("", "P1")
    assert ds.PatientBirthDate in ("", None) and ds.AccessionNumber in ("", None)


def test_modification_level_rules() -> None:
    modification = Modification(level=Level.SERIES, anonymize=False)
    assert not modification.maps_level_uid(Level.STUDY)
    assert modification.maps_level_uid(Level.SERIES)
    assert Modification(level=Level.INSTANCE, anonymize=True).maps_level_uid(Level.STUDY)


def test_anonymization_keeps_nested_paths() -> None:
    ds = make_dataset()
    item = Dataset()
    item.RequestedProcedureID = "RP1"  # X
    item.ScheduledProcedureStepID = "SPS1"  # X
    ds.RequestAttributesSequence = Sequence([item, Dataset()])  # X
    keep = {"Keep": ["RequestAttributesSequence[0].RequestedProcedureID"]}
    apply(ds, parse_request(keep, Level.STUDY, anonymize=True), IdentifierMap())
    kept = ds.RequestAttributesSequence[0]
    assert kept.RequestedProcedureID == "RP1" and "ScheduledProcedureStepID" not in kept


def test_modification_keeps_nested_references() -> None:
    """A nested "Keep" in /modify (Orthanc 1.9.4+; was a 400): the reference it names keeps
    its old UID while the other references follow the new UIDs."""
    ds = make_dataset()
    old_sop = str(ds.SOPInstanceUID)
    items = []
    for _ in range(2):
        item = Dataset()
        item.ReferencedSOPClassUID = ds.SOPClassUID
        item.ReferencedSOPInstanceUID = old_sop
        items.append(item)
    ds.ReferencedImageSequence = Sequence(items)
    ids = modified(ds, Level.INSTANCE, Keep=["ReferencedImageSequence[1].ReferencedSOPInstanceUID"])
    new_sop = ids.uid(old_sop)
    assert ds.SOPInstanceUID == new_sop != old_sop
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == new_sop
    assert ds.ReferencedImageSequence[1].ReferencedSOPInstanceUID == old_sop
    # Wildcards, and a path that leads nowhere: accepted, nothing to keep.
    ds = make_dataset()
    modified(ds, Keep=["ReferencedImageSequence[*].ReferencedSOPInstanceUID"])
    assert "each parent" in refused({"Keep": ["ReferencedImageSequence.ReferencedSOPInstanceUID"]})
