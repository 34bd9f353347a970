"""Browsing, navigation, statistics and deletion through the REST API."""

from __future__ import annotations

from typing import Any

from tests.dicomgen import make_dicom, make_series


def upload(api: Any, data: bytes) -> dict[str, Any]:
    response = api.post("/instances", content=data)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_lists_and_expand(api: Any) -> None:
    for data in make_series(3, patient_id="P-LIST"):
        upload(api, data)
    assert len(api.get("/patients").json()) == 1
    assert len(api.get("/studies").json()) == 1
    assert len(api.get("/series").json()) == 1
    instances = api.get("/instances").json()
    assert len(instances) == 3
    assert api.get("/instances", params={"since": 1, "limit": 1}).json() == instances[1:2]
    assert api.get("/instances", params={"limit": 2}).json() == instances[:2]
    expanded = api.get("/instances?expand").json()
    assert [item["ID"] for item in expanded] == instances
    assert all(item["Type"] == "Instance" for item in expanded)
    assert api.get("/instances", params={"limit": "x"}).status_code == 400


def test_resource_shapes_match_orthanc(api: Any) -> None:
    first = upload(api, make_dicom(patient_id="P-SHAPE", patient_name="Doe^Jane"))
    patient = api.get(f"/patients/{first['ParentPatient']}").json()
    assert patient["Type"] == "Patient"
    assert patient["MainDicomTags"]["PatientName"] == "Doe^Jane"
    assert patient["MainDicomTags"]["PatientID"] == "P-SHAPE"
    assert patient["Studies"] == [first["ParentStudy"]]
    assert patient["IsStable"] is False
    assert len(patient["LastUpdate"]) == 15

    study = api.get(f"/studies/{first['ParentStudy']}").json()
    assert study["ParentPatient"] == first["ParentPatient"]
    assert study["PatientMainDicomTags"]["PatientID"] == "P-SHAPE"
    assert study["MainDicomTags"]["StudyDescription"] == "Chest"
    assert study["MainDicomTags"]["AccessionNumber"] == "ACC1"
    assert study["Series"] == [first["ParentSeries"]]

    series = api.get(f"/series/{first['ParentSeries']}").json()
    assert series["MainDicomTags"]["Modality"] == "CT"
    assert series["MainDicomTags"]["ImageOrientationPatient"] == "1.0\\0.0\\0.0\\0.0\\1.0\\0.0"
    assert series["Status"] == "Unknown"
    assert series["ExpectedNumberOfInstances"] is None
    assert series["Instances"] == [first["ID"]]

    instance = api.get(f"/instances/{first['ID']}").json()
    assert instance["ParentSeries"] == first["ParentSeries"]
    assert instance["IndexInSeries"] == 1
    assert instance["FileSize"] > 0
    assert len(instance["FileUuid"]) == 36
    assert instance["MainDicomTags"]["InstanceNumber"] == "1"
    assert "IsStable" not in instance


def test_navigation_between_levels(api: Any) -> None:
    items = [upload(api, data) for data in make_series(2, patient_id="P-NAV")]
    patient, study, series = (items[0][k] for k in ("ParentPatient", "ParentStudy", "ParentSeries"))
    assert [s["ID"] for s in api.get(f"/patients/{patient}/studies").json()] == [study]
    assert [s["ID"] for s in api.get(f"/patients/{patient}/series").json()] == [series]
    assert len(api.get(f"/patients/{patient}/instances").json()) == 2
    assert len(api.get(f"/studies/{study}/instances").json()) == 2
    assert api.get(f"/series/{series}/instances?expand=false").json() == [i["ID"] for i in items]
    assert api.get(f"/instances/{items[0]['ID']}/patient").json()["ID"] == patient
    assert api.get(f"/instances/{items[0]['ID']}/study").json()["ID"] == study
    assert api.get(f"/instances/{items[0]['ID']}/series").json()["ID"] == series
    assert api.get(f"/series/{series}/study").json()["ID"] == study
    assert api.get(f"/studies/{study}/patient").json()["ID"] == patient


def test_unknown_and_wrong_level_ids_are_404(api: Any) -> None:
    item = upload(api, make_dicom())
    for path in (
        "/patients/00000000-00000000-00000000-00000000-00000000",
        f"/studies/{item['ID']}",  # an instance ID at the study level
        "/instances/not-an-id",
        "/instances/../../etc/passwd",
        f"/series/{item['ParentPatient']}/instances",
    ):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["HttpStatus"] == 404
    response = api.get("/no/such/route")
    assert response.status_code == 404
    assert response.json()["OrthancStatus"] == 17


def test_statistics(api: Any) -> None:
    items = [upload(api, data) for data in make_series(3)]
    stats = api.get("/statistics").json()
    assert stats["CountInstances"] == 3
    assert stats["CountSeries"] == stats["CountStudies"] == stats["CountPatients"] == 1
    total = sum(api.get(f"/instances/{i['ID']}").json()["FileSize"] for i in items)
    assert stats["TotalDiskSize"] == str(total)
    assert stats["TotalUncompressedSizeMB"] == 0
    study = api.get(f"/studies/{items[0]['ParentStudy']}/statistics").json()
    assert study["CountSeries"] == 1 and study["CountInstances"] == 3
    assert "CountStudies" not in study
    assert study["DicomDiskSize"] == str(total)
    patient = api.get(f"/patients/{items[0]['ParentPatient']}/statistics").json()
    assert patient["CountStudies"] == 1
    instance = api.get(f"/instances/{items[0]['ID']}/statistics").json()
    assert "CountInstances" not in instance


def test_delete_cascades_and_reports_the_remaining_ancestor(api: Any) -> None:
    a, b = (upload(api, data) for data in make_series(2))
    response = api.delete(f"/instances/{a['ID']}")
    assert response.status_code == 200
    assert response.json() == {
        "RemainingAncestor": {
            "ID": a["ParentSeries"],
            "Path": f"/series/{a['ParentSeries']}",
            "Type": "Series",
        }
    }
    assert api.get(f"/instances/{a['ID']}").status_code == 404
    assert api.delete(f"/instances/{a['ID']}").status_code == 404
    response = api.delete(f"/instances/{b['ID']}")
    assert response.json() == {"RemainingAncestor": None}
    assert api.get("/patients").json() == []
    assert api.stored_files() == []


def test_delete_patient_removes_all_files(api: Any) -> None:
    items = [upload(api, data) for data in make_series(4, patient_id="P-DEL")]
    upload(api, make_dicom(patient_id="P-KEEP"))
    assert api.delete(f"/patients/{items[0]['ParentPatient']}").status_code == 200
    assert len(api.get("/instances").json()) == 1
    assert len(api.stored_files()) == 1


def test_bulk_delete(api: Any) -> None:
    items = [upload(api, make_dicom()) for _ in range(3)]
    body = {
        "Resources": [
            items[0]["ID"],
            items[1]["ParentStudy"],
            "ffffffff-ffffffff-ffffffff-ffffffff-ffffffff",
        ]
    }
    assert api.post("/tools/bulk-delete", json=body).status_code == 200
    assert api.get("/instances").json() == [items[2]["ID"]]
    assert api.post("/tools/bulk-delete", content=b"nope").status_code == 400
    assert api.post("/tools/bulk-delete", json={"Resources": "x"}).status_code == 400
