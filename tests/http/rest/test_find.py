"""POST /tools/find and /tools/lookup, RequestedTags and the tag formats of the GET routes,
ExtraMainDicomTags and /reconstruct, end to end on a real server (SQLite and PostgreSQL).

The servers are shared by the tests of the module (one per backend and configuration); the
tests only read, except those that restart their own server. Expected answers follow
Orthanc's documented behaviour and PS3.4 C.2.2.2.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydicom.uid import MRImageStorage

from tests.conftest import CORPUS, Api, ServerProcess
from tests.dicomgen import make_dicom

CT_CLASS = "1.2.840.10008.5.1.4.1.1.2"
CLUNIE = CORPUS / "Encodings" / "DavidClunie"


def backend_config(request: pytest.FixtureRequest) -> dict[str, object]:
    if request.param == "postgres":
        return {"PostgreSQL": request.getfixturevalue("postgres_databases").create()}
    return {}


class Servers:
    """`pharos serve` processes on one folder (one storage and index), restarted with
    another configuration when a test asks for one."""

    def __init__(self, workdir: Path, base: dict[str, object]):
        self.workdir = workdir
        self.base = base
        self.config: dict[str, object] | None = None
        self.server: ServerProcess | None = None
        self.api: Api | None = None

    def ensure(self, **config: object) -> Api:
        if self.api is None or self.config != config:
            self.stop()
            self.server = ServerProcess(self.workdir, {**self.base, **config}).start()
            self.api = Api(base_url=self.server.url, timeout=60)
            self.api.server = self.server
            self.config = config
        return self.api

    def stop(self) -> None:
        if self.api is not None:
            self.api.close()
            self.api = None
        if self.server is not None:
            self.server.stop()
            self.server = None


def upload(api: Api, data: bytes) -> dict[str, Any]:
    response = api.post("/instances", content=data)
    assert response.status_code == 200, response.text
    return dict(response.json())


def find(api: Api, body: Any) -> Any:
    response = api.post("/tools/find", json=body)
    assert response.status_code == 200, response.text
    return response.json()


# -- the main server: generated instances, labels, and the Clunie character sets ------------------


@dataclass
class Site:
    api: Api
    ids: dict[str, str] = field(default_factory=dict)  # name -> public id
    corpus: dict[str, dict[str, Any]] = field(default_factory=dict)  # file name -> upload answer

    def names(self, public_ids: list[str]) -> list[str]:
        by_id = {public_id: name for name, public_id in self.ids.items()}
        return [by_id.get(public_id, public_id) for public_id in public_ids]

    def find(self, body: dict[str, Any]) -> list[str]:
        return self.names(find(self.api, body))


DOE = {
    "patient_id": "P-DOE",
    "patient_name": "Doe^John",
    "PatientBirthDate": "19700101",
}
STUDY_A = {
    "study_uid": "1.2.3.1",
    "StudyDate": "20180322",
    "StudyDescription": "Chest CT",
    "AccessionNumber": "ACC-1",
    "InstitutionName": "Hôpital Nord",
    "InstitutionalDepartmentName": "Radiology",
}
STUDY_B = {
    "study_uid": "1.2.3.2",
    "StudyDate": "20180324",
    "StudyDescription": "Brain MR",
    "AccessionNumber": "ACC-2",
}
SMITH = {
    "patient_id": "P-SMITH",
    "patient_name": "SMITH^ANNA",
    "PatientBirthDate": "19800202",
    "PatientSex": "F",
}
STUDY_C = {
    "study_uid": "1.2.3.3",
    "StudyDate": "20180326",
    "StudyDescription": "chest xr",
    "AccessionNumber": "acc-1",
}
MR = {"Modality": "MR", "SOPClassUID": MRImageStorage}

# Name, patient, study, series, instance: b1 and c1 come before a3, so that study A is the
# one updated last.
UPLOADS: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("a1", DOE, STUDY_A, {"series_uid": "1.2.3.1.1"}, {"SliceThickness": "1.5"}),
    ("a2", DOE, STUDY_A, {"series_uid": "1.2.3.1.1"}, {"SliceThickness": "3"}),
    ("b1", DOE, STUDY_B, {"series_uid": "1.2.3.2.1", **MR}, {}),
    ("c1", SMITH, STUDY_C, {"series_uid": "1.2.3.3.1", "Modality": "CR"}, {}),
    ("a3", DOE, STUDY_A, {"series_uid": "1.2.3.1.2", "SeriesNumber": 2, **MR}, {}),
]
SERIES_OF = {"a1": "A1", "a2": "A1", "a3": "A2", "b1": "B1", "c1": "C1"}
STUDY_OF = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "c1": "C"}
PATIENT_OF = {"a1": "DOE", "a2": "DOE", "a3": "DOE", "b1": "DOE", "c1": "SMITH"}
OURS = {"PatientID": "P-*"}  # leaves the corpus out


def populate(api: Api) -> Site:
    site = Site(api)
    for number, (name, patient, study, series, tags) in enumerate(UPLOADS, start=1):
        data = make_dicom(
            sop_uid=f"{series['series_uid']}.{number}",
            instance_number=number,
            **patient,
            **study,
            **series,
            **tags,
        )
        answer = upload(api, data)
        site.ids[name] = answer["ID"]
        site.ids[SERIES_OF[name]] = answer["ParentSeries"]
        site.ids[STUDY_OF[name]] = answer["ParentStudy"]
        site.ids[PATIENT_OF[name]] = answer["ParentPatient"]
    for labelled, label in (("A", "teaching"), ("A", "ai"), ("C", "ai")):
        response = api.put(f"/studies/{site.ids[labelled]}/labels/{label}")
        assert response.status_code == 200, response.text
    if CLUNIE.is_dir():
        for path in sorted(CLUNIE.iterdir()):
            site.corpus[path.name] = upload(api, path.read_bytes())
    return site


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """One server per backend with the instances above (StorageAccessOnFind "Always")."""
    servers = Servers(tmp_path_factory.mktemp("find"), backend_config(request))
    try:
        yield populate(servers.ensure())
    finally:
        servers.stop()


# -- levels, main tags, wildcards, ranges, lists, case --------------------------------------------


def test_levels_singular_and_plural(site: Site) -> None:
    for level in ("Patient", "patients", "PATIENTS"):
        assert site.find({"Level": level, "Query": OURS}) == ["DOE", "SMITH"]
    for level in ("Study", "Studies", "studies"):
        assert site.find({"Level": level, "Query": OURS}) == ["A", "B", "C"]
    assert site.find({"Level": "Series", "Query": OURS}) == ["A1", "B1", "C1", "A2"]
    for level in ("Instance", "Instances", "Images"):
        assert site.find({"Level": level, "Query": OURS}) == ["a1", "a2", "b1", "c1", "a3"]


def test_main_tags_of_the_level(site: Site) -> None:
    assert site.find({"Level": "Patient", "Query": {"PatientID": "P-DOE"}}) == ["DOE"]
    assert site.find({"Level": "Study", "Query": {"AccessionNumber": "ACC-2"}}) == ["B"]
    assert site.find({"Level": "Study", "Query": {"StudyInstanceUID": "1.2.3.3"}}) == ["C"]
    assert site.find({"Level": "Series", "Query": {"SeriesInstanceUID": "1.2.3.1.2"}}) == ["A2"]
    assert site.find({"Level": "Instance", "Query": {"SOPInstanceUID": "1.2.3.1.1.2"}}) == ["a2"]
    assert site.find({"Level": "Instance", "Query": {"0020,0013": "4", **OURS}}) == ["c1"]
    assert site.find({"Level": "Study", "Query": {"StudyDescription": "nothing"}}) == []


def test_main_tags_of_the_levels_above(site: Site) -> None:
    assert site.find({"Level": "Study", "Query": {"PatientName": "SMITH^ANNA"}}) == ["C"]
    assert site.find({"Level": "Series", "Query": {"StudyDate": "20180322"}}) == ["A1", "A2"]
    assert site.find({"Level": "Series", "Query": {"StudyDescription": "chest*"}}) == [
        "A1",
        "C1",
        "A2",
    ]
    assert site.find({"Level": "Instance", "Query": {"PatientID": "P-DOE"}}) == [
        "a1",
        "a2",
        "b1",
        "a3",
    ]
    body = {"PatientID": "P-DOE", "StudyDate": "20180322", "Modality": "MR"}
    assert site.find({"Level": "Instance", "Query": body}) == ["a3"]


def test_nul_characters_match_nothing(site: Site) -> None:
    assert site.find({"Level": "Patient", "Query": {"PatientName": "Doe\x00"}}) == []
    assert site.find({"Level": "Series", "Query": {"Modality": "C\x00*"}}) == []


def test_tags_of_lower_levels_match_nothing(site: Site) -> None:
    # Orthanc 1.12.5: "from an inferior level, this will return no result".
    assert site.find({"Level": "Study", "Query": {"Modality": "CT"}}) == []
    assert site.find({"Level": "Patient", "Query": {"StudyDate": "20180322"}}) == []
    # A universal value constrains nothing, wherever the tag is.
    assert site.find({"Level": "Study", "Query": {"Modality": "", **OURS}}) == ["A", "B", "C"]


def test_wildcards(site: Site) -> None:
    def patients(name: str, **more: Any) -> list[str]:
        return site.find({"Level": "Patient", "Query": {"PatientName": name, **OURS}, **more})

    assert patients("doe*") == ["DOE"]
    assert patients("*^j*") == ["DOE"]
    assert patients("*ANN?") == ["SMITH"]
    assert patients("d?e^john") == ["DOE"]
    assert patients("?^*") == []
    assert patients("*") == ["DOE", "SMITH"]
    assert site.find({"Level": "Study", "Query": {"AccessionNumber": "acc-?", **OURS}}) == [
        "A",
        "B",
        "C",
    ]
    assert site.find({"Level": "Series", "Query": {"Modality": "?R", **OURS}}) == ["B1", "C1", "A2"]


def test_case_sensitive_true_and_false(site: Site) -> None:
    def patients(name: str, sensitive: bool | None) -> list[str]:
        body: dict[str, Any] = {"Level": "Patient", "Query": {"PatientName": name}}
        if sensitive is not None:
            body["CaseSensitive"] = sensitive
        return site.find(body)

    assert patients("doe^john", None) == ["DOE"]  # insensitive by default
    assert patients("doe^john", False) == ["DOE"]
    assert patients("doe^john", True) == []
    assert patients("Doe^John", True) == ["DOE"]
    assert patients("smith*", True) == []
    assert patients("SMITH*", True) == ["SMITH"]
    accession = {"Level": "Study", "Query": {"AccessionNumber": "acc-1"}}
    assert site.find(accession) == ["A", "C"]
    assert site.find({**accession, "CaseSensitive": True}) == ["C"]


def test_date_ranges(site: Site) -> None:
    def studies(dates: str) -> list[str]:
        return site.find({"Level": "Study", "Query": {"StudyDate": dates, **OURS}})

    assert studies("20180323-") == ["B", "C"]
    assert studies("-20180323") == ["A"]
    assert studies("20180322-20180324") == ["A", "B"]
    assert studies("20180324-20180324") == ["B"]
    assert studies("20180327-") == []
    assert studies("-") == ["A", "B", "C"]
    birth = {"Level": "Patient", "Query": {"PatientBirthDate": "19750101-19850101", **OURS}}
    assert site.find(birth) == ["SMITH"]
    series = {"Level": "Series", "Query": {"StudyDate": "-20180324", **OURS}}
    assert site.find(series) == ["A1", "B1", "A2"]


def test_lists(site: Site) -> None:
    modalities = {"Level": "Series", "Query": {"Modality": "CT\\CR", **OURS}}
    assert site.find(modalities) == ["A1", "C1"]
    uids = {"Level": "Study", "Query": {"StudyInstanceUID": "1.2.3.1\\1.2.3.3\\9.9"}}
    assert site.find(uids) == ["A", "C"]
    dates = {"Level": "Study", "Query": {"StudyDate": "20180322\\20180326", **OURS}}
    assert site.find(dates) == ["A", "C"]


def test_modalities_in_study(site: Site) -> None:
    def studies(value: str) -> list[str]:
        return site.find({"Level": "Study", "Query": {"ModalitiesInStudy": value, **OURS}})

    assert studies("MR") == ["A", "B"]
    assert studies("CR\\CT") == ["A", "C"]
    assert studies("mr") == ["A", "B"]
    assert studies("US") == []


def test_computed_tags_in_queries(site: Site) -> None:
    related = {"Level": "Study", "Query": {"NumberOfStudyRelatedSeries": "2"}}
    assert site.find(related) == ["A"]
    instances = {"Level": "Series", "Query": {"NumberOfSeriesRelatedInstances": "2"}}
    assert site.find(instances) == ["A1"]
    patients = {"Level": "Patient", "Query": {"NumberOfPatientRelatedStudies": "2"}}
    assert site.find(patients) == ["DOE"]
    # A multi-valued attribute matches when one of its values does (PS3.4 C.2.2.2).
    classes = {"Level": "Study", "Query": {"SOPClassesInStudy": MRImageStorage, **OURS}}
    assert site.find(classes) == ["A", "B"]
    classes = {"Level": "Study", "Query": {"SOPClassesInStudy": f"{CT_CLASS}", **OURS}}
    assert site.find(classes) == ["A", "C"]
    limited = {**classes, "Since": 1, "Limit": 1}
    assert site.find(limited) == ["C"]


# -- Expand, Limit, Since, formats ----------------------------------------------------------------


def test_expand_gives_the_resources(site: Site) -> None:
    api = site.api
    for level, name in (("Patient", "DOE"), ("Study", "A"), ("Series", "A1"), ("Instance", "a1")):
        path = {"Patient": "patients", "Study": "studies", "Series": "series"}.get(
            level, "instances"
        )
        found = find(api, {"Level": level, "Query": {"PatientID": "P-DOE"}, "Expand": True})
        assert found[0] == api.get(f"/{path}/{site.ids[name]}").json()
        assert "RequestedTags" not in found[0]
    (study,) = find(api, {"Level": "Study", "Query": {"StudyDate": "20180326"}, "Expand": True})
    assert study["ID"] == site.ids["C"]
    assert study["Type"] == "Study"
    assert study["MainDicomTags"]["StudyDescription"] == "chest xr"
    assert study["PatientMainDicomTags"]["PatientName"] == "SMITH^ANNA"
    assert study["Series"] == [site.ids["C1"]]
    assert study["Labels"] == ["ai"]
    assert find(api, {"Level": "Study", "Query": {"StudyDate": "20180326"}, "Expand": False}) == [
        site.ids["C"]
    ]


def test_limit_and_since(site: Site) -> None:
    body = {"Level": "Instance", "Query": OURS}
    every = ["a1", "a2", "b1", "c1", "a3"]
    assert site.find({**body, "Limit": 2}) == every[:2]
    assert site.find({**body, "Since": 1, "Limit": 2}) == every[1:3]
    assert site.find({**body, "Since": 3}) == every[3:]
    assert site.find({**body, "Since": 10}) == []
    assert site.find({**body, "Limit": 0}) == every  # 0: no limit
    expanded = find(site.api, {**body, "Since": 4, "Limit": 5, "Expand": True})
    assert [item["ID"] for item in expanded] == [site.ids["a3"]]


def test_full_and_short_formats(site: Site) -> None:
    body = {"Level": "Study", "Query": {"StudyInstanceUID": "1.2.3.3"}, "Expand": True}
    (full,) = find(site.api, {**body, "Full": True})
    assert full["MainDicomTags"]["0008,1030"] == {
        "Name": "StudyDescription",
        "Type": "String",
        "Value": "chest xr",
    }
    assert full["PatientMainDicomTags"]["0010,0010"] == {
        "Name": "PatientName",
        "Type": "String",
        "Value": "SMITH^ANNA",
    }
    (short,) = find(site.api, {**body, "Short": True})
    assert short["MainDicomTags"]["0008,0020"] == "20180326"
    assert short["PatientMainDicomTags"]["0010,0020"] == "P-SMITH"
    assert "StudyDate" not in short["MainDicomTags"]
    (simplified,) = find(site.api, body)
    assert simplified["MainDicomTags"]["StudyDate"] == "20180326"
    assert set(full) == set(short) == set(simplified)


# -- RequestedTags --------------------------------------------------------------------------------


def test_requested_computed_tags(site: Site) -> None:
    api = site.api
    (study,) = find(
        api,
        {
            "Level": "Study",
            "Query": {"StudyInstanceUID": "1.2.3.1"},
            "Expand": True,
            "RequestedTags": [
                "ModalitiesInStudy",
                "SOPClassesInStudy",
                "NumberOfStudyRelatedSeries",
                "NumberOfStudyRelatedInstances",
                "PatientName",
                "StudyDate",
            ],
        },
    )
    assert study["RequestedTags"] == {
        "ModalitiesInStudy": "CT\\MR",
        "SOPClassesInStudy": f"{CT_CLASS}\\{MRImageStorage}",
        "NumberOfStudyRelatedSeries": "2",
        "NumberOfStudyRelatedInstances": "3",
        "PatientName": "Doe^John",
        "StudyDate": "20180322",
    }
    series = find(
        api,
        {
            "Level": "Series",
            "Query": {"PatientID": "P-DOE"},
            "Expand": True,
            "RequestedTags": ["NumberOfSeriesRelatedInstances", "Modality"],
        },
    )
    assert [s["RequestedTags"] for s in series] == [
        {"NumberOfSeriesRelatedInstances": "2", "Modality": "CT"},
        {"NumberOfSeriesRelatedInstances": "1", "Modality": "MR"},
        {"NumberOfSeriesRelatedInstances": "1", "Modality": "MR"},
    ]
    patients = find(
        api,
        {
            "Level": "Patient",
            "Query": OURS,
            "Expand": True,
            "RequestedTags": ["NumberOfPatientRelatedStudies", "PatientID"],
        },
    )
    assert [p["RequestedTags"] for p in patients] == [
        {"NumberOfPatientRelatedStudies": "2", "PatientID": "P-DOE"},
        {"NumberOfPatientRelatedStudies": "1", "PatientID": "P-SMITH"},
    ]


def test_requested_tags_in_full_and_short(site: Site) -> None:
    body = {
        "Level": "Study",
        "Query": {"StudyInstanceUID": "1.2.3.2"},
        "Expand": True,
        "RequestedTags": ["ModalitiesInStudy", "0008,0020"],
    }
    (full,) = find(site.api, {**body, "Full": True})
    assert full["RequestedTags"] == {
        "0008,0061": {"Name": "ModalitiesInStudy", "Type": "String", "Value": "MR"},
        "0008,0020": {"Name": "StudyDate", "Type": "String", "Value": "20180324"},
    }
    (short,) = find(site.api, {**body, "Short": True})
    assert short["RequestedTags"] == {"0008,0061": "MR", "0008,0020": "20180324"}


def test_requested_tags_from_the_files(site: Site) -> None:
    # Not in the index: read from one instance of each resource (StorageAccessOnFind
    # "Always"), null when the file has no such tag.
    studies = find(
        site.api,
        {
            "Level": "Study",
            "Query": OURS,
            "Expand": True,
            "RequestedTags": ["SliceThickness", "PatientWeight", "Modality"],
        },
    )
    assert [s["RequestedTags"] for s in studies] == [
        {"SliceThickness": "1.5", "PatientWeight": None, "Modality": "CT"},
        {"SliceThickness": "1.0", "PatientWeight": None, "Modality": "MR"},
        {"SliceThickness": "1.0", "PatientWeight": None, "Modality": "CR"},
    ]


def test_requested_tags_missing_from_the_files_in_each_format(site: Site) -> None:
    body = {
        "Level": "Instance",
        "Query": {"SOPInstanceUID": "1.2.3.3.1.4"},
        "Expand": True,
        "RequestedTags": ["PatientWeight", "SliceThickness"],
    }
    (simplified,) = find(site.api, body)
    assert simplified["RequestedTags"] == {"PatientWeight": None, "SliceThickness": "1.0"}
    (short,) = find(site.api, {**body, "Short": True})
    assert short["RequestedTags"] == {"0010,1030": None, "0018,0050": "1.0"}
    # Orthanc's full format: a Null node, not a bare null.
    (full,) = find(site.api, {**body, "Full": True})
    assert full["RequestedTags"] == {
        "0010,1030": {"Name": "PatientWeight", "Type": "Null", "Value": None},
        "0018,0050": {"Name": "SliceThickness", "Type": "String", "Value": "1.0"},
    }


def test_storage_access_always_filters_on_the_files(site: Site) -> None:
    body = {"Level": "Instance", "Query": {"SliceThickness": "1.5", **OURS}}
    assert site.find(body) == ["a1"]
    assert site.find({**body, "Query": {"SliceThickness": "1.5\\3", **OURS}}) == ["a1", "a2"]
    # At the series level, the first instance of each series decides.
    series = {"Level": "Series", "Query": {"SliceThickness": "1.0", **OURS}}
    assert site.find(series) == ["B1", "C1", "A2"]
    limited = {"Level": "Instance", "Query": {"SliceThickness": "1.0", **OURS}, "Limit": 1}
    assert site.find({**limited, "Since": 1}) == ["c1"]


# -- labels, order --------------------------------------------------------------------------------


def test_labels(site: Site) -> None:
    def studies(labels: Any, constraint: str | None = None) -> list[str]:
        body: dict[str, Any] = {"Level": "Study", "Query": OURS, "Labels": labels}
        if constraint is not None:
            body["LabelsConstraint"] = constraint
        return site.find(body)

    assert studies(["teaching"]) == ["A"]
    assert studies(["ai"]) == ["A", "C"]
    assert studies(["ai", "teaching"]) == ["A"]
    assert studies(["ai", "teaching"], "All") == ["A"]
    assert studies(["teaching", "nope"], "Any") == ["A"]
    assert studies(["ai"], "None") == ["B"]
    assert studies([], "None") == ["A", "B", "C"]
    assert site.find({"Level": "Series", "Query": OURS, "Labels": ["ai"]}) == []


def test_order_by(site: Site) -> None:
    def studies(*order: dict[str, str]) -> list[str]:
        return site.find({"Level": "Study", "Query": OURS, "OrderBy": list(order)})

    date = {"Type": "DicomTag", "Key": "StudyDate"}
    assert studies({**date, "Direction": "DESC"}) == ["C", "B", "A"]
    assert studies({**date, "Direction": "ASC"}) == ["A", "B", "C"]
    name = {"Type": "DicomTag", "Key": "PatientName"}
    assert studies({**name, "Direction": "DESC"}) == ["C", "A", "B"]
    assert studies({**name, "Direction": "DESC"}, {**date, "Direction": "DESC"}) == [
        "C",
        "B",
        "A",
    ]
    update = {"Type": "Metadata", "Key": "LastUpdate"}
    assert studies({**update, "Direction": "DESC"}) == ["A", "C", "B"]
    paged = {
        "Level": "Study",
        "Query": OURS,
        "OrderBy": [{**date, "Direction": "DESC"}],
        "Since": 1,
        "Limit": 1,
    }
    assert site.find(paged) == ["B"]
    instances = {
        "Level": "Instance",
        "Query": {"PatientID": "P-DOE"},
        "OrderBy": [{"Type": "DicomTag", "Key": "InstanceNumber", "Direction": "DESC"}],
    }
    assert site.find(instances) == ["a3", "b1", "a2", "a1"]
    # Numbers kept as numbers by the index sort as numbers (and no value comes first).
    expected = {
        "Level": "Series",
        "Query": OURS,
        "OrderBy": [{"Type": "Metadata", "Key": "ExpectedNumberOfInstances", "Direction": "ASC"}],
    }
    assert site.find(expected) == ["A1", "B1", "C1", "A2"]


def test_order_by_with_expand_and_requested_tags(site: Site) -> None:
    found = find(
        site.api,
        {
            "Level": "Study",
            "Query": OURS,
            "Expand": True,
            "RequestedTags": ["StudyDate", "NumberOfStudyRelatedInstances"],
            "OrderBy": [{"Type": "DicomTag", "Key": "StudyDate", "Direction": "DESC"}],
        },
    )
    assert site.names([s["ID"] for s in found]) == ["C", "B", "A"]
    assert [s["RequestedTags"] for s in found] == [
        {"StudyDate": "20180326", "NumberOfStudyRelatedInstances": "1"},
        {"StudyDate": "20180324", "NumberOfStudyRelatedInstances": "1"},
        {"StudyDate": "20180322", "NumberOfStudyRelatedInstances": "3"},
    ]


# -- /tools/lookup --------------------------------------------------------------------------------


def test_lookup(site: Site) -> None:
    api = site.api

    def lookup(value: str) -> Any:
        response = api.post("/tools/lookup", content=value.encode())
        assert response.status_code == 200, response.text
        return response.json()

    doe = site.ids["DOE"]
    assert lookup("P-DOE") == [{"ID": doe, "Path": f"/patients/{doe}", "Type": "Patient"}]
    assert lookup("p-doe\n") == lookup("P-DOE")  # identifiers are normalised (Orthanc)
    study = site.ids["B"]
    assert lookup("1.2.3.2") == [{"ID": study, "Path": f"/studies/{study}", "Type": "Study"}]
    series = site.ids["A2"]
    assert lookup("1.2.3.1.2") == [{"ID": series, "Path": f"/series/{series}", "Type": "Series"}]
    instance = site.ids["c1"]
    assert lookup("1.2.3.3.1.4") == [
        {"ID": instance, "Path": f"/instances/{instance}", "Type": "Instance"}
    ]
    assert lookup("Doe^John") == []
    assert lookup("") == []
    assert lookup("P-DOE\x00") == []
    bad = api.post("/tools/lookup", content=b"\xff\xfe")
    assert bad.status_code == 400
    assert bad.json()["HttpStatus"] == 400


# -- the GET routes: ?expand, ?requestedTags, ?full, ?short ---------------------------------------


def test_get_lists_with_requested_tags(site: Site) -> None:
    api = site.api
    patients = api.get(
        "/patients",
        params={"expand": "", "requestedTags": "NumberOfPatientRelatedStudies;PatientName"},
    ).json()
    by_id = {p["ID"]: p for p in patients}
    assert by_id[site.ids["DOE"]]["RequestedTags"] == {
        "NumberOfPatientRelatedStudies": "2",
        "PatientName": "Doe^John",
    }
    assert by_id[site.ids["SMITH"]]["RequestedTags"] == {
        "NumberOfPatientRelatedStudies": "1",
        "PatientName": "SMITH^ANNA",
    }
    plain = api.get("/patients", params={"expand": ""}).json()
    assert all("RequestedTags" not in p for p in plain)
    children = api.get(
        f"/studies/{site.ids['A']}/series",
        params={"requestedTags": "NumberOfSeriesRelatedInstances"},
    ).json()
    assert [c["RequestedTags"] for c in children] == [
        {"NumberOfSeriesRelatedInstances": "2"},
        {"NumberOfSeriesRelatedInstances": "1"},
    ]
    bad = api.get("/patients", params={"expand": "", "requestedTags": "Nope"})
    assert bad.status_code == 400


def test_get_one_resource_in_each_format(site: Site) -> None:
    api = site.api
    path = f"/studies/{site.ids['A']}"
    simplified = api.get(path).json()
    assert simplified["MainDicomTags"]["StudyDescription"] == "Chest CT"
    full = api.get(path + "?full").json()
    assert full["MainDicomTags"]["0008,1030"] == {
        "Name": "StudyDescription",
        "Type": "String",
        "Value": "Chest CT",
    }
    assert full["PatientMainDicomTags"]["0010,0020"] == {
        "Name": "PatientID",
        "Type": "String",
        "Value": "P-DOE",
    }
    assert set(full["MainDicomTags"]) == {
        "0008,0020",
        "0008,0030",
        "0008,0050",
        "0008,0080",
        "0008,0090",
        "0008,1030",
        "0020,000d",
        "0020,0010",
    }
    short = api.get(path + "?short").json()
    assert short["MainDicomTags"]["0008,0080"] == "Hôpital Nord"
    assert short["PatientMainDicomTags"]["0010,0010"] == "Doe^John"
    with_tags = api.get(path, params={"requestedTags": "ModalitiesInStudy;0020,1208"}).json()
    assert with_tags["RequestedTags"] == {
        "ModalitiesInStudy": "CT\\MR",
        "NumberOfStudyRelatedInstances": "3",
    }
    parent = api.get(f"/instances/{site.ids['a1']}/series?short").json()
    assert parent["MainDicomTags"]["0008,0060"] == "CT"
    full_series = api.get(
        f"/series/{site.ids['A1']}?full&requestedTags=NumberOfSeriesRelatedInstances"
    ).json()
    assert full_series["RequestedTags"] == {
        "0020,1209": {"Name": "NumberOfSeriesRelatedInstances", "Type": "String", "Value": "2"}
    }


# -- character sets (David Clunie's samples) -------------------------------------------------------


@pytest.mark.corpus
def test_names_in_other_character_sets(site: Site) -> None:
    if not site.corpus:
        pytest.skip("no dicom-corpus/Encodings/DavidClunie")

    def patients(name: str, sensitive: bool = False) -> list[str]:
        body = {"Level": "Patient", "Query": {"PatientName": name}, "CaseSensitive": sensitive}
        found = find(site.api, body)
        by_patient = {answer["ParentPatient"]: file for file, answer in site.corpus.items()}
        return [by_patient.get(public_id, public_id) for public_id in found]

    assert patients("buc^j*") == ["SCSFREN"]
    assert patients("BUC^JÉRÔME") == ["SCSFREN"]
    assert patients("buc^j*", sensitive=True) == []
    assert patients("Buc^Jérôme", sensitive=True) == ["SCSFREN"]
    assert patients("äneas*") == ["SCSGERM"]
    assert patients("ÄNEAS*") == ["SCSGERM"]
    assert patients("*rüdiger") == ["SCSGERM"]
    assert patients("διον*") == ["SCSGREEK"]
    assert patients("ΔΙΟΝΥΣΙΟΣ") == ["SCSGREEK"]
    assert patients("*山田*") == ["SCSH31", "SCSH32"]
    assert patients("*小東*") == ["SCSX1"]  # traditional, not SCSX2's simplified 小东
    assert patients("*小東") == []  # the value is "Wang^XiaoDong=王^小東=" (empty 3rd group)
    assert patients("שרון*") == ["SCSHBRW"]
    assert patients("люк*") == ["SCSRUSS"]
    (expanded,) = find(
        site.api, {"Level": "Patient", "Query": {"PatientName": "buc^j*"}, "Expand": True}
    )
    assert expanded["MainDicomTags"]["PatientName"] == "Buc^Jérôme"
    studies = find(
        site.api,
        {
            "Level": "Study",
            "Query": {"PatientName": "*山田*"},
            "Expand": True,
            "RequestedTags": ["PatientName"],
        },
    )
    assert [s["RequestedTags"]["PatientName"] for s in studies] == [
        "Yamada^Tarou=山田^太郎=やまだ^たろう",
        "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう",
    ]


# -- bad requests ---------------------------------------------------------------------------------


BAD_BODIES: list[tuple[str, Any, int]] = [
    ("not JSON", b"{Level: Study", 8),
    ("empty", b"", 8),
    ("an array", [], 8),
    ("a string", "Study", 8),
    ("no Level", {"Query": {}}, 8),
    ("Level not a string", {"Level": 2, "Query": {}}, 8),
    ("unknown Level", {"Level": "Equipment", "Query": {}}, 3),
    ("no Query", {"Level": "Study"}, 8),
    ("Query not an object", {"Level": "Study", "Query": ["PatientName"]}, 8),
    ("value not a string", {"Level": "Study", "Query": {"PatientName": 42}}, 8),
    ("unknown tag", {"Level": "Study", "Query": {"NoSuchTag": "x"}}, 27),
    ("wildcard on a date", {"Level": "Study", "Query": {"StudyDate": "2018*"}}, 3),
    ("wildcard on a UID", {"Level": "Study", "Query": {"StudyInstanceUID": "1.2.*"}}, 3),
    ("bad range", {"Level": "Study", "Query": {"StudyDate": "2018-2019"}}, 8),
    ("CaseSensitive", {"Level": "Study", "Query": {}, "CaseSensitive": "yes"}, 8),
    ("Limit", {"Level": "Study", "Query": {}, "Limit": "10"}, 8),
    ("negative Limit", {"Level": "Study", "Query": {}, "Limit": -1}, 3),
    ("negative Since", {"Level": "Study", "Query": {}, "Since": -5}, 3),
    ("RequestedTags", {"Level": "Study", "Query": {}, "RequestedTags": "PatientName"}, 8),
    ("unknown RequestedTags", {"Level": "Study", "Query": {}, "RequestedTags": ["Nope"]}, 27),
    ("Labels", {"Level": "Study", "Query": {}, "Labels": "ai"}, 8),
    ("bad label", {"Level": "Study", "Query": {}, "Labels": ["with space"]}, 3),
    (
        "unknown metadata number",
        {"Level": "Study", "Query": {}, "OrderBy": [{"Type": "Metadata", "Key": "9" * 20}]},
        8,
    ),
    ("LabelsConstraint", {"Level": "Study", "Query": {}, "LabelsConstraint": "Some"}, 8),
    ("OrderBy", {"Level": "Study", "Query": {}, "OrderBy": {"Key": "StudyDate"}}, 8),
    (
        "OrderBy Direction",
        {
            "Level": "Study",
            "Query": {},
            "OrderBy": [{"Type": "DicomTag", "Key": "StudyDate", "Direction": "UP"}],
        },
        8,
    ),
    (
        "OrderBy a lower level",
        {"Level": "Study", "Query": {}, "OrderBy": [{"Type": "DicomTag", "Key": "Modality"}]},
        8,
    ),
]


@pytest.mark.parametrize(
    ("body", "orthanc_status"),
    [(body, status) for _, body, status in BAD_BODIES],
    ids=[name for name, _, _ in BAD_BODIES],
)
def test_bad_bodies_are_400_with_orthanc_errors(site: Site, body: Any, orthanc_status: int) -> None:
    api = site.api
    before = api.get("/statistics").json()
    if isinstance(body, bytes):
        response = api.post("/tools/find", content=body)
    else:
        response = api.post("/tools/find", json=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["HttpStatus"] == 400
    assert error["HttpError"] == "Bad Request"
    assert error["Method"] == "POST"
    assert error["Uri"] == "/tools/find"
    assert error["OrthancStatus"] == orthanc_status
    assert isinstance(error["OrthancError"], str) and error["Message"] == error["OrthancError"]
    assert api.get("/statistics").json() == before
    assert site.find({"Level": "Study", "Query": OURS}) == ["A", "B", "C"]


def test_reconstruct_errors(site: Site) -> None:
    api = site.api
    before = api.get("/statistics").json()
    assert api.post("/studies/nope/reconstruct").status_code == 404
    assert api.post(f"/series/{site.ids['A']}/reconstruct").status_code == 404  # wrong level
    bad = api.post(f"/studies/{site.ids['A']}/reconstruct", content=b"{not json")
    assert bad.status_code == 400
    assert bad.json()["Uri"] == f"/studies/{site.ids['A']}/reconstruct"
    assert api.post("/tools/reconstruct", content=b"[1]").status_code == 400
    assert api.get("/statistics").json() == before


# -- StorageAccessOnFind "Never"/"Answers", ExtraMainDicomTags and /reconstruct ------------------


EXTRA = {
    "Patient": ["PatientWeight"],
    "Study": ["InstitutionalDepartmentName", "0032,4000"],  # StudyComments, by number
    "Instance": ["SliceThickness"],
}


@dataclass
class Restarted:
    servers: Servers
    ids: dict[str, str]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def restarted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Restarted]:
    """Two studies stored by a server without ExtraMainDicomTags; the tests restart it on
    the same storage and index with the configuration they need."""
    servers = Servers(tmp_path_factory.mktemp("restart"), backend_config(request))
    api = servers.ensure(StorageAccessOnFind="Never")
    ids: dict[str, str] = {}
    for name, study, department, thickness in (
        ("x", "7.1", "Radiology", "1.5"),
        ("y", "7.2", "Neurology", "1.5"),
    ):
        answer = upload(
            api,
            make_dicom(
                patient_id=f"P-{name.upper()}",
                study_uid=study,
                sop_uid=f"{study}.1.1",
                InstitutionalDepartmentName=department,
                StudyComments=f"about {name}",
                PatientWeight="70",
                SliceThickness=thickness,
            ),
        )
        ids[name] = answer["ID"]
        ids["study " + name] = answer["ParentStudy"]
        ids["patient " + name] = answer["ParentPatient"]
    try:
        yield Restarted(servers, ids)
    finally:
        servers.stop()


def test_storage_access_never(restarted: Restarted) -> None:
    api = restarted.servers.ensure(StorageAccessOnFind="Never")
    # A tag that is only in the files can neither be searched nor read.
    assert find(api, {"Level": "Instance", "Query": {"SliceThickness": "1.5"}}) == []
    assert find(api, {"Level": "Study", "Query": {"StudyComments": "about*"}}) == []
    (study,) = find(
        api,
        {
            "Level": "Study",
            "Query": {"StudyInstanceUID": "7.1"},
            "Expand": True,
            "RequestedTags": ["StudyComments", "StudyDate", "NumberOfStudyRelatedInstances"],
        },
    )
    assert study["RequestedTags"] == {
        "StudyDate": "20240131",
        "NumberOfStudyRelatedInstances": "1",
    }
    # The index still answers.
    found = find(api, {"Level": "Instance", "Query": {"PatientID": "P-X"}})
    assert found == [restarted.ids["x"]]


def test_storage_access_answers_and_limit_find_results(restarted: Restarted) -> None:
    api = restarted.servers.ensure(StorageAccessOnFind="Answers", LimitFindResults=1)
    # LimitFindResults caps the answers of patients, studies and series, not instances.
    assert find(api, {"Level": "Study", "Query": {}}) == [restarted.ids["study x"]]
    assert find(api, {"Level": "Study", "Query": {}, "Limit": 5}) == [restarted.ids["study x"]]
    assert find(api, {"Level": "Study", "Query": {}, "Since": 1}) == [restarted.ids["study y"]]
    assert len(find(api, {"Level": "Patient", "Query": {}})) == 1
    assert find(api, {"Level": "Instance", "Query": {}}) == [
        restarted.ids["x"],
        restarted.ids["y"],
    ]
    # The files are read for the answers, not to filter.
    assert find(api, {"Level": "Instance", "Query": {"ImageComments": "*"}}) == []
    assert find(api, {"Level": "Study", "Query": {"StudyComments": "about x"}}) == []
    (study,) = find(
        api,
        {
            "Level": "Study",
            "Query": {"StudyInstanceUID": "7.1"},
            "Expand": True,
            "RequestedTags": ["StudyComments", "ImageComments"],
        },
    )
    # StudyComments is retired: named as DCMTK's dictionary names it, like Orthanc.
    assert study["RequestedTags"] == {"RETIRED_StudyComments": "about x", "ImageComments": None}


def test_extra_main_dicom_tags_need_reconstruct(restarted: Restarted) -> None:
    ids = restarted.ids
    api = restarted.servers.ensure(StorageAccessOnFind="Never", ExtraMainDicomTags=EXTRA)
    study_x, study_y = ids["study x"], ids["study y"]
    department = {"Level": "Study", "Query": {"InstitutionalDepartmentName": "radiology"}}

    # Stored before the option: their extra tags are not in the index yet.
    assert find(api, department) == []
    assert (
        "InstitutionalDepartmentName" not in api.get(f"/studies/{study_x}").json()["MainDicomTags"]
    )
    response = api.post(f"/studies/{study_x}/reconstruct")
    assert (response.status_code, response.text) == (200, "")

    assert find(api, department) == [study_x]
    study = api.get(f"/studies/{study_x}").json()
    assert study["MainDicomTags"]["InstitutionalDepartmentName"] == "Radiology"
    assert study["MainDicomTags"]["RETIRED_StudyComments"] == "about x"
    assert study["PatientMainDicomTags"]["PatientWeight"] == "70"
    assert api.get(f"/patients/{ids['patient x']}").json()["MainDicomTags"]["PatientWeight"] == (
        "70"
    )
    assert api.get(f"/instances/{ids['x']}").json()["MainDicomTags"]["SliceThickness"] == "1.5"
    full = api.get(f"/studies/{study_x}?full").json()
    assert full["MainDicomTags"]["0008,1040"] == {
        "Name": "InstitutionalDepartmentName",
        "Type": "String",
        "Value": "Radiology",
    }
    # Searched and shown from the index, even with StorageAccessOnFind "Never".
    comments = {"Level": "Study", "Query": {"StudyComments": "ABOUT*"}}
    assert find(api, comments) == [study_x]  # study y is not reconstructed yet
    (expanded,) = find(
        api,
        {
            "Level": "Study",
            "Query": {"StudyInstanceUID": "7.1"},
            "Expand": True,
            "RequestedTags": ["InstitutionalDepartmentName", "PatientWeight"],
        },
    )
    assert expanded["RequestedTags"] == {
        "InstitutionalDepartmentName": "Radiology",
        "PatientWeight": "70",
    }
    assert expanded["MainDicomTags"]["InstitutionalDepartmentName"] == "Radiology"
    slice_thickness = {"Level": "Instance", "Query": {"SliceThickness": "1.5"}}
    assert find(api, slice_thickness) == [ids["x"]]

    # Everything else, at once.
    response = api.post("/tools/reconstruct", json={"ReconstructFiles": False})
    assert (response.status_code, response.text) == (200, "")
    assert find(api, slice_thickness) == [ids["x"], ids["y"]]
    assert find(api, comments) == [study_x, study_y]
    neuro = {"Level": "Series", "Query": {"InstitutionalDepartmentName": "neuro*"}}
    assert find(api, neuro) == [api.get(f"/instances/{ids['y']}").json()["ParentSeries"]]
    weight = {"Level": "Study", "Query": {"PatientWeight": "70"}}
    assert find(api, weight) == [study_x, study_y]
    order = {
        "Level": "Study",
        "Query": {},
        "OrderBy": [{"Type": "DicomTag", "Key": "InstitutionalDepartmentName"}],
    }
    assert find(api, order) == [study_y, study_x]  # Neurology < Radiology
