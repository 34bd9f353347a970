"""QIDO-RS on a real server (SQLite and PostgreSQL), through the dicomweb-client library and
raw HTTP: matching, default and requested attributes, paging, and refused queries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from requests import HTTPError

from tests.dicomgen import make_dicom
from tests.http.dicomweb.conftest import Site, shared_site

# Two patients, three studies, four series, five instances.
STUDY_A, STUDY_B, STUDY_C = "1.2.826.1.1", "1.2.826.1.2", "1.2.826.1.3"
UPLOADS: list[dict[str, Any]] = [
    {"patient_id": "QP1", "patient_name": "Doe^Jane", "study_uid": STUDY_A,
     "series_uid": STUDY_A + ".1", "StudyDate": "20200105", "Modality": "CT"},
    {"patient_id": "QP1", "patient_name": "Doe^Jane", "study_uid": STUDY_A,
     "series_uid": STUDY_A + ".1", "StudyDate": "20200105", "Modality": "CT"},
    {"patient_id": "QP1", "patient_name": "Doe^Jane", "study_uid": STUDY_A,
     "series_uid": STUDY_A + ".2", "StudyDate": "20200105", "Modality": "SR"},
    {"patient_id": "QP1", "patient_name": "Doe^Jane", "study_uid": STUDY_B,
     "series_uid": STUDY_B + ".1", "StudyDate": "20210610", "Modality": "MR"},
    {"patient_id": "QP2", "patient_name": "Smith^Ann", "study_uid": STUDY_C,
     "series_uid": STUDY_C + ".1", "StudyDate": "20220301", "Modality": "CT",
     "StudyDescription": "Héllo wörld"},
]  # fmt: skip


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    config: dict[str, object] = {}
    if request.param == "postgres":
        config["PostgreSQL"] = request.getfixturevalue("postgres_databases").create()
    for found in shared_site(tmp_path_factory.mktemp("qido"), config):
        for number, upload in enumerate(UPLOADS, start=1):
            found.upload(
                make_dicom(sop_uid=f"{upload['series_uid']}.{number}", instance_number=number,
                           **upload)
            )  # fmt: skip
        yield found


def values(answers: list[dict[str, Any]], tag: str) -> list[Any]:
    return [answer[tag]["Value"][0] for answer in answers]


def test_search_for_studies_by_keyword_and_by_tag(site: Site) -> None:
    found = site.client.search_for_studies(search_filters={"PatientName": "Doe*"})
    assert values(found, "0020000D") == [STUDY_A, STUDY_B]
    found = site.client.search_for_studies(search_filters={"00100020": "QP2"})
    assert values(found, "0020000D") == [STUDY_C]
    assert site.client.search_for_studies(search_filters={"PatientID": "nobody"}) == []


def test_study_default_attributes_and_computed_ones(site: Site) -> None:
    (study,) = site.client.search_for_studies(search_filters={"StudyInstanceUID": STUDY_A})
    assert study["00100010"] == {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]}
    assert study["00080020"] == {"vr": "DA", "Value": ["20200105"]}
    assert study["00080061"] == {"vr": "CS", "Value": ["CT", "SR"]}  # ModalitiesInStudy
    assert study["00201206"] == {"vr": "IS", "Value": [2]}  # NumberOfStudyRelatedSeries
    assert study["00201208"] == {"vr": "IS", "Value": [3]}  # NumberOfStudyRelatedInstances
    assert study["00080056"] == {"vr": "CS", "Value": ["ONLINE"]}
    url = study["00081190"]["Value"][0]
    assert url.endswith(f"/dicom-web/studies/{STUDY_A}")
    assert list(study) == sorted(study)
    assert "00081030" not in study  # StudyDescription: not a default attribute


def test_date_range_limit_and_offset(site: Site) -> None:
    answer = site.client.search_for_studies(search_filters={"StudyDate": "20200101-20211231"})
    assert values(answer, "0020000D") == [STUDY_A, STUDY_B]
    page = site.client.search_for_studies(search_filters={"PatientID": "QP*"}, limit=2, offset=1)
    assert values(page, "0020000D") == [STUDY_B, STUDY_C]


def test_includefield_by_keyword_tag_and_all(site: Site) -> None:
    (study,) = site.client.search_for_studies(
        search_filters={"StudyInstanceUID": STUDY_C}, fields=["StudyDescription"]
    )
    assert study["00081030"] == {"vr": "LO", "Value": ["Héllo wörld"]}
    response = site.api.get(
        "/dicom-web/studies",
        params=[("StudyInstanceUID", STUDY_C), ("includefield", "00180050,PixelSpacing")],
    )
    assert len(response.json()) == 1, (response.request.url, response.json())
    (study,) = response.json()
    # Not indexed: read from the file (numbers as JSON numbers).
    assert study["00180050"] == {"vr": "DS", "Value": [1.0]}
    assert study["00280030"] == {"vr": "DS", "Value": [0.5, 0.5]}
    response = site.api.get("/dicom-web/studies?StudyInstanceUID=" + STUDY_C + "&includefield=all")
    (study,) = response.json()
    assert study["00081030"]["Value"] == ["Héllo wörld"]
    assert study["00201208"]["Value"] == [1]


def test_series_and_instances_searches(site: Site) -> None:
    series = site.client.search_for_series(STUDY_A)
    assert values(series, "0020000E") == [STUDY_A + ".1", STUDY_A + ".2"]
    assert values(series, "00201209") == [2, 1]  # NumberOfSeriesRelatedInstances
    assert values(series, "00080060") == ["CT", "SR"]
    ct = site.client.search_for_series(search_filters={"Modality": "CT"})
    assert values(ct, "0020000E") == [STUDY_A + ".1", STUDY_C + ".1"]
    assert values(ct, "0020000D") == [STUDY_A, STUDY_C]
    instances = site.client.search_for_instances(STUDY_A, STUDY_A + ".1")
    assert values(instances, "00080018") == [STUDY_A + ".1.1", STUDY_A + ".1.2"]
    assert values(instances, "00080016") == ["1.2.840.10008.5.1.4.1.1.2"] * 2
    assert values(instances, "00200013") == [1, 2]
    assert instances[0]["00081190"]["Value"][0].endswith(
        f"/studies/{STUDY_A}/series/{STUDY_A}.1/instances/{STUDY_A}.1.1"
    )
    of_study = site.client.search_for_instances(STUDY_A)
    assert len(of_study) == 3
    everything = site.client.search_for_instances(search_filters={"PatientID": "QP1"})
    assert len(everything) == 4
    assert site.client.search_for_series("1.2.999") == []


def test_uid_list_matching(site: Site) -> None:
    response = site.api.get(f"/dicom-web/studies?StudyInstanceUID={STUDY_A},{STUDY_C}")
    assert values(response.json(), "0020000D") == [STUDY_A, STUDY_C]


def test_fuzzymatching_makes_names_case_insensitive(site: Site) -> None:
    # QidoCaseSensitive is true by default, as in Orthanc's plugin.
    assert site.client.search_for_studies(search_filters={"PatientName": "doe*"}) == []
    found = site.client.search_for_studies(
        search_filters={"PatientName": "doe*"}, fuzzymatching=True
    )
    assert values(found, "0020000D") == [STUDY_A, STUDY_B]


def test_json_media_types(site: Site) -> None:
    for accept in ("application/dicom+json", "application/json", "*/*"):
        response = site.api.get("/dicom-web/studies", headers={"Accept": accept})
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/dicom+json"
    response = site.api.get("/dicom-web/studies", headers={"Accept": "application/dicom+xml"})
    assert response.status_code == 200  # the Native DICOM Model, one part per answer
    assert response.headers["content-type"].startswith(
        'multipart/related; type="application/dicom+xml"'
    )
    assert response.content.count(b"<NativeDicomModel>") == 3
    response = site.api.get("/dicom-web/studies", headers={"Accept": "text/html"})
    assert response.status_code == 406


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("NoSuchKeyword=1", "NoSuchKeyword"),
        ("includefield=Bogus", "Bogus"),
        ("limit=-1", "limit"),
        ("offset=x", "offset"),
        ("fuzzymatching=maybe", "fuzzymatching"),
        ("StudyDate=2020-2021", "range"),
        ("PixelData=1", "PixelData"),
    ],
)
def test_bad_queries_are_400(site: Site, query: str, message: str) -> None:
    response = site.api.get("/dicom-web/studies?" + query)
    assert response.status_code == 400, response.text
    assert message.lower() in response.text.lower()


def test_client_sees_http_errors(site: Site) -> None:
    with pytest.raises(HTTPError):
        site.client.search_for_studies(search_filters={"NoSuchKeyword": "1"})


def test_extra_main_tags_are_answered_from_the_index(api_factory: Any) -> None:
    """With ExtraMainDicomTags, QIDO-RS answers them from the index (the files are not read:
    StorageAccessOnFind "Never"); without, the same attribute needs a file."""
    config = {"StorageAccessOnFind": "Never", "ExtraMainDicomTags": {"Study": ["StudyComments"]}}
    api = api_factory(**config)
    assert api.post("/instances", content=make_dicom(StudyComments="kept")).is_success
    (study,) = api.get("/dicom-web/studies", params={"includefield": "StudyComments"}).json()
    assert study["00324000"] == {"vr": "LT", "Value": ["kept"]}
    (found,) = api.get("/dicom-web/studies", params={"StudyComments": "kept"}).json()
    assert found["0020000D"] == study["0020000D"]

    api.server.stop()  # on PostgreSQL, the next server shares its database
    plain = api_factory(StorageAccessOnFind="Never")
    data = make_dicom(study_uid="1.2.826.9.9", StudyComments="kept")
    assert plain.post("/instances", content=data).is_success
    params = {"includefield": "StudyComments", "StudyInstanceUID": "1.2.826.9.9"}
    (study,) = plain.get("/dicom-web/studies", params=params).json()
    assert "00324000" not in study
