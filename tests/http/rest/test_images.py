"""The image routes of a real server: preview, image-*, rendered, frames, raw, numpy, Matlab, PDF.

Images do not depend on the index backend: one SQLite server serves this module, and a single
test runs on both backends.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset

from pharos.dicom.pixels import decode_frame
from tests.conftest import CORPUS, ServerProcess, corpus_files
from tests.dicom.imagegen import ENCODERS, image_dataset, ramp, stored_bytes
from tests.dicomgen import make_dataset, to_bytes

PAM = "image/x-portable-arbitrarymap"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    server = ServerProcess(tmp_path_factory.mktemp("images"), {}).start()
    try:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            yield http
    finally:
        server.stop()


def upload(client: Any, data: bytes) -> str:
    response = client.post("/instances", content=data)
    assert response.status_code == 200, response.text
    return str(response.json()["ID"])


def picture(response: httpx.Response) -> Image.Image:
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["HttpStatus"] == status and body["Details"]
    return dict(body)


@pytest.fixture(scope="module")
def ct(client: httpx.Client) -> tuple[str, np.ndarray]:
    """A 3-frame signed CT with rescale and a window."""
    frames = ramp((3, 24, 32), np.int16, -1000, 3000)
    ds = image_dataset(
        frames,
        bits_stored=16,
        RescaleSlope=1,
        RescaleIntercept=-1024,
        WindowCenter=40,
        WindowWidth=400,
    )
    return upload(client, stored_bytes(ds)), frames


# -- preview and image-* ------------------------------------------------------------------------


def test_preview_png_and_jpeg(client: httpx.Client, ct: tuple[str, np.ndarray]) -> None:
    id, _ = ct
    png = client.get(f"/instances/{id}/preview")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert picture(png).size == (32, 24) and picture(png).mode == "L"
    jpeg = client.get(f"/instances/{id}/preview", headers={"Accept": "image/jpeg"})
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert picture(jpeg).format == "JPEG" and picture(jpeg).size == (32, 24)
    worse = client.get(f"/instances/{id}/preview?quality=5", headers={"Accept": "image/jpeg"})
    assert len(worse.content) < len(jpeg.content)
    pam = client.get(f"/instances/{id}/frames/2/preview", headers={"Accept": PAM})
    assert pam.headers["content-type"] == PAM and pam.content.startswith(b"P7\nWIDTH 32\n")


def test_preview_applies_the_files_window(client: httpx.Client) -> None:
    # HU = stored - 1024; window 40/400: 864 -> -160 HU (black), 1264 -> 240 HU (white).
    ds = image_dataset(
        np.array([[864, 1264, 0]], np.int16),
        bits_stored=16,
        RescaleSlope=1,
        RescaleIntercept=-1024,
        WindowCenter=40,
        WindowWidth=400,
    )
    id = upload(client, stored_bytes(ds))
    assert np.asarray(picture(client.get(f"/instances/{id}/preview"))).tolist() == [[0, 255, 0]]


@pytest.mark.parametrize(
    ("kind", "dtype"),
    [("image-uint8", np.uint8), ("image-uint16", np.uint16), ("image-int16", np.int16)],
)
def test_image_truncations(
    client: httpx.Client, ct: tuple[str, np.ndarray], kind: str, dtype: type
) -> None:
    id, frames = ct
    limits = np.iinfo(dtype)
    expected = np.clip(frames[1], limits.min, limits.max).astype(dtype)
    response = client.get(f"/instances/{id}/frames/1/{kind}")
    assert response.headers["content-type"] == "image/png"
    pixels = np.asarray(picture(response))
    if dtype is np.int16:
        pixels = pixels.astype(np.uint16).view(np.int16)
    assert np.array_equal(pixels.astype(dtype), expected)
    pam = client.get(f"/instances/{id}/frames/1/{kind}", headers={"Accept": PAM})
    body = pam.content[pam.content.index(b"ENDHDR\n") + 7 :]
    big = np.frombuffer(body, ">u1" if dtype is np.uint8 else f">{np.dtype(dtype).char}")
    assert np.array_equal(big.reshape(expected.shape), expected)


def test_first_frame_routes_equal_frame_zero(
    client: httpx.Client, ct: tuple[str, np.ndarray]
) -> None:
    id, _ = ct
    for kind in ("preview", "image-uint16", "rendered", "matlab"):
        first = client.get(f"/instances/{id}/{kind}")
        assert first.status_code == 200
        assert first.content == client.get(f"/instances/{id}/frames/0/{kind}").content


def test_color_images(client: httpx.Client) -> None:
    rgb = ramp((10, 12, 3), np.uint8, 0, 255)
    id = upload(client, stored_bytes(image_dataset(rgb, planar=1)))
    preview = picture(client.get(f"/instances/{id}/preview"))
    assert preview.mode == "RGB" and np.array_equal(np.asarray(preview), rgb)
    assert np.array_equal(np.asarray(picture(client.get(f"/instances/{id}/image-uint8"))), rgb)
    error(client.get(f"/instances/{id}/image-uint16"), 415)
    numpy = np.load(io.BytesIO(client.get(f"/instances/{id}/numpy").content))
    assert numpy.shape == (1, 10, 12, 3) and numpy.dtype == np.uint8


# -- rendered -----------------------------------------------------------------------------------


def test_rendered_window_and_size(client: httpx.Client) -> None:
    ds = image_dataset(np.array([[0, 100], [200, 50]] * 10, np.uint16), bits_stored=16)
    id = upload(client, stored_bytes(ds))
    full = np.asarray(picture(client.get(f"/instances/{id}/rendered"))).astype(int)
    assert np.abs(full[:2] - [[0, 127.5], [255, 63.75]]).max() <= 1  # the full range
    windowed = client.get(f"/instances/{id}/rendered?window-center=100&window-width=200")
    assert np.asarray(picture(windowed))[:2].tolist() == [[0, 128], [255, 64]]
    narrow = client.get(f"/instances/{id}/rendered?window-center=100&window-width=1")
    assert np.asarray(picture(narrow))[:2].tolist() == [[0, 255], [255, 0]]
    resized = client.get(f"/instances/{id}/frames/0/rendered?height=10&smooth=1")
    assert picture(resized).size == (1, 10)
    jpeg = client.get(f"/instances/{id}/rendered?width=4", headers={"Accept": "image/jpeg"})
    assert picture(jpeg).format == "JPEG" and picture(jpeg).size == (4, 40)


@pytest.mark.parametrize(
    "query",
    ["window-width=0", "window-width=abc", "window-center=nan", "width=-1", "height=x"],
)
def test_rendered_bad_arguments(
    client: httpx.Client, ct: tuple[str, np.ndarray], query: str
) -> None:
    id, _ = ct
    error(client.get(f"/instances/{id}/rendered?{query}"), 400)


# -- frames ---------------------------------------------------------------------------------------


def test_frame_listing_and_operations(client: httpx.Client, ct: tuple[str, np.ndarray]) -> None:
    id, _ = ct
    assert client.get(f"/instances/{id}/frames").json() == [0, 1, 2]
    operations = client.get(f"/instances/{id}/frames/2").json()
    assert {"preview", "raw", "rendered", "numpy", "image-uint16"} <= set(operations)
    error(client.get(f"/instances/{id}/frames/3"), 400)


@pytest.mark.parametrize("frame", ["3", "-1", "x", "1.5"])
def test_frames_out_of_range(client: httpx.Client, ct: tuple[str, np.ndarray], frame: str) -> None:
    id, _ = ct
    for kind in ("preview", "raw", "numpy", "rendered", "matlab"):
        assert (
            "frame"
            in error(client.get(f"/instances/{id}/frames/{frame}/{kind}"), 400)["Details"].lower()
        )


def test_raw_native_frames(client: httpx.Client, ct: tuple[str, np.ndarray]) -> None:
    id, frames = ct
    raw = client.get(f"/instances/{id}/frames/2/raw")
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.content == frames[2].tobytes()
    packed = client.get(f"/instances/{id}/frames/2/raw.gz")
    assert packed.headers["content-type"] == "application/gzip"
    assert gzip.decompress(packed.content) == frames[2].tobytes()


def test_raw_encapsulated_frames(client: httpx.Client) -> None:
    frames = ramp((2, 16, 16), np.uint16, 0, 4095)
    codestreams = [ENCODERS["1.2.840.10008.1.2.4.90"](frame) for frame in frames]
    ds = image_dataset(frames, syntax="1.2.840.10008.1.2.4.90", bits_stored=12, encoded=codestreams)
    id = upload(client, stored_bytes(ds))
    raw = client.get(f"/instances/{id}/frames/1/raw")
    assert raw.headers["content-type"] == "image/jp2"
    assert raw.content[: len(codestreams[1])] == codestreams[1]
    preview = picture(client.get(f"/instances/{id}/frames/1/image-uint16"))
    assert np.array_equal(np.asarray(preview).astype(np.uint16), frames[1])


# -- numpy and Matlab ----------------------------------------------------------------------------


def test_instance_numpy(client: httpx.Client, ct: tuple[str, np.ndarray]) -> None:
    id, frames = ct
    rescaled = np.load(io.BytesIO(client.get(f"/instances/{id}/numpy").content))
    assert rescaled.shape == (3, 24, 32, 1) and rescaled.dtype == np.float32
    assert np.array_equal(rescaled[..., 0], frames.astype(np.float32) - 1024)
    raw = np.load(io.BytesIO(client.get(f"/instances/{id}/numpy?rescale=0").content))
    assert raw.dtype == np.int16 and np.array_equal(raw[..., 0], frames)
    packed = np.load(io.BytesIO(client.get(f"/instances/{id}/numpy?compress=1").content))
    assert np.array_equal(packed["arr_0"], rescaled)
    one = np.load(io.BytesIO(client.get(f"/instances/{id}/frames/1/numpy?rescale=0").content))
    assert one.shape == (24, 32, 1) and np.array_equal(one[..., 0], frames[1])


def test_series_numpy_in_slice_order(client: httpx.Client) -> None:
    series = pydicom.uid.generate_uid()
    study = pydicom.uid.generate_uid()
    slices = []
    for z in (3, 1, 2):  # uploaded out of order
        pixels = np.full((4, 5), z * 100, np.uint16)
        ds = image_dataset(
            pixels,
            bits_stored=16,
            series_uid=series,
            study_uid=study,
            instance_number=4 - z,
            ImagePositionPatient=[0, 0, z * 2.5],
        )
        slices.append(upload(client, stored_bytes(ds)))
    series_id = client.get(f"/instances/{slices[0]}/series").json()["ID"]
    volume = np.load(io.BytesIO(client.get(f"/series/{series_id}/numpy?rescale=0").content))
    assert volume.shape == (3, 4, 5, 1) and volume.dtype == np.uint16
    assert volume[:, 0, 0, 0].tolist() == [100, 200, 300]


def test_series_numpy_refuses_mixed_sizes(client: httpx.Client) -> None:
    series, study = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    for shape in ((4, 4), (8, 8)):
        ds = image_dataset(np.zeros(shape, np.uint16), series_uid=series, study_uid=study)
        id = upload(client, stored_bytes(ds))
    series_id = client.get(f"/instances/{id}/series").json()["ID"]
    assert "differ" in error(client.get(f"/series/{series_id}/numpy"), 415)["Details"]
    error(client.get("/series/00000000-00000000-00000000-00000000-00000000/numpy"), 404)


def test_matlab(client: httpx.Client) -> None:
    id = upload(client, stored_bytes(image_dataset(np.array([[1, 2], [3, -4]], np.int16))))
    response = client.get(f"/instances/{id}/matlab")
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "double([ 1 2 ; 3 -4 ])"


# -- PDF ---------------------------------------------------------------------------------------


def test_pdf(client: httpx.Client, ct: tuple[str, np.ndarray]) -> None:
    document = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
    ds = make_dataset()
    for keyword in (
        "PixelData",
        "Rows",
        "Columns",
        "BitsAllocated",
        "BitsStored",
        "HighBit",
        "PixelRepresentation",
        "SamplesPerPixel",
        "PhotometricInterpretation",
    ):
        delattr(ds, keyword)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.EncapsulatedDocument = document + b"\x00"
    ds.EncapsulatedDocumentLength = len(document)
    id = upload(client, to_bytes(ds))
    response = client.get(f"/instances/{id}/pdf")
    assert response.headers["content-type"] == "application/pdf"
    assert response.content == document
    assert "415" not in str(error(client.get(f"/instances/{id}/preview"), 415)["Details"])
    error(client.get(f"/instances/{ct[0]}/pdf"), 404)


# -- failures -------------------------------------------------------------------------------------


def test_no_pixel_data(client: httpx.Client) -> None:
    ds = make_dataset()
    del ds.PixelData
    id = upload(client, to_bytes(ds))
    for route in ("preview", "image-uint8", "rendered", "numpy", "matlab", "frames/0/raw"):
        assert "no pixel data" in error(client.get(f"/instances/{id}/{route}"), 415)["Details"]
    assert client.get(f"/instances/{id}").status_code == 200  # still there, unchanged
    placeholder = client.get(f"/instances/{id}/preview?returnUnsupportedImage")
    assert placeholder.status_code == 200 and picture(placeholder).size == (128, 128)
    jpeg = client.get(
        f"/instances/{id}/frames/0/rendered?returnUnsupportedImage=true",
        headers={"Accept": "image/jpeg"},
    )
    assert picture(jpeg).format == "JPEG"
    # Only undecodable images get the placeholder, not bad requests.
    error(client.get(f"/instances/{id}/frames/x/preview?returnUnsupportedImage"), 400)


def test_broken_pixel_data(client: httpx.Client) -> None:
    truncated = make_dataset(rows=64, columns=64)
    truncated.PixelData = truncated.PixelData[:100]
    garbage = image_dataset(np.zeros((8, 8), np.uint8), syntax="1.2.840.10008.1.2.4.90")
    from pydicom.encaps import encapsulate

    garbage.PixelData = encapsulate([b"\xff\x4f\xff\x51 not a codestream"])
    for ds, reason in ((truncated, "too short"), (garbage, "Cannot decode")):
        id = upload(client, to_bytes(ds))
        assert reason in error(client.get(f"/instances/{id}/preview"), 415)["Details"]


def test_bad_requests(client: httpx.Client, ct: tuple[str, np.ndarray]) -> None:
    id, _ = ct
    for quality in ("0", "101", "high"):
        error(
            client.get(
                f"/instances/{id}/preview?quality={quality}", headers={"Accept": "image/jpeg"}
            ),
            400,
        )
    error(client.get(f"/instances/{id}/preview", headers={"Accept": "application/json"}), 406)
    error(client.get(f"/instances/{id}/image-uint16", headers={"Accept": "image/jpeg"}), 406)
    error(client.get("/instances/00000000-00000000-00000000-00000000-00000000/preview"), 404)
    error(client.get("/instances/nonsense/frames/0/raw"), 404)


# -- both backends -------------------------------------------------------------------------------


def test_preview_on_each_backend(api: Any) -> None:
    ds = make_dataset(rows=20, columns=10)
    id = upload(api, to_bytes(ds))
    assert picture(api.get(f"/instances/{id}/preview")).size == (10, 20)


# -- the corpus ----------------------------------------------------------------------------------


def _corpus_images() -> list[Path]:
    if not CORPUS.is_dir():
        return []
    return sorted((CORPUS / "TransferSyntaxes").glob("*.dcm")) + sorted(
        (CORPUS / "Formats").glob("*.dcm")
    )


@pytest.mark.corpus
@pytest.mark.parametrize("path", _corpus_images(), ids=lambda p: p.name)
def test_corpus_previews(client: httpx.Client, path: Path) -> None:
    id = upload(client, path.read_bytes())
    ds: Dataset = pydicom.dcmread(path, force=True)
    size = (int(ds.Columns), int(ds.Rows))
    png = picture(client.get(f"/instances/{id}/preview"))
    jpeg = picture(client.get(f"/instances/{id}/preview", headers={"Accept": "image/jpeg"}))
    assert png.format == "PNG" and png.size == size
    assert jpeg.format == "JPEG" and jpeg.size == size
    numpy = np.load(io.BytesIO(client.get(f"/instances/{id}/numpy?rescale=0").content))
    expected = decode_frame(ds)
    assert np.array_equal(numpy[0].reshape(expected.shape), expected)


@pytest.mark.corpus
@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.name)
def test_no_corpus_file_gets_a_server_error(client: httpx.Client, path: Path) -> None:
    response = client.post("/instances", content=path.read_bytes())
    if response.status_code != 200:
        return  # refused at the door: nothing stored to render
    id = response.json()["ID"]
    for route in ("preview", "rendered", "frames/0/raw", "numpy", "image-uint8"):
        answer = client.get(f"/instances/{id}/{route}")
        assert answer.status_code in (200, 400, 404, 415), (route, answer.text)
        if answer.status_code != 200:
            assert answer.json()["Details"]
