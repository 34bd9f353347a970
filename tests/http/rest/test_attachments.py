"""Attachments through the REST API: the DICOM file, user attachments, revisions, compression."""

from __future__ import annotations

import hashlib
from typing import Any

from pharos.storage.compression import uncompress
from tests.dicomgen import make_dicom

NOTES = {"notes": [1025, "text/plain"], "raw": 1026}


def upload(api: Any, data: bytes) -> dict[str, Any]:
    response = api.post("/instances", content=data)
    assert response.status_code == 200, response.text
    return dict(response.json())


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_the_dicom_file_is_attachment_dicom(api: Any) -> None:
    data = make_dicom(patient_id="P-ATT")
    ids = upload(api, data)
    base = f"/instances/{ids['ID']}/attachments"
    assert api.get(base).json() == ["dicom"]
    assert api.get(base + "?full").json() == {"dicom": 1}
    assert api.get(f"/patients/{ids['ParentPatient']}/attachments").json() == []
    assert api.get(base + "/dicom").json() == [
        "compress",
        "compressed-data",
        "compressed-md5",
        "compressed-size",
        "data",
        "info",
        "is-compressed",
        "md5",
        "size",
        "uncompress",
        "verify-md5",
    ]
    assert api.get(base + "/1/size").text == str(len(data))
    assert api.get(base + "/dicom/compressed-size").text == str(len(data))
    assert api.get(base + "/dicom/md5").text == md5(data)
    assert api.get(base + "/dicom/compressed-md5").text == md5(data)
    assert api.get(base + "/dicom/is-compressed").text == "0"
    info = api.get(base + "/dicom/info").json()
    assert info["ContentType"] == 1 and info["UncompressedSize"] == len(data)
    assert info["Uuid"] == api.get(f"/instances/{ids['ID']}").json()["FileUuid"]
    whole = api.get(base + "/dicom/data")
    assert whole.content == data
    assert whole.headers["content-type"] == "application/dicom"
    assert whole.headers["etag"] == f'"0-{md5(data)}"'
    assert api.get(base + "/dicom/compressed-data").content == data
    assert api.post(base + "/dicom/verify-md5").json() == {}
    assert (
        api.get(base + "/dicom/size", headers={"If-None-Match": whole.headers["etag"]}).status_code
        == 304
    )

    # The DICOM file is the server's: neither replaced nor deleted through this API.
    assert api.put(base + "/dicom", content=b"x").status_code == 403
    assert api.delete(base + "/dicom").status_code == 403
    assert api.get(f"/instances/{ids['ID']}/file").content == data

    # Errors: unknown name, absent attachment, unknown resource.
    assert api.get(base + "/nonsense/size").status_code == 404
    assert api.get(base + "/1025/size").status_code == 404
    assert api.get("/instances/nope/attachments/dicom/data").status_code == 404
    assert api.post(base + "/1025/verify-md5").status_code == 404


