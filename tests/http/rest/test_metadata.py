"""Metadata of resources through the REST API: built-in, user, revisions (Orthanc's ETags)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from pharos.services.annotations import AnnotationConfigError, AnnotationNames
from tests.dicomgen import make_dicom


def upload(api: Any, **kwargs: Any) -> dict[str, Any]:
    response = api.post("/instances", content=make_dicom(**kwargs))
    assert response.status_code == 200, response.text
    return dict(response.json())


def etag(revision: int, value: str) -> str:
    return f'"{revision}-{hashlib.md5(value.encode()).hexdigest()}"'


def test_builtin_metadata_of_each_level(api: Any) -> None:
    ids = upload(api, patient_id="P-META")
    instance = f"/instances/{ids['ID']}/metadata"
    names = api.get(instance).json()
    assert names == [
        "IndexInSeries",
        "ReceptionDate",
        "RemoteAET",
        "Origin",
        "TransferSyntax",
        "SopClassUid",
        "RemoteIP",
        "HttpUsername",
        "PixelDataOffset",
    ]
    expanded = api.get(instance + "?expand").json()
    assert list(expanded) == names
    assert expanded["Origin"] == "RestApi"
    assert expanded["RemoteAET"] == "" and expanded["HttpUsername"] == ""
    assert expanded["RemoteIP"] == "127.0.0.1"
    assert expanded["TransferSyntax"] == "1.2.840.10008.1.2.1"
    assert expanded["SopClassUid"] == "1.2.840.10008.5.1.4.1.1.2"
    assert api.get(instance + "/IndexInSeries").text == "1"
    assert api.get(instance + "/1").text == "1"  # numbers work as names
    assert int(api.get(instance + "/PixelDataOffset").text) > 0
    assert api.get(instance + "?numeric").json() == [1, 2, 3, 8, 9, 10, 11, 13, 14]
    assert api.get(instance + "?expand&numeric").json()["8"] == "RestApi"

    series = api.get(f"/series/{ids['ParentSeries']}/metadata?expand").json()
    assert list(series) == ["RemoteAET", "LastUpdate"]
    assert series["LastUpdate"] == expanded["ReceptionDate"]
    for level, key in (("patients", "ParentPatient"), ("studies", "ParentStudy")):
        assert api.get(f"/{level}/{ids[key]}/metadata").json() == ["LastUpdate"]

    response = api.get(instance + "/Origin")
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["etag"] == etag(0, "RestApi")
    assert (
        api.get(instance + "/Origin", headers={"If-None-Match": etag(0, "RestApi")}).status_code
        == 304
    )


def test_metadata_errors(api: Any) -> None:
    ids = upload(api, patient_id="P-META-ERR")
    patient = f"/patients/{ids['ParentPatient']}"
    # Wrong level, unknown resource: 404, as Orthanc >= 1.8.2.
    assert api.get(f"/studies/{ids['ParentPatient']}/metadata").status_code == 404
    assert (
        api.get("/patients/00000000-00000000-00000000-00000000-00000000/metadata").status_code
        == 404
    )
    assert api.put("/patients/nope/metadata/1024", content=b"x").status_code == 404
    # Unknown name; known but absent.
    unknown = api.get(patient + "/metadata/NoSuchName")
    assert (
        unknown.status_code == 404
        and unknown.json()["OrthancError"] == "Accessing an inexistent item"
    )
    assert api.get(patient + "/metadata/1024").status_code == 404
    assert api.get(patient + "/metadata/IndexInSeries").status_code == 404
    # Built-in metadata are read-only (403), whatever the number.
    for name in ("LastUpdate", "7", "1023", "65536", "-3"):
        refused = api.put(patient + f"/metadata/{name}", content=b"x")
        assert refused.status_code == 403, name
        assert "user metadata" in refused.json()["Details"]
    assert api.delete(patient + "/metadata/LastUpdate").status_code == 403
    assert api.put(patient + "/metadata/99999999999999999999", content=b"x").status_code == 400
    # Values must be text the databases can hold.
    assert api.put(patient + "/metadata/1024", content=b"\xff\xfe").status_code == 400
    assert api.put(patient + "/metadata/1024", content=b"a\x00b").status_code == 400
    bad_etag = api.put(patient + "/metadata/1024", content=b"x", headers={"If-Match": "nonsense"})
    assert bad_etag.status_code == 400
    assert "ETag" in bad_etag.json()["Details"]
    assert api.delete(patient + "/metadata/1024").status_code == 404
    assert api.get(patient + "/metadata").json() == ["LastUpdate"]


def test_user_metadata_lifecycle(api_factory: Any) -> None:
    api = api_factory(UserMetadata={"Sample": 1024, "Other": 2000})
    ids = upload(api, patient_id="P-USER-META")
    study = f"/studies/{ids['ParentStudy']}"

    created = api.put(study + "/metadata/Sample", content="coucou")
    assert created.status_code == 200 and created.text == ""
    assert created.headers["etag"] == etag(0, "coucou")
    assert api.get(study + "/metadata/1024").text == "coucou"
    assert api.get(study + "/metadata").json() == ["LastUpdate", "Sample"]
    assert api.get(study + "/metadata?numeric").json() == [7, 1024]

    replaced = api.put(
        study + "/metadata/Sample", content="hello", headers={"If-Match": created.headers["etag"]}
    )
    assert replaced.headers["etag"] == etag(1, "hello")
    stale = api.put(
        study + "/metadata/Sample", content="late", headers={"If-Match": created.headers["etag"]}
    )
    assert stale.status_code == 409
    assert stale.json()["OrthancStatus"] == 43
    got = api.get(study + "/metadata/Sample")
    assert (got.text, got.headers["etag"]) == ("hello", etag(1, "hello"))
    assert (
        api.get(
            study + "/metadata/Sample", headers={"If-None-Match": etag(0, "coucou")}
        ).status_code
        == 200
    )
    not_modified = api.get(study + "/metadata/Sample", headers={"If-None-Match": etag(1, "hello")})
    assert not_modified.status_code == 304

    # A number in the user range needs no name; an unnamed number is listed as itself.
    assert api.put(study + "/metadata/5555", content="x").status_code == 200
    assert api.get(study + "/metadata?expand").json() == {
        "LastUpdate": api.get(study + "/metadata/LastUpdate").text,
        "Sample": "hello",
        "5555": "x",
    }
    assert api.delete(study + "/metadata/Sample", headers={"If-Match": '"0-x"'}).status_code == 409
    assert (
        api.delete(study + "/metadata/Sample", headers={"If-Match": etag(1, "hello")}).status_code
        == 200
    )
    assert api.delete(study + "/metadata/5555").status_code == 200
    assert api.get(study + "/metadata/Sample").status_code == 404

    changes = api.get("/changes").json()["Changes"]
    updated = [c for c in changes if c["ChangeType"] == "UpdatedMetadata"]
    assert len(updated) == 5
    assert {(c["ResourceType"], c["ID"]) for c in updated} == {("Study", ids["ParentStudy"])}


def test_check_revisions_requires_if_match_to_change(api_factory: Any) -> None:
    api = api_factory(UserMetadata={"Sample": 1024}, CheckRevisions=True)
    ids = upload(api, patient_id="P-CHECK")
    series = f"/series/{ids['ParentSeries']}/metadata/Sample"
    assert api.put(series, content="a").status_code == 200  # creating needs no If-Match
    again = api.put(series, content="b")
    assert again.status_code == 409
    assert "If-Match" in again.json()["Details"]
    deleted = api.delete(series)
    assert deleted.status_code == 409 and "If-Match" in deleted.json()["Details"]
    assert api.put(series, content="b", headers={"If-Match": etag(0, "a")}).status_code == 200
    assert api.delete(series, headers={"If-Match": etag(1, "b")}).status_code == 200


@pytest.mark.parametrize(
    ("metadata", "content_types"),
    [
        ({"Sample": 12}, {}),
        ({"Sample": 70000}, {}),
        ({"Sample": "1024"}, {}),
        ({"Sample": True}, {}),
        ({"1234": 1024}, {}),
        ({"Sample": 1024, "Twice": 1024}, {}),
        ({"LastUpdate": 1024}, {}),
        ({}, {"notes": [1025]}),
        ({}, {"notes": [1025, 3]}),
        ({}, {"notes": 3}),
        ({}, {"dicom": 1030}),
    ],
)
def test_bad_declarations_are_refused(
    metadata: dict[str, Any], content_types: dict[str, Any]
) -> None:
    with pytest.raises(AnnotationConfigError):
        AnnotationNames(metadata, content_types)


def test_declarations_give_names_and_mime_types() -> None:
    names = AnnotationNames({"Sample": 1024}, {"notes": [1025, "text/plain"], "raw": 1026})
    assert names.metadata_number("Sample") == 1024
    assert names.metadata_name(1024) == "Sample"
    assert names.metadata_name(4000) == "4000"
    assert names.content_type_number("notes") == 1025
    assert names.mime_type(1025) == "text/plain"
    assert names.mime_type(1026) == "application/octet-stream"
    assert names.mime_type(1) == "application/dicom"
