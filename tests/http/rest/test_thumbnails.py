"""Thumbnails on a real server: generated once and cached as an internal attachment (on both
index backends), safe under concurrent first requests (also from two processes sharing
PostgreSQL), dropped with the instance or when it is overwritten."""

from __future__ import annotations

import io
import threading
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from tests.conftest import Api, PostgresDatabases, ServerProcess
from tests.dicomgen import make_dicom

PDF_BODY = {
    "Tags": {"PatientID": "THUMB", "SeriesNumber": "1"},
    "Content": "data:application/pdf;base64,JVBERi0xLjQKJSVFT0YK",  # "%PDF-1.4\n%%EOF\n"
}


def upload(client: Any, data: bytes) -> dict[str, Any]:
    response = client.post("/instances", content=data)
    assert response.status_code == 200, response.text
    return dict(response.json())


def thumbnail(client: Any, path: str) -> bytes:
    response = client.get(f"{path}/thumbnail")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    return bytes(response.content)


def pixels(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)))


def smooth_ct(rows: int, columns: int) -> bytes:
    """A CT whose pixels vary slowly (JPEG keeps them close), -1024 to about 1000 HU."""
    ramp = np.add.outer(np.arange(rows) * 4, np.arange(columns) * 2).astype(np.int16)
    return make_dicom(rows=rows, columns=columns, PixelData=ramp.tobytes())


def test_generated_once_then_cached(api: Api) -> None:
    stored = upload(api, smooth_ct(256, 512))
    path = f"/instances/{stored['ID']}"
    assert len(api.stored_files()) == 1

    first = thumbnail(api, path)
    image = pixels(first)
    assert image.shape == (64, 128)  # longest side 128, aspect ratio kept
    assert len(api.stored_files()) == 2  # the cached thumbnail
    assert thumbnail(api, path) == first
    assert len(api.stored_files()) == 2

    # The file's window, as /rendered shows it at that size.
    rendered = api.get(f"{path}/rendered", params={"width": 128, "height": 128, "smooth": 1})
    reference = np.asarray(Image.open(io.BytesIO(rendered.content))).astype(int)
    assert np.abs(image.astype(int) - reference).mean() < 2

    # Not an Orthanc attachment: not listed, not readable as one.
    assert api.get(f"{path}/attachments").json() == ["dicom"]
    assert api.get(f"{path}/attachments/900/data").status_code == 404
    assert api.delete(f"{path}/attachments/900").status_code == 403

    # Deleting the instance deletes its thumbnail.
    assert api.delete(path).status_code == 200
    assert api.stored_files() == []
    assert api.get(f"{path}/thumbnail").status_code == 404


def test_concurrent_first_requests(api: Api) -> None:
    stored = upload(api, make_dicom(rows=512, columns=512, seed=5))
    path = f"/instances/{stored['ID']}/thumbnail"
    answers: list[httpx.Response] = []

    def fetch() -> None:
        with httpx.Client(base_url=str(api.base_url), timeout=60) as client:
            answers.append(client.get(path))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 8
    assert len({a.content for a in answers}) == 1
    assert len(api.stored_files()) == 2  # one DICOM file, one thumbnail


def test_overwritten_instance_gets_a_new_thumbnail(api_factory: Any) -> None:
    api = api_factory(OverwriteInstances=True)
    uids = {"study_uid": generate_uid(), "series_uid": generate_uid(), "sop_uid": generate_uid()}
    stored = upload(api, make_dicom(seed=1, **uids))
    path = f"/instances/{stored['ID']}"
    before = thumbnail(api, path)
    assert len(api.stored_files()) == 2

    again = upload(api, make_dicom(seed=2, WindowCenter=1000, **uids))
    assert again["ID"] == stored["ID"]
    assert len(api.stored_files()) == 1  # the old file and its thumbnail are gone
    after = thumbnail(api, path)
    assert after != before
    assert len(api.stored_files()) == 2


def test_series_and_study_thumbnails(api: Api) -> None:
    study_uid, series_uid = generate_uid(), generate_uid()
    numbers = (3, 1, 2)  # arrival order differs from the instance numbers
    uploaded = {
        n: upload(
            api,
            make_dicom(
                patient_id="THUMB",
                study_uid=study_uid,
                series_uid=series_uid,
                instance_number=n,
                seed=n,
                SeriesNumber=2,
            ),
        )
        for n in numbers
    }
    ids = list(uploaded.values())
    middle = uploaded[2]["ID"]
    series_id = ids[0]["ParentSeries"]
    assert thumbnail(api, f"/series/{series_id}") == thumbnail(api, f"/instances/{middle}")
    assert thumbnail(api, f"/instances/{uploaded[1]['ID']}") != thumbnail(
        api, f"/instances/{middle}"
    )

    # The study shows its first series that has an image: here series 2, after a PDF series 1.
    pdf = api.post("/tools/create-dicom", json={**PDF_BODY, "Parent": ids[0]["ParentStudy"]}).json()
    assert api.get(f"/instances/{pdf['ID']}/thumbnail").status_code == 415
    study = thumbnail(api, f"/studies/{ids[0]['ParentStudy']}")
    assert study == thumbnail(api, f"/instances/{middle}")
    assert api.get(f"/series/{pdf['ParentSeries']}/thumbnail").status_code == 415

    unknown = "00000000-00000000-00000000-00000000-00000000"
    for level in ("instances", "series", "studies"):
        assert api.get(f"/{level}/{unknown}/thumbnail").status_code == 404


def test_small_images_are_not_enlarged(api: Api) -> None:
    stored = upload(api, make_dicom(rows=16, columns=24))
    assert pixels(thumbnail(api, f"/instances/{stored['ID']}")).shape == (16, 24)


@pytest.mark.postgres
def test_two_processes_cache_one_thumbnail(
    postgres_databases: PostgresDatabases, tmp_path: Path
) -> None:
    config: dict[str, Any] = {
        "PostgreSQL": postgres_databases.create(),
        "StorageDirectory": str(tmp_path / "shared-storage"),
    }
    servers = [ServerProcess(tmp_path, config).start() for _ in range(2)]
    try:
        with httpx.Client(base_url=servers[0].url, timeout=60) as client:
            stored = upload(client, make_dicom(rows=512, columns=512, seed=7))
        answers: list[httpx.Response] = []

        def fetch(url: str) -> None:
            with httpx.Client(base_url=url, timeout=60) as client:
                answers.append(client.get(f"/instances/{stored['ID']}/thumbnail"))

        threads = [threading.Thread(target=fetch, args=(s.url,)) for s in servers for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [a.status_code for a in answers] == [200] * 8
        assert len({a.content for a in answers}) == 1
        files = [p for p in (tmp_path / "shared-storage").glob("??/??/*") if len(p.name) == 36]
        assert len(files) == 2
    finally:
        for server in servers:
            server.stop()
