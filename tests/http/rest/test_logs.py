"""/changes and /exports."""

from __future__ import annotations

from typing import Any

from tests.dicomgen import make_dicom, make_series


def test_changes_follow_orthanc_format(api: Any) -> None:
    first = api.post("/instances", content=make_dicom()).json()
    log = api.get("/changes").json()
    assert log["Done"] is True
    assert log["Last"] == log["Changes"][-1]["Seq"]
    kinds = [c["ChangeType"] for c in log["Changes"]]
    assert kinds == ["NewInstance", "NewSeries", "NewStudy", "NewPatient"]
    change = log["Changes"][0]
    assert change["ID"] == first["ID"]
    assert change["Path"] == f"/instances/{first['ID']}"
    assert change["ResourceType"] == "Instance"
    assert len(change["Date"]) == 15


def test_changes_paging_and_last(api: Any) -> None:
    for data in make_series(3):
        api.post("/instances", content=data)
    page = api.get("/changes", params={"limit": 2}).json()
    assert len(page["Changes"]) == 2 and page["Done"] is False
    rest = api.get("/changes", params={"since": page["Last"], "limit": 100}).json()
    assert rest["Done"] is True
    seqs = [c["Seq"] for c in page["Changes"] + rest["Changes"]]
    assert seqs == sorted(set(seqs)) and len(seqs) == 6
    last = api.get("/changes?last").json()
    assert last["Changes"][0]["Seq"] == seqs[-1] and last["Last"] == seqs[-1]
    empty = api.get("/changes", params={"since": seqs[-1]}).json()
    assert empty == {"Changes": [], "Done": True, "Last": seqs[-1]}
    assert api.delete("/changes").status_code == 200
    assert api.get("/changes").json()["Changes"] == []


def test_deletion_is_logged(api: Any) -> None:
    item = api.post("/instances", content=make_dicom()).json()
    api.delete(f"/studies/{item['ParentStudy']}")
    kinds = [(c["ChangeType"], c["ResourceType"]) for c in api.get("/changes").json()["Changes"]]
    assert ("Deleted", "Study") in kinds and ("Deleted", "Patient") in kinds


def test_exports_log_is_empty_until_something_is_exported(api: Any) -> None:
    assert api.get("/exports").json() == {"Exports": [], "Done": True, "Last": 0}
    assert api.get("/exports?last").json() == {"Exports": [], "Done": True, "Last": 0}
    assert api.delete("/exports").status_code == 200


def test_resources_become_stable_after_stable_age(api_factory: Any) -> None:
    import time

    client = api_factory(StableAge=1)
    item = client.post("/instances", content=make_dicom()).json()
    assert client.get(f"/studies/{item['ParentStudy']}").json()["IsStable"] is False
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if client.get(f"/studies/{item['ParentStudy']}").json()["IsStable"]:
            break
        time.sleep(0.1)
    assert client.get(f"/studies/{item['ParentStudy']}").json()["IsStable"] is True
    assert client.get(f"/patients/{item['ParentPatient']}").json()["IsStable"] is True
    kinds = [c["ChangeType"] for c in client.get("/changes").json()["Changes"]]
    assert kinds[-3:] == ["StableSeries", "StableStudy", "StablePatient"]
