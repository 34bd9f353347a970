"""Labels (Orthanc 1.12) through the REST API."""

from __future__ import annotations

from typing import Any

from tests.dicomgen import make_dicom


def upload(api: Any, **kwargs: Any) -> dict[str, Any]:
    response = api.post("/instances", content=make_dicom(**kwargs))
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_labels_lifecycle(api: Any) -> None:
    ids = upload(api, patient_id="P-LABELS")
    study = f"/studies/{ids['ParentStudy']}"
    assert api.get(study + "/labels").json() == []
    assert api.get(study).json()["Labels"] == []
    for label in ("teaching", "AI_cohort-2", "teaching"):
        response = api.put(study + f"/labels/{label}")
        assert (response.status_code, response.text) == (200, "")
    assert api.put(f"/instances/{ids['ID']}/labels/reviewed").status_code == 200
    assert api.get(study + "/labels").json() == ["AI_cohort-2", "teaching"]
    assert api.get(study + "/labels/teaching").status_code == 200
    assert api.get(study + "/labels/absent").status_code == 404

    # "Labels" in the resources' JSON, one by one and in expanded lists.
    assert api.get(study).json()["Labels"] == ["AI_cohort-2", "teaching"]
    assert [s["Labels"] for s in api.get("/studies?expand").json()] == [["AI_cohort-2", "teaching"]]
    assert api.get(f"/series/{ids['ParentSeries']}/instances").json()[0]["Labels"] == ["reviewed"]
    assert api.get(f"/patients/{ids['ParentPatient']}").json()["Labels"] == []
    assert api.get("/tools/labels").json() == ["AI_cohort-2", "reviewed", "teaching"]

    assert api.delete(study + "/labels/teaching").status_code == 200
    assert api.delete(study + "/labels/teaching").status_code == 200  # absent: nothing to do
    assert api.get(study + "/labels").json() == ["AI_cohort-2"]
    assert api.get("/tools/labels").json() == ["AI_cohort-2", "reviewed"]
    assert api.get("/system").json()["Capabilities"]["HasLabels"] is True

    api.delete(f"/patients/{ids['ParentPatient']}")
    assert api.get("/tools/labels").json() == []


def test_label_errors(api: Any) -> None:
    ids = upload(api, patient_id="P-LABEL-ERR")
    series = f"/series/{ids['ParentSeries']}"
    for bad in ("with space", "x" * 65, "caf%C3%A9", "a.b", "semi;colon"):
        response = api.put(series + f"/labels/{bad}")
        assert response.status_code == 400, bad
        assert "label" in response.json()["Details"]
    assert api.put(series + "/labels/" + "x" * 64).status_code == 200
    assert api.delete(series + "/labels/bad label").status_code == 400
    # Unknown resources and wrong levels.
    assert api.put(f"/studies/{ids['ParentSeries']}/labels/ok").status_code == 404
    assert api.get("/patients/nope/labels").status_code == 404
    assert api.delete("/instances/nope/labels/ok").status_code == 404
    assert api.get("/tools/labels").json() == ["x" * 64]
