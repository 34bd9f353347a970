"""Archives and media end to end on real server processes (SQLite and PostgreSQL): ZIPs that
unzip to the files `/instances/{id}/file` serves, DICOMDIRs read by pydicom and dcmdump,
asynchronous archive jobs and their download, and the errors."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.fileset import FileSet
from pydicom.uid import ImplicitVRLittleEndian

from tests.conftest import Api
from tests.dicomgen import make_dicom, make_series
from tests.jobs.fakes import wait_for


def upload(api: Api, files: list[bytes]) -> list[dict[str, Any]]:
    answers = []
    for data in files:
        response = api.post("/instances", content=data)
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def unzip(response: Any) -> zipfile.ZipFile:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    return zipfile.ZipFile(io.BytesIO(response.content))


def stored(api: Api, instance_id: str) -> bytes:
    return api.get(f"/instances/{instance_id}/file").content


def test_resource_archives_unzip_to_the_stored_files(api: Api) -> None:
    answers = upload(api, make_series(3, patient_id="P 1", patient_name="Doe^Ann"))
    study = answers[0]["ParentStudy"]
    response = api.get(f"/studies/{study}/archive")
    archive = unzip(response)
    assert response.headers["content-disposition"] == f'attachment; filename="{study}.zip"'
    names = archive.namelist()
    assert names == [f"P 1 Doe Ann/ACC1 Chest/CT Axial/CT{n:06d}.dcm" for n in range(3)]
    assert [archive.read(n) for n in names] == [stored(api, a["ID"]) for a in answers]
    # The same by POST, at the patient and series levels, with a file name.
    patient = answers[0]["ParentPatient"]
    response = api.post(f"/patients/{patient}/archive", json={"Filename": "mine"})
    assert unzip(response).namelist() == names
    assert response.headers["content-disposition"] == 'attachment; filename="mine.zip"'
    series = answers[0]["ParentSeries"]
    response = api.get(f"/series/{series}/archive", params={"filename": "s.zip"})
    assert unzip(response).namelist() == names
    assert response.headers["content-disposition"] == 'attachment; filename="s.zip"'
    # Transcoded on request.
    response = api.get(f"/series/{series}/archive", params={"transcode": ImplicitVRLittleEndian})
    for name in names:
        dataset = pydicom.dcmread(io.BytesIO(unzip(response).read(name)))
        assert dataset.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian


def test_media_dicomdir_is_read_by_pydicom_and_dcmdump(api: Api, tmp_path: Path) -> None:
    answers = upload(api, [*make_series(2), make_dicom(patient_id="Other")])
    ids = [a["ID"] for a in answers]
    response = api.post(
        "/tools/create-media-extended",
        json={"Resources": [answers[0]["ParentSeries"], ids[2]]},
    )
    archive = unzip(response)
    assert sorted(archive.namelist()) == ["DICOMDIR", "IMAGES/IM0", "IMAGES/IM1", "IMAGES/IM2"]
    archive.extractall(tmp_path)
    file_set = FileSet(tmp_path / "DICOMDIR")
    by_uid = {i.SOPInstanceUID: Path(i.path).read_bytes() for i in file_set}
    for instance in ids:
        uid = api.get(f"/instances/{instance}/simplified-tags").json()["SOPInstanceUID"]
        assert by_uid[uid] == stored(api, instance)
    records = pydicom.dcmread(tmp_path / "DICOMDIR").DirectoryRecordSequence
    series = [r for r in records if r.DirectoryRecordType == "SERIES"]
    assert len(series) == 2 and all("SeriesDescription" in r for r in series)  # extended
    if shutil.which("dcmdump"):
        result = subprocess.run(
            ["dcmdump", str(tmp_path / "DICOMDIR")], capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0 and "E:" not in result.stderr, result.stderr
        assert 'refFileID="IMAGES\\IM2"' in result.stdout
    # GET /{level}/{id}/media: the same layout, one patient.
    response = api.get(f"/patients/{answers[0]['ParentPatient']}/media")
    assert sorted(unzip(response).namelist()) == ["DICOMDIR", "IMAGES/IM0", "IMAGES/IM1"]


def wait_success(api: Api, job_id: str) -> dict[str, Any]:
    def done() -> bool:
        return api.get(f"/jobs/{job_id}").json()["State"] in ("Success", "Failure")

    wait_for(done, timeout=60)
    job = api.get(f"/jobs/{job_id}").json()
    assert job["State"] == "Success", job
    return job


def test_asynchronous_archive_job_then_download(api: Api) -> None:
    answers = upload(api, make_series(2))
    ids = [a["ID"] for a in answers]
    response = api.post(
        "/tools/create-archive", json={"Resources": ids, "Synchronous": False, "Priority": 2}
    )
    assert response.status_code == 200, response.text
    job = wait_success(api, response.json()["ID"])
    assert job["Type"] == "Archive" and job["Priority"] == 2
    assert job["Content"]["InstancesCount"] == 2
    download = api.get(f"/jobs/{job['ID']}/archive")
    archive = unzip(download)
    assert download.headers["content-length"] == job["Content"]["ArchiveSize"]
    assert [archive.read(n) for n in archive.namelist()] == [stored(api, i) for i in ids]
    # A media job (Orthanc's type "Media"), from a resource route.
    series = answers[0]["ParentSeries"]
    response = api.post(f"/series/{series}/media", json={"Asynchronous": True})
    media = wait_success(api, response.json()["ID"])
    assert media["Type"] == "Media"
    assert "DICOMDIR" in unzip(api.get(f"/jobs/{media['ID']}/archive")).namelist()
    # MediaArchiveSize is 1 (Orthanc's default): the first archive is gone now.
    assert api.get(f"/jobs/{job['ID']}/archive").status_code == 404
    assert api.get(f"/jobs/{media['ID']}/other").status_code == 404


def test_errors_are_clean_4xx(api: Api) -> None:
    answers = upload(api, [make_dicom()])
    study, instance = answers[0]["ParentStudy"], answers[0]["ID"]
    unknown = "01234567-01234567-01234567-01234567-01234567"
    for path in (f"/studies/{unknown}/archive", f"/series/{study}/media"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["HttpStatus"] == 404
    cases = [
        ("/tools/create-archive", b"not json", 400),
        ("/tools/create-archive", b"{}", 400),
        ("/tools/create-archive", b'{"Resources": "x"}', 400),
        (
            "/tools/create-media",
            b'{"Resources": ["%s"], "Synchronous": 1}' % instance.encode(),
            400,
        ),
        ("/tools/create-archive", b'{"Resources": ["%s"]}' % unknown.encode(), 404),
        (
            "/tools/create-archive",
            b'{"Resources": ["%s"], "Transcode": "9.9"}' % instance.encode(),
            400,
        ),
        (f"/studies/{study}/archive", b"[1]", 400),
    ]
    for path, body, status in cases:
        response = api.post(path, content=body)
        assert response.status_code == status, (path, body, response.text)
        assert response.json()["HttpStatus"] == status
    response = api.get(f"/studies/{study}/archive", params={"transcode": "nonsense"})
    assert response.status_code == 400
    response = api.post(
        "/tools/create-archive",
        json={"Resources": [unknown], "Synchronous": False},
    )
    assert response.status_code == 404
    assert api.get("/jobs").json() == []  # nothing was submitted


@pytest.mark.parametrize("storage_compression", [True])
def test_archives_of_compressed_storage(api_factory: Any, storage_compression: bool) -> None:
    api = api_factory(StorageCompression=storage_compression)
    answers = upload(api, make_series(2))
    archive = unzip(api.get(f"/studies/{answers[0]['ParentStudy']}/archive"))
    assert [archive.read(n) for n in archive.namelist()] == [stored(api, a["ID"]) for a in answers]


def test_archive_leaves_the_disk_with_its_job(api_factory: Any, tmp_path: Path) -> None:
    """JobsHistorySize drops a finished archive job and its ZIP file, even when
    MediaArchiveSize would still keep it."""
    api = api_factory(JobsHistorySize=1, MediaArchiveSize=5, TemporaryDirectory=str(tmp_path))
    instance = upload(api, [make_dicom()])[0]["ID"]
    body = {"Resources": [instance], "Synchronous": False}
    first = wait_success(api, api.post("/tools/create-archive", json=body).json()["ID"])
    assert unzip(api.get(f"/jobs/{first['ID']}/archive")).namelist()
    assert len(list(tmp_path.glob("pharos-archives-*/*.zip"))) == 1
    second = wait_success(api, api.post("/tools/create-archive", json=body).json()["ID"])
    assert api.get("/jobs").json() == [second["ID"]]
    assert api.get(f"/jobs/{first['ID']}/archive").status_code == 404
    assert len(list(tmp_path.glob("pharos-archives-*/*.zip"))) == 1
    assert unzip(api.get(f"/jobs/{second['ID']}/archive")).namelist()
