"""Tags, header, content, frames, modules, shared-tags and instances-tags."""

from __future__ import annotations

from typing import Any

from tests.dicomgen import make_dataset, make_series, to_bytes


def upload(api: Any, data: bytes) -> dict[str, Any]:
    response = api.post("/instances", content=data)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_tags_in_the_three_formats(api: Any) -> None:
    item = upload(api, to_bytes(make_dataset(patient_name="Doe^Jane")))
    full = api.get(f"/instances/{item['ID']}/tags").json()
    assert full["0010,0010"] == {"Name": "PatientName", "Type": "String", "Value": "Doe^Jane"}
    assert full["7fe0,0010"]["Type"] == "Null"
    assert api.get(f"/instances/{item['ID']}/tags?short").json()["0010,0010"] == "Doe^Jane"
    simplified = api.get(f"/instances/{item['ID']}/tags?simplify").json()
    assert simplified["PatientName"] == "Doe^Jane"
    assert api.get(f"/instances/{item['ID']}/simplified-tags").json() == simplified


def test_too_long_values_and_ignore_length(api: Any) -> None:
    item = upload(api, to_bytes(make_dataset(ImageComments="x" * 300)))
    tags = api.get(f"/instances/{item['ID']}/tags").json()
    assert tags["0020,4000"]["Type"] == "TooLong"
    lifted = api.get(f"/instances/{item['ID']}/tags", params={"ignore-length": "0020,4000"}).json()
    assert lifted["0020,4000"]["Value"] == "x" * 300


def test_header(api: Any) -> None:
    item = upload(api, to_bytes(make_dataset()))
    header = api.get(f"/instances/{item['ID']}/header?simplify").json()
    assert header["TransferSyntaxUID"] == "1.2.840.10008.1.2.1"
    assert header["MediaStorageSOPClassUID"] == "1.2.840.10008.5.1.4.1.1.2"


def test_content_navigation(api: Any) -> None:
    ds = make_dataset()
    from pydicom.dataset import Dataset

    ref = Dataset()
    ref.ReferencedSOPInstanceUID = "1.2.3.4"
    ds.ReferencedImageSequence = [ref]
    item = upload(api, to_bytes(ds))
    root = api.get(f"/instances/{item['ID']}/content").json()
    assert "0010-0010" in root and "0008-1140" in root
    assert api.get(f"/instances/{item['ID']}/content/0010-0010").content == b"Doe^John"
    assert api.get(f"/instances/{item['ID']}/content/0008-1140").json() == ["0"]
    assert api.get(f"/instances/{item['ID']}/content/0008-1140/0").json() == ["0008-1155"]
    value = api.get(f"/instances/{item['ID']}/content/0008-1140/0/0008-1155").content
    assert value.rstrip(b"\x00") == b"1.2.3.4"
    assert api.get(f"/instances/{item['ID']}/content/0008-1140/5").status_code == 404
    assert api.get(f"/instances/{item['ID']}/content/0099-0099").status_code == 404
    assert api.get(f"/instances/{item['ID']}/content/not-a-tag").status_code == 404


def test_frames(api: Any) -> None:
    item = upload(api, to_bytes(make_dataset()))
    assert api.get(f"/instances/{item['ID']}/frames").json() == [0]


def test_modules_shared_tags_and_instances_tags(api: Any) -> None:
    items = [upload(api, data) for data in make_series(3, patient_id="P-MOD")]
    study, series = items[0]["ParentStudy"], items[0]["ParentSeries"]
    module = api.get(f"/studies/{study}/module?simplify").json()
    assert module["StudyDescription"] == "Chest"
    assert "PatientName" not in module
    assert api.get(f"/studies/{study}/module-patient?simplify").json()["PatientID"] == "P-MOD"
    assert api.get(f"/series/{series}/module?short").json()["0008,0060"] == "CT"
    shared = api.get(f"/series/{series}/shared-tags?simplify").json()
    assert shared["SeriesInstanceUID"] and "SOPInstanceUID" not in shared
    assert "InstanceNumber" not in shared
    per_instance = api.get(f"/series/{series}/instances-tags?simplify").json()
    assert set(per_instance) == {i["ID"] for i in items}
    assert {t["InstanceNumber"] for t in per_instance.values()} == {"1", "2", "3"}
