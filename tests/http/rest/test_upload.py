"""POST /instances: single files, zips, bad input, durability of what is acknowledged."""

from __future__ import annotations

import gzip
import io
import zipfile
from typing import Any

from pharos.model.ids import ResourceIds
from tests.dicomgen import make_dataset, make_dicom, to_bytes


def test_upload_answers_like_orthanc(api: Any) -> None:
    ds = make_dataset(
        patient_id="P-UP", study_uid="1.2.3", series_uid="1.2.3.4", sop_uid="1.2.3.4.5"
    )
    response = api.post("/instances", content=to_bytes(ds))
    assert response.status_code == 200
    ids = ResourceIds.compute("P-UP", "1.2.3", "1.2.3.4", "1.2.3.4.5")
    assert response.json() == {
        "ID": ids.instance,
        "ParentPatient": ids.patient,
        "ParentSeries": ids.series,
        "ParentStudy": ids.study,
        "Path": f"/instances/{ids.instance}",
        "Status": "Success",
    }
    again = api.post("/instances", content=to_bytes(ds))
    assert again.json()["Status"] == "AlreadyStored"


def test_stored_file_is_byte_identical(api: Any) -> None:
    data = make_dicom(rows=64, columns=64)
    instance = api.post("/instances", content=data).json()["ID"]
    response = api.get(f"/instances/{instance}/file")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/dicom"
    assert response.content == data


def test_gzip_encoded_upload(api: Any) -> None:
    data = make_dicom()
    response = api.post(
        "/instances", content=gzip.compress(data), headers={"Content-Encoding": "gzip"}
    )
    assert response.json()["Status"] == "Success"
    assert api.get(f"/instances/{response.json()['ID']}/file").content == data


def test_zip_upload_reports_each_file(api: Any) -> None:
    good = [make_dicom(), make_dicom()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a/1.dcm", good[0])
        archive.writestr("a/2.dcm", good[1])
        archive.writestr("notes.txt", b"not dicom at all")
        archive.writestr("DICOMDIR", b"ignored")
        archive.writestr("empty/", b"")
    response = api.post("/instances", content=buffer.getvalue())
    assert response.status_code == 200
    answer = response.json()
    assert [item["Status"] for item in answer] == ["Success", "Success", "Failure"]
    assert answer[2]["Filename"] == "notes.txt"
    assert "DICM" in answer[2]["Details"] or "DICOM" in answer[2]["Details"]
    assert len(api.get("/instances").json()) == 2


def _assert_refused(api: Any, body: bytes, fragment: str) -> None:
    response = api.post("/instances", content=body)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["HttpStatus"] == 400
    assert error["OrthancStatus"] == 15
    assert error["OrthancError"] == "Bad file format"
    assert error["Method"] == "POST"
    assert error["Uri"] == "/instances"
    assert fragment.lower() in error["Details"].lower(), error["Details"]
    assert api.get("/instances").json() == []
    assert api.get("/changes").json()["Changes"] == []


def test_bad_input_is_refused_and_stores_nothing(api: Any) -> None:
    _assert_refused(api, b"", "empty")
    _assert_refused(api, b"hello world" * 20, "DICOM")
    _assert_refused(api, b"PK\x03\x04 but not a zip", "zip")
    data = make_dicom(rows=32, columns=32)
    _assert_refused(api, data[: len(data) - 100], "truncated")
    _assert_refused(api, data[:400], "")
    no_uid = make_dataset()
    del no_uid.SeriesInstanceUID
    _assert_refused(api, to_bytes(no_uid), "SeriesInstanceUID")
    assert api.stored_files() == []


def test_overwrite_instances_replaces_the_file(api_factory: Any) -> None:
    client = api_factory(OverwriteInstances=True)
    ds = make_dataset(sop_uid="1.2.3.9", StudyDescription="first")
    first = client.post("/instances", content=to_bytes(ds)).json()
    ds.StudyDescription = "second"
    second = client.post("/instances", content=to_bytes(ds)).json()
    assert first["ID"] == second["ID"]
    assert second["Status"] == "Success"
    assert client.get(f"/instances/{first['ID']}/file").content == to_bytes(ds)
    assert len(client.stored_files()) == 1


def test_storage_compression_is_transparent(api_factory: Any) -> None:
    client = api_factory(StorageCompression=True)
    data = make_dicom(rows=64, columns=64)
    instance = client.post("/instances", content=data).json()["ID"]
    assert client.get(f"/instances/{instance}/file").content == data
    stats = client.get(f"/instances/{instance}/statistics").json()
    assert int(stats["DiskSize"]) < int(stats["UncompressedSize"]) == len(data)
    assert client.stored_files()[0].stat().st_size == int(stats["DiskSize"])


def test_zip_member_claiming_a_huge_size_is_refused(api: Any) -> None:
    import struct

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ok.dcm", make_dicom())
        archive.writestr("bomb.dcm", b"tiny")
    data = bytearray(buffer.getvalue())
    # Forge the central directory's uncompressed size of the second member (3 GiB).
    central = data.rfind(b"PK\x01\x02")
    struct.pack_into("<I", data, central + 24, 3 << 30)
    answer = api.post("/instances", content=bytes(data)).json()
    assert [item["Status"] for item in answer] == ["Success", "Failure"]
    assert "bytes" in answer[1]["Details"]
