"""Protection of patients against recycling through the REST API."""

from __future__ import annotations

from typing import Any

from tests.dicomgen import make_dicom


def test_protection_round_trip(api: Any) -> None:
    ids = api.post("/instances", content=make_dicom(patient_id="P-PROTECT")).json()
    url = f"/patients/{ids['ParentPatient']}/protected"
    assert api.get(url).text == "0"
    for body, expected in (("1", "1"), ("0", "0"), ("true", "1"), (" FALSE\n", "0"), ("1", "1")):
        response = api.put(url, content=body, headers={"Content-Type": "text/plain"})
        assert (response.status_code, response.text) == (200, ""), body
        assert api.get(url).text == expected
        assert api.get(url).headers["content-type"].startswith("text/plain")


def test_bad_protection_requests(api: Any) -> None:
    ids = api.post("/instances", content=make_dicom(patient_id="P-PROTECT-ERR")).json()
    url = f"/patients/{ids['ParentPatient']}/protected"
    for body in ("yes", "", "2", "x" * 1000):
        response = api.put(url, content=body)
        assert response.status_code == 400, body
        details = response.json()["Details"]
        assert '"1"' in details and '"0"' in details
        assert len(details) < 200
    assert api.get(url).text == "0"  # unchanged
    assert api.get("/patients/nope/protected").status_code == 404
    assert (
        api.put(
            "/patients/00000000-00000000-00000000-00000000-00000000/protected", content="1"
        ).status_code
        == 404
    )
    assert api.get(f"/studies/{ids['ParentStudy']}/protected").status_code == 404
    assert api.get(f"/patients/{ids['ParentStudy']}/protected").status_code == 404