def test_byte_ranges(api: Any) -> None:
    data = make_dicom(patient_id="P-RANGE")
    ids = upload(api, data)
    url = f"/instances/{ids['ID']}/attachments/dicom/data"
    size = len(data)
    part = api.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == data[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{size}"
    assert api.get(url, headers={"Range": "bytes=100-"}).content == data[100:]
    assert api.get(url, headers={"Range": "bytes=-16"}).content == data[-16:]
    assert api.get(url, headers={"Range": f"bytes=0-{size + 50}"}).content == data
    refused = api.get(url, headers={"Range": f"bytes={size}-"})
    assert refused.status_code == 416
    assert refused.headers["content-range"] == f"bytes */{size}"
    assert refused.json()["OrthancStatus"] == 41  # BadRange
    # Several ranges, or nonsense: the whole content, as RFC 9110 allows.
    for header in ("bytes=0-1,5-6", "pages=1-2", "bytes=9-3"):
        whole = api.get(url, headers={"Range": header})
        assert (whole.status_code, whole.content) == (200, data), header


def test_user_attachment_lifecycle(api_factory: Any) -> None:
    api = api_factory(UserContentType=NOTES)
    ids = upload(api, make_dicom(patient_id="P-USER-ATT"))
    patient = f"/patients/{ids['ParentPatient']}"
    dicom_files = len(api.stored_files())
    size_before = int(api.get(patient + "/statistics").json()["DiskSize"])

    created = api.put(patient + "/attachments/notes", content=b"hello")
    assert created.status_code == 200 and created.json() == {}
    assert created.headers["etag"] == f'"0-{md5(b"hello")}"'
    got = api.get(patient + "/attachments/1025/data")
    assert (got.content, got.headers["content-type"]) == (b"hello", "text/plain")
    assert api.put(patient + "/attachments/raw", content=b"\x00\x01").status_code == 200
    assert api.put(patient + "/attachments/1500", content=b"unnamed").status_code == 200
    assert api.get(patient + "/attachments").json() == ["notes", "raw", "1500"]
    assert api.get(patient + "/attachments?full").json() == {
        "notes": 1025,
        "raw": 1026,
        "1500": 1500,
    }
    assert (
        api.get(patient + "/attachments/raw/data").headers["content-type"]
        == "application/octet-stream"
    )
    assert len(api.stored_files()) == dicom_files + 3
    stats = api.get(patient + "/statistics").json()
    assert int(stats["DiskSize"]) == size_before + 5 + 2 + 7
    assert int(api.get("/statistics").json()["TotalDiskSize"]) == int(stats["DiskSize"])

    # Replacing needs the current ETag when one is given; the old file goes.
    stale = api.put(patient + "/attachments/notes", content=b"x", headers={"If-Match": '"0-abc"'})
    assert stale.status_code == 409
    replaced = api.put(
        patient + "/attachments/notes",
        content=b"world",
        headers={"If-Match": created.headers["etag"]},
    )
    assert replaced.headers["etag"] == f'"1-{md5(b"world")}"'
    assert api.get(patient + "/attachments/notes/data").content == b"world"
    assert len(api.stored_files()) == dicom_files + 3

    assert (
        api.delete(
            patient + "/attachments/notes", headers={"If-Match": created.headers["etag"]}
        ).status_code
        == 409
    )
    assert (
        api.delete(
            patient + "/attachments/notes", headers={"If-Match": replaced.headers["etag"]}
        ).status_code
        == 200
    )
    assert api.delete(patient + "/attachments/notes").status_code == 404
    assert api.delete(patient + "/attachments/raw").status_code == 200
    assert api.get(patient + "/attachments").json() == ["1500"]
    assert len(api.stored_files()) == dicom_files + 1

    # System and unknown content types.
    assert api.put(patient + "/attachments/22", content=b"x").status_code == 403
    assert api.put(patient + "/attachments/unknown", content=b"x").status_code == 404
    changes = [
        c for c in api.get("/changes").json()["Changes"] if c["ChangeType"] == "UpdatedAttachment"
    ]
    assert len(changes) == 6 and {c["ID"] for c in changes} == {ids["ParentPatient"]}

    # Deleting the resource deletes its attachments' files too.
    assert api.delete(patient).status_code == 200
    assert api.stored_files() == []


def test_check_revisions_on_attachments(api_factory: Any) -> None:
    api = api_factory(UserContentType=NOTES, CheckRevisions=True)
    ids = upload(api, make_dicom(patient_id="P-ATT-REV"))
    url = f"/series/{ids['ParentSeries']}/attachments/notes"
    first = api.put(url, content=b"a")
    assert first.status_code == 200
    assert api.put(url, content=b"b").status_code == 409
    assert api.delete(url).status_code == 409
    second = api.put(url, content=b"b", headers={"If-Match": first.headers["etag"]})
    assert second.status_code == 200
    assert api.delete(url, headers={"If-Match": second.headers["etag"]}).status_code == 200


def test_compress_and_uncompress(api_factory: Any) -> None:
    api = api_factory(UserContentType=NOTES)
    data = make_dicom(patient_id="P-COMPRESS")
    ids = upload(api, data)
    notes = f"/studies/{ids['ParentStudy']}/attachments/notes"
    text = b"compressible " * 200
    api.put(notes, content=text)
    dicom = f"/instances/{ids['ID']}/attachments/dicom"
    for url, content in ((notes, text), (dicom, data)):
        assert api.post(url + "/compress").json() == {}
        assert api.get(url + "/is-compressed").text == "1"
        assert api.get(url + "/data").content == content
        stored = api.get(url + "/compressed-data").content
        assert uncompress(stored) == content
        assert int(api.get(url + "/compressed-size").text) == len(stored)
        assert api.get(url + "/compressed-md5").text == md5(stored)
        assert api.get(url + "/md5").text == md5(content)
        assert api.get(url + "/data").headers["etag"] == f'"1-{md5(content)}"'
        assert api.post(url + "/verify-md5").status_code == 200
        assert api.get(url + "/data", headers={"Range": "bytes=5-9"}).content == content[5:10]
        assert api.post(url + "/compress").status_code == 200  # already: nothing to do
        assert api.post(url + "/uncompress").status_code == 200
        assert api.get(url + "/is-compressed").text == "0"
        assert api.get(url + "/compressed-data").content == content
    assert api.get(f"/instances/{ids['ID']}/file").content == data
    assert api.get(f"/instances/{ids['ID']}/tags?simplify").json()["PatientID"] == "P-COMPRESS"
    assert len(api.stored_files()) == 2  # the replaced files are gone


def test_storage_compression_applies_to_user_attachments(api_factory: Any) -> None:
    api = api_factory(UserContentType=NOTES, StorageCompression=True)
    ids = upload(api, make_dicom(patient_id="P-STORE-COMPRESSED"))
    url = f"/patients/{ids['ParentPatient']}/attachments/notes"
    text = b"a" * 5000
    api.put(url, content=text)
    assert api.get(url + "/is-compressed").text == "1"
    assert int(api.get(url + "/compressed-size").text) < len(text)
    assert api.get(url + "/data").content == text
    assert api.get(url + "/data", headers={"Range": "bytes=-10"}).content == text[-10:]


def test_corruption_is_detected(api_factory: Any) -> None:
    api = api_factory(UserContentType=NOTES)
    ids = upload(api, make_dicom(patient_id="P-CORRUPT"))
    url = f"/patients/{ids['ParentPatient']}/attachments/notes"
    api.put(url, content=b"precious")
    uuid = api.get(url + "/info").json()["Uuid"]
    (path,) = [p for p in api.stored_files() if p.name == uuid]
    path.write_bytes(b"damaged!")
    corrupted = api.post(url + "/verify-md5")
    assert corrupted.status_code == 500
    assert corrupted.json()["OrthancStatus"] == 20  # CorruptedFile
    assert api.post(url + "/compress").json()["OrthancStatus"] == 20
    assert api.get(url + "/info").json()["Uuid"] == uuid  # nothing was rewritten


def test_attachments_without_md5(api_factory: Any) -> None:
    api = api_factory(UserContentType=NOTES, StoreMD5ForAttachments=False)
    ids = upload(api, make_dicom(patient_id="P-NO-MD5"))
    url = f"/patients/{ids['ParentPatient']}/attachments/notes"
    created = api.put(url, content=b"x")
    assert created.headers["etag"] == f'"0-{md5(b"x")}"'  # the ETag hashes the body anyway
    assert "md5" not in api.get(url).json()
    assert api.get(url + "/md5").status_code == 404
    assert api.post(url + "/verify-md5").status_code == 400
    assert api.get(url + "/data").headers["etag"] == '"0-"'
    assert api.put(url, content=b"y", headers={"If-Match": '"0-"'}).status_code == 200
