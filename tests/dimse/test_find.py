"""C-FIND at every level, Patient Root and Study Root, driven by dcmtk's findscu."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from tests.dicomgen import make_dataset, to_bytes
from tests.dimse.peers import PHAROS_AET, dicom_port, findscu, requires_dcmtk

pytestmark = requires_dcmtk

FINDER = {"DicomModalities": {"finder": ["FINDSCU", "127.0.0.1", 104]}}
CT, MR = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.4"


class Archive:
    """What the tests store: three patients, four studies, six series."""

    def __init__(self) -> None:
        self.studies = {name: generate_uid() for name in ("S1", "S2", "S3", "S4")}
        self.series = {name: generate_uid() for name in ("S1-CT", "S1-MR", "S2-MR", "S3", "S4")}
        self.instances: dict[str, list[str]] = {}
        self.files: list[bytes] = []
        doe = {"patient_id": "PA", "patient_name": "Doe^John"}
        self._add("S1", "S1-CT", 3, StudyDate="20240115", Modality="CT", **doe)
        self._add("S1", "S1-MR", 2, StudyDate="20240115", Modality="MR", SOPClassUID=MR, **doe)
        self._add(
            "S2", "S2-MR", 1, StudyDate="20231201", StudyDescription="Head", Modality="MR", **doe
        )
        self._add(
            "S3",
            "S3",
            1,
            patient_id="PB",
            patient_name="DOE^JANE",
            StudyDate="20240301",
            StudyDescription="chest",
        )
        self._add(
            "S4",
            "S4",
            1,
            patient_id="PC",
            patient_name="Ὀδυσσεύς",
            SpecificCharacterSet="ISO_IR 192",
            StudyDate="20220101",
            StudyDescription="Odyssey",
            Modality="OT",
        )

    def _add(self, study: str, series: str, count: int, **tags: Any) -> None:
        for i in range(count):
            ds = make_dataset(
                study_uid=self.studies[study],
                series_uid=self.series[series],
                instance_number=i + 1,
                **tags,
            )
            self.instances.setdefault(series, []).append(ds.SOPInstanceUID)
            self.files.append(to_bytes(ds))

    def store(self, api: Any) -> None:
        for data in self.files:
            assert api.post("/instances", content=data).status_code == 200


def values(answers: list[Dataset], keyword: str) -> list[Any]:
    return sorted(str(answer.get(keyword, "")) for answer in answers)


def test_find_at_every_level(api_factory: Any, tmp_path: Path) -> None:
    api = api_factory(**FINDER)
    archive = Archive()
    archive.store(api)
    studies, series = archive.studies, archive.series

    def find(*keys: str, model: str = "-S") -> list[Dataset]:
        return findscu(api, tmp_path, keys, model)

    # Patient level (Patient Root): PN matching ignores case (CaseSensitivePN is false).
    answers = find(
        "QueryRetrieveLevel=PATIENT",
        "PatientName=doe*",
        "PatientID",
        "NumberOfPatientRelatedStudies",
        "NumberOfPatientRelatedSeries",
        "NumberOfPatientRelatedInstances",
        model="-P",
    )
    assert values(answers, "PatientID") == ["PA", "PB"]
    pa = next(a for a in answers if a.PatientID == "PA")
    assert pa.QueryRetrieveLevel == "PATIENT"
    assert pa.RetrieveAETitle == PHAROS_AET
    assert pa.SpecificCharacterSet == "ISO_IR 100"
    assert (pa.NumberOfPatientRelatedStudies, pa.NumberOfPatientRelatedSeries) == (2, 3)
    assert pa.NumberOfPatientRelatedInstances == 6

    # Study level: a date range, computed tags.
    answers = find(
        "QueryRetrieveLevel=STUDY",
        "StudyDate=20240101-20240331",
        "StudyInstanceUID",
        "PatientName",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
        "SOPClassesInStudy",
    )
    assert values(answers, "StudyInstanceUID") == sorted([studies["S1"], studies["S3"]])
    s1 = next(a for a in answers if a.StudyInstanceUID == studies["S1"])
    assert list(s1.ModalitiesInStudy) == ["CT", "MR"]
    assert (s1.NumberOfStudyRelatedSeries, s1.NumberOfStudyRelatedInstances) == (2, 5)
    assert sorted(s1.SOPClassesInStudy) == [CT, MR]
    assert str(s1.PatientName) == "Doe^John"

    # Open ranges, lists, and the case-sensitivity of the other VRs.
    assert values(find("QueryRetrieveLevel=STUDY", "StudyDate=-20231231", "StudyInstanceUID"),
                  "StudyInstanceUID") == sorted([studies["S2"], studies["S4"]])  # fmt: skip
    assert values(
        find("QueryRetrieveLevel=STUDY", "StudyDescription=chest", "StudyInstanceUID"),
        "StudyInstanceUID",
    ) == [studies["S3"]]
    assert values(
        find("QueryRetrieveLevel=STUDY", "StudyDescription=Ch*", "StudyInstanceUID"),
        "StudyInstanceUID",
    ) == [studies["S1"]]
    listed = f"StudyInstanceUID={studies['S2']}\\{studies['S4']}"
    assert len(find("QueryRetrieveLevel=STUDY", listed)) == 2
    # A lone "*" in a VR without wildcards is universal matching.
    assert len(find("QueryRetrieveLevel=STUDY", "StudyDate=*", "StudyInstanceUID=*")) == 4
    assert values(
        find("QueryRetrieveLevel=STUDY", "ModalitiesInStudy=MR", "StudyInstanceUID"),
        "StudyInstanceUID",
    ) == sorted([studies["S1"], studies["S2"]])

    # Studies of one patient, from the Patient Root model.
    answers = find("QueryRetrieveLevel=STUDY", "PatientID=PA", "StudyInstanceUID", model="-P")
    assert values(answers, "StudyInstanceUID") == sorted([studies["S1"], studies["S2"]])

    # Series level.
    answers = find(
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={studies['S1']}",
        "Modality=CT",
        "SeriesInstanceUID",
        "NumberOfSeriesRelatedInstances",
    )
    assert values(answers, "SeriesInstanceUID") == [series["S1-CT"]]
    assert answers[0].NumberOfSeriesRelatedInstances == 3
    assert answers[0].Modality == "CT"

    # Instance level, with a tag only the files hold.
    wanted = archive.instances["S1-CT"][:2]
    answers = find(
        "QueryRetrieveLevel=IMAGE",
        f"SeriesInstanceUID={series['S1-CT']}",
        "SOPInstanceUID=" + "\\".join(wanted),
        "InstanceNumber",
        "SliceThickness",
        "PixelSpacing",
    )
    assert values(answers, "SOPInstanceUID") == sorted(wanted)
    assert {float(a.SliceThickness) for a in answers} == {1.0}
    assert [float(v) for v in answers[0].PixelSpacing] == [0.5, 0.5]
    assert sorted(int(a.InstanceNumber) for a in answers) == [1, 2]

    # A query in UTF-8; text out of the default encoding comes back in UTF-8.
    answers = find(
        "QueryRetrieveLevel=PATIENT",
        "SpecificCharacterSet=ISO_IR 192",
        "PatientName=*δυσσ*",
        "PatientID",
        model="-P",
    )
    assert values(answers, "PatientID") == ["PC"]
    assert answers[0].SpecificCharacterSet == "ISO_IR 192"
    assert str(answers[0].PatientName) == "Ὀδυσσεύς"

    # Nothing matches: no answer.
    assert find("QueryRetrieveLevel=STUDY", "PatientName=Nobody") == []


def _find(api: Any, identifier: Dataset) -> list[tuple[int, Dataset | None]]:
    """A C-FIND with pynetdicom, to see every status."""
    ae = AE(ae_title="FINDSCU")
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = ae.associate("127.0.0.1", dicom_port(api), ae_title=PHAROS_AET)
    assert assoc.is_established
    try:
        responses = assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind)
        return [(int(status.Status), answer) for status, answer in responses]
    finally:
        assoc.release()


def test_find_failures_and_limits(api_factory: Any) -> None:
    api = api_factory(**FINDER, LimitFindResults=2, CaseSensitivePN=True)
    Archive().store(api)

    query = Dataset()
    query.StudyInstanceUID = ""
    (only,) = _find(api, query)  # no Query/Retrieve Level
    assert only[0] == 0xA900

    query.QueryRetrieveLevel = "STUDY"
    query.StudyDate = "2024-XX"
    (only,) = _find(api, query)
    assert only[0] == 0xC001

    # LimitFindResults: two answers, then "matching terminated" (as Orthanc).
    del query.StudyDate
    responses = _find(api, query)
    assert [status for status, _ in responses] == [0xFF00, 0xFF00, 0xFE00]

    # CaseSensitivePN: PN matching is exact.
    query.PatientName = "doe*"
    assert [status for status, _ in _find(api, query)] == [0x0000]
    query.PatientName = "Doe*"
    assert [status for status, _ in _find(api, query)] == [0xFF00, 0xFF00, 0x0000]
