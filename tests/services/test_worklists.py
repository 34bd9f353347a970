"""The worklist service: matching `.wl` files read at each query, answers, filters, options."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian

from pharos.model.errors import ErrorCode, PharosError
from pharos.plugins import hookimpl
from pharos.plugins.manager import PluginManager
from pharos.services.dicom_query import IdentifierError
from pharos.services.worklists import WorklistOptions, WorklistService


def write_worklist(
    path: Path,
    name: str,
    patient_id: str,
    modality: str = "CT",
    date: str = "20240315",
    station: str = "SCANNER1",
    charset: str | None = None,
) -> Path:
    """A worklist file as dump2dcm writes them (meta header, explicit VR little endian)."""
    step = Dataset()
    step.Modality = modality
    step.ScheduledStationAETitle = station
    step.ScheduledProcedureStepStartDate = date
    step.ScheduledProcedureStepStartTime = "093000"
    step.ScheduledProcedureStepDescription = f"{modality} exam"
    dataset = Dataset()
    if charset:
        dataset.SpecificCharacterSet = charset
    dataset.PatientName = name
    dataset.PatientID = patient_id
    dataset.AccessionNumber = f"ACC{patient_id}"
    dataset.PatientBirthDate = "19700101"
    dataset.ScheduledProcedureStepSequence = [step]
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = "1.2.276.0.7230010.3.1.0.1"
    dataset.file_meta.MediaStorageSOPInstanceUID = f"1.2.3.{patient_id}"
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.save_as(path, enforce_file_format=True)
    return path


def query(**keys: Any) -> Dataset:
    """A worklist query: top-level keys, and `step` for the ScheduledProcedureStepSequence item
    (a dict of keys)."""
    step = keys.pop("step", None)
    dataset = Dataset()
    dataset.PatientName = keys.pop("PatientName", "")
    dataset.PatientID = keys.pop("PatientID", "")
    for keyword, value in keys.items():
        setattr(dataset, keyword, value)
    if step is not None:
        item = Dataset()
        for keyword, value in step.items():
            setattr(item, keyword, value)
        dataset.ScheduledProcedureStepSequence = [item]
    return dataset


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_worklist(tmp_path / "a.wl", "DOE^JOHN", "1", modality="CT", date="20240315")
    write_worklist(tmp_path / "b.WL", "DOE^JANE", "2", modality="MR", date="20240320")
    write_worklist(tmp_path / "c.wl", "SMITH^ANNA", "3", modality="CT", station="SCANNER2")
    write_worklist(tmp_path / "ignored.dcm", "DOE^OTHER", "4")  # not a .wl file
    return tmp_path


def service(folder: Path, plugins: PluginManager | None = None, **options: Any) -> WorklistService:
    return WorklistService(
        WorklistOptions(enabled=True, database=folder, **options), plugins=plugins
    )


def ids(answers: list[Dataset]) -> list[str]:
    return [str(answer.PatientID) for answer in answers]


def find(svc: WorklistService, dataset: Dataset, aet: str = "SCANNER1") -> list[Dataset]:
    return svc.find(svc.parse(dataset), aet).answers


def test_universal_query_answers_every_wl_file(folder: Path) -> None:
    found = service(folder).find(service(folder).parse(query()), "SCU")
    assert found.complete
    assert ids(found.answers) == ["1", "2", "3"]


def test_person_name_wildcard_is_case_insensitive(folder: Path) -> None:
    assert ids(find(service(folder), query(PatientName="doe*"))) == ["1", "2"]
    assert ids(find(service(folder), query(PatientName="DOE^J?NE"))) == ["2"]
    # ...unless CaseSensitivePN
    sensitive = WorklistService(
        WorklistOptions(enabled=True, database=folder), case_sensitive_pn=True
    )
    assert ids(find(sensitive, query(PatientName="doe*"))) == []


def test_keys_inside_the_scheduled_procedure_step(folder: Path) -> None:
    svc = service(folder)
    assert ids(find(svc, query(step={"Modality": "CT"}))) == ["1", "3"]
    assert ids(find(svc, query(step={"Modality": "CT\\MR"}))) == ["1", "2", "3"]
    dates = {"ScheduledProcedureStepStartDate": "20240316-20240331"}
    assert ids(find(svc, query(step=dates))) == ["2"]
    assert ids(find(svc, query(step={"ScheduledProcedureStepStartDate": "-20240315"}))) == [
        "1",
        "3",
    ]
    assert ids(find(svc, query(PatientName="DOE*", step={"Modality": "MR"}))) == ["2"]


def test_answers_hold_the_requested_keys_only(folder: Path) -> None:
    svc = service(folder)
    step = {"Modality": "CT", "ScheduledProcedureStepStartDate": "", "ScheduledStationName": ""}
    answers = find(svc, query(PatientID="1", step=step, StudyInstanceUID=""))
    assert len(answers) == 1
    answer = answers[0]
    assert set(answer.dir()) == {
        "PatientID",
        "PatientName",
        "ScheduledProcedureStepSequence",
        "SpecificCharacterSet",
        "StudyInstanceUID",
    }
    assert str(answer.PatientName) == "DOE^JOHN"
    assert answer.StudyInstanceUID == ""  # asked for, absent from the worklist: empty
    item = answer.ScheduledProcedureStepSequence[0]
    assert set(item.dir()) == {
        "Modality",
        "ScheduledProcedureStepStartDate",
        "ScheduledStationName",
    }
    assert item.Modality == "CT"
    assert item.ScheduledProcedureStepStartDate == "20240315"
    assert item.ScheduledStationName == ""
    assert "AccessionNumber" not in answer


def test_empty_sequence_asks_for_the_whole_sequence(folder: Path) -> None:
    dataset = query(PatientID="2")
    dataset.ScheduledProcedureStepSequence = []
    (answer,) = find(service(folder), dataset)
    item = answer.ScheduledProcedureStepSequence[0]
    assert item.Modality == "MR"
    assert item.ScheduledProcedureStepDescription == "MR exam"


def test_filter_issuer_aet(folder: Path) -> None:
    svc = service(folder, filter_issuer_aet=True)
    assert ids(find(svc, query(), aet="SCANNER1")) == ["1", "2"]
    assert ids(find(svc, query(), aet="SCANNER2")) == ["3"]
    assert ids(find(svc, query(), aet="OTHER")) == []
    # A station named by the query is kept.
    named = query(step={"ScheduledStationAETitle": "SCANNER2"})
    assert ids(find(svc, named, aet="SCANNER1")) == ["3"]
    # Without the option, the calling AET does not matter.
    assert ids(find(service(folder), query(), aet="OTHER")) == ["1", "2", "3"]


def test_limit_answers(folder: Path) -> None:
    svc = service(folder, limit_answers=2)
    found = svc.find(svc.parse(query()), "SCU")
    assert not found.complete
    assert ids(found.answers) == ["1", "2"]
    exact = service(folder, limit_answers=3)
    assert exact.find(exact.parse(query()), "SCU").complete


def test_files_are_read_at_each_query(folder: Path) -> None:
    svc = service(folder)
    assert len(find(svc, query())) == 3
    write_worklist(folder / "d.wl", "NEW^ONE", "5")
    (folder / "a.wl").unlink()
    assert ids(find(svc, query())) == ["2", "3", "5"]


def test_bad_files_are_skipped_with_a_warning(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (folder / "0-garbage.wl").write_bytes(b"this is not DICOM at all\n" * 3)
    (folder / "0-empty.wl").write_bytes(b"")
    (folder / "0-folder.wl").mkdir()
    with caplog.at_level(logging.WARNING):
        assert ids(find(service(folder), query())) == ["1", "2", "3"]
    assert "0-garbage.wl skipped" in caplog.text
    assert "0-empty.wl skipped" in caplog.text


def test_bare_data_sets_are_read(tmp_path: Path) -> None:
    """Files without preamble nor meta header (dump2dcm -F) are worklists too."""
    source = write_worklist(tmp_path / "source.dcm", "DOE^JOHN", "1")
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, pydicom.dcmread(source))
    (tmp_path / "bare.wl").write_bytes(buffer.getvalue())
    assert b"DICM" not in (tmp_path / "bare.wl").read_bytes()
    assert ids(find(service(tmp_path), query(PatientName="DOE*"))) == ["1"]


def test_text_in_other_character_sets(tmp_path: Path) -> None:
    write_worklist(tmp_path / "a.wl", "MÜLLER^JÖRG", "1", charset="ISO_IR 100")
    svc = service(tmp_path)
    (answer,) = find(svc, query(PatientName="müller*"))
    assert str(answer.PatientName) == "MÜLLER^JÖRG"
    assert answer.SpecificCharacterSet == "ISO_IR 100"


def test_bad_queries(folder: Path) -> None:
    svc = service(folder)
    with pytest.raises(IdentifierError, match="Wildcards are not allowed"):
        find(svc, query(step={"ScheduledProcedureStepStartDate": "2024*"}))
    with pytest.raises(IdentifierError, match="Bad range"):
        find(svc, query(step={"ScheduledProcedureStepStartDate": "2024-2025"}))
    two = query()
    two.ScheduledProcedureStepSequence = [Dataset(), Dataset()]
    with pytest.raises(IdentifierError, match="one at most"):
        find(svc, two)
    # A lone "*" in a VR without wildcards is universal matching.
    star = {"ScheduledProcedureStepStartDate": "*"}
    assert ids(find(svc, query(step=star))) == ["1", "2", "3"]


def test_missing_folder_fails(tmp_path: Path) -> None:
    svc = service(tmp_path / "nowhere")
    with pytest.raises(PharosError) as caught:
        find(svc, query())
    assert caught.value.code is ErrorCode.INEXISTENT_FILE


class _Rewriter:
    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, str], dict[str, str]]] = []

    @hookimpl
    def pharos_incoming_worklist_filter(self, query: dict[str, str], origin: dict[str, str]) -> Any:
        self.seen.append((query, origin))
        if origin.get("RemoteAet") == "INTRUDER":
            return False
        if query.get("0010,0020") == "ALIAS":
            return {**query, "0010,0020": "2"}
        return None


def test_plugin_filters_rewrite_or_refuse(folder: Path) -> None:
    plugins = PluginManager()
    rewriter = _Rewriter()
    plugins.register(rewriter, "rewriter")
    svc = service(folder, plugins=plugins)
    parsed = svc.parse(query(PatientID="ALIAS", step={"Modality": ""}))
    filtered = svc.filtered(parsed, {"RemoteAet": "SCU"})
    answers = svc.find(filtered, "SCU").answers
    assert ids(answers) == ["2"]
    assert answers[0].ScheduledProcedureStepSequence[0].Modality == "MR"  # sequences kept
    assert rewriter.seen[0] == ({"0010,0010": "", "0010,0020": "ALIAS"}, {"RemoteAet": "SCU"})
    with pytest.raises(PharosError, match="refused by plugin rewriter") as caught:
        svc.filtered(parsed, {"RemoteAet": "INTRUDER"})
    assert caught.value.code is ErrorCode.FORBIDDEN_ACCESS


def test_failing_plugin_filter_refuses(folder: Path) -> None:
    class Failing:
        @hookimpl
        def pharos_incoming_worklist_filter(self, query: dict[str, str]) -> Any:
            raise RuntimeError("boom")

    plugins = PluginManager()
    plugins.register(Failing(), "failing")
    svc = service(folder, plugins=plugins)
    with pytest.raises(PharosError, match="filter failed: boom") as caught:
        svc.filtered(svc.parse(query()), {})
    assert caught.value.code is ErrorCode.FORBIDDEN_ACCESS


def test_options_from_the_section(tmp_path: Path) -> None:
    assert WorklistOptions.from_section({}) == WorklistOptions()
    options = WorklistOptions.from_section(
        {"Enable": True, "Database": str(tmp_path), "FilterIssuerAet": True, "LimitAnswers": 5}
    )
    assert options == WorklistOptions(True, tmp_path, True, 5)
    with pytest.raises(ValueError, match="Database"):
        WorklistOptions.from_section({"Enable": True})
    with pytest.raises(ValueError, match="LimitAnswers"):
        WorklistOptions.from_section({"LimitAnswers": -1})
