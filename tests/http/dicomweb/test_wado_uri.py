"""WADO-URI on a real server (SQLite): each content type, the rendering parameters, the UID
checks and the refused requests (PS3.18 9)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pydicom
import pytest
from PIL import Image
from pydicom.uid import ExplicitVRLittleEndian, JPEGLSLossless

from tests.dicomgen import make_dataset, to_bytes
from tests.http.dicomweb.conftest import Site, shared_site

STUDY = "1.2.826.4.1"
SERIES = STUDY + ".1"
SOP = STUDY + ".1.1"
MULTI = STUDY + ".1.2"
UIDS = f"studyUID={STUDY}&seriesUID={SERIES}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    config = {"DicomWeb": {"WadoRoot": "/wado-uri/"}}
    for found in shared_site(tmp_path_factory.mktemp("wado-uri"), config):
        single = make_dataset(study_uid=STUDY, series_uid=SERIES, sop_uid=SOP, rows=32, columns=24)
        found.files = {SOP: to_bytes(single)}  # type: ignore[attr-defined]
        found.upload(found.files[SOP])  # type: ignore[attr-defined]
        multi = make_dataset(study_uid=STUDY, series_uid=SERIES, sop_uid=MULTI, instance_number=2)
        multi.NumberOfFrames = 2
        multi.PixelData = bytes(multi.PixelData) + bytes(512)  # frame 2: all zeros
        found.upload(to_bytes(multi))
        yield found


def wado(site: Site, query: str, sop: str = SOP) -> tuple[int, str, bytes]:
    response = site.api.get(f"/wado-uri?requestType=WADO&{UIDS}&objectUID={sop}&{query}")
    return response.status_code, response.headers.get("content-type", ""), response.content


def test_dicom_file_as_stored_and_transcoded(site: Site) -> None:
    status, kind, body = wado(site, "contentType=application/dicom")
    assert (status, kind) == (200, "application/dicom")
    assert body == site.files[SOP]  # type: ignore[attr-defined]
    status, _, body = wado(site, f"contentType=application/dicom&transferSyntax={JPEGLSLossless}")
    assert status == 200
    converted = pydicom.dcmread(io.BytesIO(body))
    assert converted.file_meta.TransferSyntaxUID == JPEGLSLossless
    assert converted.SOPInstanceUID == SOP
    status, _, _ = wado(
        site, f"contentType=application/dicom&transferSyntax={ExplicitVRLittleEndian}"
    )
    assert status == 200
    assert wado(site, "contentType=application/dicom&transferSyntax=1.2.3.4")[0] == 400


@pytest.mark.parametrize(
    ("content_type", "expected_type", "fmt"),
    [
        ("", "image/jpeg", "JPEG"),
        ("contentType=image/jpeg", "image/jpeg", "JPEG"),
        ("contentType=image/png", "image/png", "PNG"),
        ("contentType=image/gif", "image/gif", "GIF"),
        ("contentType=image/webp,image/png", "image/png", "PNG"),
        ("contentType=*/*", "image/jpeg", "JPEG"),
    ],
)
def test_rendered_content_types(
    site: Site, content_type: str, expected_type: str, fmt: str
) -> None:
    status, kind, body = wado(site, content_type)
    assert (status, kind) == (200, expected_type)
    image = Image.open(io.BytesIO(body))
    assert image.format == fmt and image.size == (24, 32)


def test_frame_size_window_and_quality(site: Site) -> None:
    status, _, body = wado(site, "contentType=image/png&frameNumber=2", MULTI)
    assert status == 200
    assert Image.open(io.BytesIO(body)).getextrema() == (0, 0)  # the frame of zeros
    _, _, first = wado(site, "contentType=image/png&frameNumber=1", MULTI)
    assert Image.open(io.BytesIO(first)).getextrema() != (0, 0)
    status, _, body = wado(site, "contentType=image/png&rows=16&columns=16")
    assert status == 200 and Image.open(io.BytesIO(body)).size == (12, 16)  # aspect kept
    _, _, narrow = wado(site, "contentType=image/png&windowCenter=2000&windowWidth=10")
    _, _, wide = wado(site, "contentType=image/png&windowCenter=2000&windowWidth=8000")
    assert narrow != wide
    _, _, low = wado(site, "imageQuality=5")
    _, _, high = wado(site, "imageQuality=100")
    assert len(low) < len(high)


def test_uids_are_checked(site: Site) -> None:
    ok = site.api.get(f"/wado-uri?requestType=WADO&objectUID={SOP}&contentType=application/dicom")
    assert ok.status_code == 200  # study and series UIDs are optional, as in Orthanc
    wrong_series = site.api.get(
        f"/wado-uri?requestType=WADO&studyUID={STUDY}&seriesUID=1.2.3&objectUID={SOP}"
    )
    assert wrong_series.status_code == 404
    wrong_study = site.api.get(f"/wado-uri?requestType=WADO&studyUID=1.2.3&objectUID={SOP}")
    assert wrong_study.status_code == 404
    assert wado(site, "", sop="1.2.3.4")[0] == 404
    assert wado(site, "", sop="not-a-uid")[0] == 400


@pytest.mark.parametrize(
    "query",
    [
        "contentType=text/html",
        "frameNumber=0",
        "frameNumber=3",
        "frameNumber=x",
        "rows=-1",
        "windowCenter=40",
        "windowCenter=40&windowWidth=0",
        "windowCenter=nan&windowWidth=10",
        "imageQuality=101",
        "region=0,0,0.5",
        "region=0.5,0,0.5,1",
        "region=0,0,1.5,1",
        "region=a,b,c,d",
        "annotation=everything",
        "presentationUID=1.2.3",
        "anonymize=yes",
    ],
)
def test_bad_requests_are_400(site: Site, query: str) -> None:
    status, _, body = wado(site, query, MULTI)
    assert status == 400, body
    assert b"WADO-URI" in body or b"frame" in body


def test_request_type_and_object_uid_are_required(site: Site) -> None:
    assert site.api.get(f"/wado-uri?objectUID={SOP}").status_code == 400
    assert site.api.get(f"/wado-uri?requestType=WADO-RS&objectUID={SOP}").status_code == 400
    assert site.api.get("/wado-uri?requestType=WADO").status_code == 400
    assert site.api.get(f"/wado?requestType=WADO&objectUID={SOP}").status_code == 404  # moved


def test_wado_uri_can_be_disabled(server_factory: object) -> None:
    import httpx

    server = server_factory({"DicomWeb": {"EnableWado": False}})  # type: ignore[operator]
    with httpx.Client(base_url=server.url) as client:
        assert client.get(f"/wado?requestType=WADO&objectUID={SOP}").status_code == 404


def test_region_and_annotation(site: Site) -> None:
    status, kind, body = wado(site, "contentType=image/png&region=0,0,0.5,0.25")
    assert (status, kind) == (200, "image/png")
    assert Image.open(io.BytesIO(body)).size == (12, 8)  # a quarter of the height, half width
    whole = Image.open(io.BytesIO(wado(site, "contentType=image/png")[2]))
    part = Image.open(io.BytesIO(body))
    assert part.tobytes() == whole.crop((0, 0, 12, 8)).tobytes()
    # Cropped, then scaled to the rows and columns asked.
    status, _, body = wado(site, "contentType=image/png&region=0.5,0.5,1,1&columns=48")
    assert status == 200 and Image.open(io.BytesIO(body)).size == (48, 64)
    # Text burnt in: the image changes, its size does not.
    status, _, body = wado(site, "contentType=image/png&rows=256&annotation=patient,technique")
    assert status == 200
    annotated = Image.open(io.BytesIO(body))
    plain = Image.open(io.BytesIO(wado(site, "contentType=image/png&rows=256")[2]))
    assert annotated.size == plain.size == (192, 256)
    assert annotated.tobytes() != plain.tobytes()
