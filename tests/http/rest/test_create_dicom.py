"""POST /tools/create-dicom on a real server: round trips through the image and PDF routes,
parents, series, Orthanc's answers, and failures that store nothing.

One SQLite server serves the module (creation goes through the store path the upload tests
cover on both backends); one test runs on both backends.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image

from tests.conftest import Api, ServerProcess
from tests.dicomgen import make_dicom

PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = ServerProcess(tmp_path_factory.mktemp("create"), {}).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            yield http
    finally:
        server.stop()


def encoded(array: np.ndarray, fmt: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt, **options)
    return buffer.getvalue()


def uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def pattern(rows: int = 48, columns: int = 64, seed: int = 0) -> np.ndarray:
    return (np.add.outer(np.arange(rows) * 3, np.arange(columns) * 7) + seed).astype(np.uint8)


def created(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/tools/create-dicom", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def failed(client: Any, body: Any, status: int) -> dict[str, Any]:
    """The request fails with `status` and a message, and stores nothing."""
    before = client.get("/instances").json()
    if isinstance(body, bytes):
        response = client.post("/tools/create-dicom", content=body)
    else:
        response = client.post("/tools/create-dicom", json=body)
    assert response.status_code == status, response.text
    error = response.json()
    assert error["HttpStatus"] == status and error["Details"]
    assert client.get("/instances").json() == before
    return dict(error)


def tags(client: Any, instance: str) -> dict[str, Any]:
    return dict(client.get(f"/instances/{instance}/simplified-tags").json())


def test_png_round_trip(client: httpx.Client) -> None:
    pixels = pattern()
    answer = created(
        client,
        {
            "Tags": {"PatientName": "Round^Trip", "Modality": "OT"},
            "Content": uri("image/png", encoded(pixels, "PNG")),
        },
    )
    assert set(answer) == {"ID", "Path", "ParentPatient", "ParentStudy", "ParentSeries", "Status"}
    assert answer["Status"] == "Success" and answer["Path"] == f"/instances/{answer['ID']}"
    image = client.get(f"/instances/{answer['ID']}/image-uint8")
    assert image.status_code == 200
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(image.content))), pixels)
    found = tags(client, answer["ID"])
    assert found["PatientName"] == "Round^Trip" and found["Modality"] == "OT"
    assert found["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.7"
    assert found["SpecificCharacterSet"] == "ISO_IR 100"  # DefaultEncoding: Latin1
    assert found["StudyDate"] and found["SeriesDate"] and found["ContentTime"]
    study = client.get(f"/studies/{answer['ParentStudy']}").json()
    assert study["PatientMainDicomTags"]["PatientName"] == "Round^Trip"
    origin = client.get(f"/instances/{answer['ID']}/metadata/Origin")
    assert origin.text == "RestApi"


def test_png_16_bits_and_rgba(client: httpx.Client) -> None:
    deep = (np.arange(32 * 16, dtype=np.uint16).reshape(32, 16) * 97).astype(np.uint16)
    answer = created(client, {"Tags": {}, "Content": uri("image/png", encoded(deep, "PNG"))})
    image = client.get(f"/instances/{answer['ID']}/image-uint16")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(image.content))), deep)

    rgb = np.stack([pattern(), pattern(seed=50), pattern(seed=100)], axis=-1)
    rgba = Image.fromarray(rgb).convert("RGBA")
    buffer = io.BytesIO()
    rgba.save(buffer, "PNG")
    answer = created(client, {"Tags": {}, "Content": uri("image/png", buffer.getvalue())})
    image = client.get(f"/instances/{answer['ID']}/image-uint8")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(image.content))), rgb)
    assert tags(client, answer["ID"])["PhotometricInterpretation"] == "RGB"


def test_jpeg_kept_and_previewed(client: httpx.Client) -> None:
    rgb = np.stack([pattern(), pattern(seed=50), pattern(seed=100)], axis=-1)
    jpeg = encoded(rgb, "JPEG", quality=95)
    answer = created(client, {"Tags": {}, "Content": uri("image/jpeg", jpeg)})
    syntax = client.get(f"/instances/{answer['ID']}/metadata/TransferSyntax").text
    assert syntax == "1.2.840.10008.1.2.4.50"
    raw = client.get(f"/instances/{answer['ID']}/frames/0/raw")
    assert raw.content.rstrip(b"\0") == jpeg.rstrip(b"\0")  # not recompressed
    preview = client.get(f"/instances/{answer['ID']}/preview")
    assert preview.status_code == 200
    shown = np.asarray(Image.open(io.BytesIO(preview.content)).convert("RGB")).astype(int)
    assert shown.shape == rgb.shape
    assert np.abs(shown - np.asarray(Image.open(io.BytesIO(jpeg))).astype(int)).max() <= 2


def test_pdf_round_trip(client: httpx.Client) -> None:
    answer = created(
        client, {"Tags": {"PatientID": "PDF-1"}, "Content": uri("application/pdf", PDF)}
    )
    document = client.get(f"/instances/{answer['ID']}/pdf")
    assert document.status_code == 200 and document.content == PDF
    assert document.headers["content-type"] == "application/pdf"
    found = tags(client, answer["ID"])
    assert found["SOPClassUID"] == "1.2.840.10008.5.1.4.1.1.104.1"
    assert found["MIMETypeOfEncapsulatedDocument"] == "application/pdf"
    assert found["PatientID"] == "PDF-1"


def test_no_content_creates_a_header_only_instance(client: httpx.Client) -> None:
    answer = created(
        client, {"Tags": {"PatientName": "Empty", "SpecificCharacterSet": "ISO_IR 192"}}
    )
    found = tags(client, answer["ID"])
    assert found["SpecificCharacterSet"] == "ISO_IR 192" and "PixelData" not in found


def test_parent_study_and_series(client: httpx.Client) -> None:
    data = make_dicom(patient_id="PARENT", patient_name="Parent^Pat", StudyDescription="S1")
    stored = client.post("/instances", content=data).json()
    png = uri("image/png", encoded(pattern(), "PNG"))

    # Under the study: same patient and study (their tags copied), a new series.
    answer = created(
        client,
        {"Tags": {"SeriesDescription": "added"}, "Parent": stored["ParentStudy"], "Content": png},
    )
    assert answer["ParentStudy"] == stored["ParentStudy"]
    assert answer["ParentSeries"] != stored["ParentSeries"]
    found = tags(client, answer["ID"])
    assert found["PatientName"] == "Parent^Pat" and found["StudyDescription"] == "S1"
    assert found["SeriesDescription"] == "added"

    # Under the series: the same series.
    answer = created(client, {"Tags": {}, "Parent": stored["ParentSeries"], "Content": png})
    assert answer["ParentSeries"] == stored["ParentSeries"]

    # Under the patient: a new study of that patient.
    answer = created(client, {"Tags": {}, "Parent": stored["ParentPatient"]})
    assert answer["ParentPatient"] == stored["ParentPatient"]
    assert answer["ParentStudy"] != stored["ParentStudy"]

    # Tags copied from the parent are replaced only with Force.
    body = {"Tags": {"PatientName": "Other"}, "Parent": stored["ParentStudy"]}
    failed(client, body, 400)
    answer = created(client, {**body, "Force": True})
    assert tags(client, answer["ID"])["PatientName"] == "Other"

    failed(client, {"Tags": {}, "Parent": stored["ID"]}, 400)  # an instance
    failed(client, {"Tags": {}, "Parent": "00000000-00000000-00000000-00000000-00000000"}, 404)


def test_content_array_creates_a_series(client: httpx.Client) -> None:
    first, second, third = (uri("image/png", encoded(pattern(seed=s), "PNG")) for s in (0, 9, 99))
    answer = created(
        client,
        {
            "Tags": {"PatientID": "SERIES-1", "SeriesDescription": "three"},
            "Content": [first, {"Content": second, "Tags": {"ImageComments": "two"}}, third],
        },
    )
    assert answer["Path"] == f"/series/{answer['ID']}" and answer["Status"] == "Success"
    instances = client.get(f"/series/{answer['ID']}/instances").json()
    assert len(instances) == 3
    numbers = sorted(int(i["MainDicomTags"]["InstanceNumber"]) for i in instances)
    assert numbers == [1, 2, 3]
    by_number = {i["MainDicomTags"]["InstanceNumber"]: i for i in instances}
    assert by_number["2"]["MainDicomTags"]["ImageComments"] == "two"
    series = client.get(f"/series/{answer['ID']}").json()["MainDicomTags"]
    assert series["ImagesInAcquisition"] == "3" and series["SeriesDescription"] == "three"
    image = client.get(f"/instances/{by_number['3']['ID']}/image-uint8")
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(image.content))), pattern(seed=99))


def test_forced_identifiers(client: httpx.Client) -> None:
    uids = {
        "StudyInstanceUID": "1.2.3.4",
        "SeriesInstanceUID": "1.2.3.4.5",
        "SOPInstanceUID": "1.2.3.4.5.6",
    }
    failed(client, {"Tags": uids}, 400)
    answer = created(client, {"Tags": {**uids, "PatientID": "FORCED"}, "Force": True})
    assert tags(client, answer["ID"])["SOPInstanceUID"] == "1.2.3.4.5.6"
    dataset = pydicom.dcmread(io.BytesIO(client.get(f"/instances/{answer['ID']}/file").content))
    assert dataset.StudyInstanceUID == "1.2.3.4"


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        ([], 400),
        ({"Content": "data:image/png;base64,"}, 400),  # no Tags
        ({"Tags": {}, "Content": "http://example.com/a.png"}, 400),
        ({"Tags": {}, "Content": "data:image/png;base64,%%%"}, 400),
        ({"Tags": {}, "Content": "data:image/gif;base64,R0lGODlh"}, 400),
        ({"Tags": {}, "Content": "data:image/png;base64,iVBORw0KGgoAAAA="}, 400),
        ({"Tags": {}, "Content": "data:application/pdf;base64,PGh0bWw+"}, 400),
        ({"Tags": {"NotATag": "x"}}, 404),
        ({"Tags": {"PixelData": "x"}}, 400),
        ({"Tags": {"SpecificCharacterSet": "KLINGON"}}, 400),
        ({"Tags": {}, "Force": "true"}, 400),
        ({"Tags": {"0009,1001": "x"}}, 400),  # private tag without a creator
    ],
)
def test_failures_store_nothing(client: httpx.Client, body: Any, status: int) -> None:
    failed(client, body, status)


def test_series_with_one_bad_item_stores_nothing(client: httpx.Client) -> None:
    good = uri("image/png", encoded(pattern(), "PNG"))
    failed(client, {"Tags": {}, "Content": [good, "data:image/png;base64,AAAA"]}, 400)
    failed(client, {"Tags": {}, "Content": [good, {"Content": good, "Tags": {"Nope": "1"}}]}, 404)


def test_create_on_both_backends(api: Api) -> None:
    answer = created(
        api,
        {
            "Tags": {"PatientName": "Both"},
            "Content": uri("image/png", encoded(pattern(), "PNG")),
        },
    )
    assert api.get(f"/instances/{answer['ID']}").status_code == 200
    assert len(api.stored_files()) == 1
    failed(api, {"Tags": {}, "Content": "data:image/png;base64,AAAA"}, 400)
    assert len(api.stored_files()) == 1
