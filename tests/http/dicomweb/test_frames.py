"""WADO-RS frames, bulk data and study/series rendering on a real server (SQLite), through
dicomweb-client and raw HTTP: uncompressed and compressed frames (PS3.18 8.7.3), BulkDataURIs
in metadata (PS3.18 F.2.2) and their retrieval, XML answers (PS3.19 A.1), and the refusals."""

from __future__ import annotations

import io
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRBigEndian, JPEGLSLossless, RLELossless
from requests import HTTPError

from pharos.dicom.transcode import transcode
from pharos.http.dicomweb.frames import frame_numbers, negotiate
from pharos.model.errors import PharosError
from pharos.services.dicomweb_frames import AS_STORED
from tests.dicomgen import make_dataset, to_bytes
from tests.http.dicomweb.conftest import Site, shared_site

STUDY = "1.2.826.3.1"
SERIES = STUDY + ".1"
SINGLE = STUDY + ".1.1"  # one frame, explicit VR little endian
MULTI = STUDY + ".1.2"  # three frames, explicit VR little endian
RLE = STUDY + ".1.3"  # three frames, stored RLE lossless
BULK = STUDY + ".1.4"  # large binary values, top-level and in a sequence
BASE = f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances"
OCTET = 'multipart/related; type="application/octet-stream"'


def multi_frame(sop_uid: str, number: int) -> Dataset:
    ds = make_dataset(study_uid=STUDY, series_uid=SERIES, sop_uid=sop_uid, instance_number=number)
    rng = np.random.default_rng(7)
    ds.NumberOfFrames = 3
    ds.PixelData = rng.integers(0, 4000, (3, 16, 16), dtype=np.int16).tobytes()
    return ds


def bulk_instance() -> Dataset:
    ds = make_dataset(study_uid=STUDY, series_uid=SERIES, sop_uid=BULK, instance_number=4)
    ds.add_new(0x60000010, "US", 128)  # OverlayRows
    ds.add_new(0x60000011, "US", 128)  # OverlayColumns
    ds.add_new(0x60003000, "OW", bytes(range(256)) * 8)  # OverlayData: 2,048 bytes
    icon = Dataset()
    icon.Rows = icon.Columns = 32
    icon.add_new(0x7FE00010, "OW", b"\x01\x02" * 1024)
    ds.IconImageSequence = [icon]
    ds.add_new(0x00091000, "LO", "SMALL")  # private creator
    ds.add_new(0x00091010, "OB", b"\x07" * 16)  # small binary: inline
    return ds


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    for found in shared_site(tmp_path_factory.mktemp("frames"), {}):
        found.upload(to_bytes(make_dataset(
            study_uid=STUDY, series_uid=SERIES, sop_uid=SINGLE, instance_number=1
        )))  # fmt: skip
        found.upload(to_bytes(multi_frame(MULTI, 2)))
        found.upload(to_bytes(transcode(multi_frame(RLE, 3), RLELossless)))
        found.upload(to_bytes(bulk_instance()))
        yield found


def native_frames(sop_uid: str) -> list[bytes]:
    data = bytes(multi_frame(sop_uid, 1).PixelData)
    return [data[i * 512 : (i + 1) * 512] for i in range(3)]


def test_uncompressed_frames_with_dicomweb_client(site: Site) -> None:
    frames = site.client.retrieve_instance_frames(STUDY, SERIES, MULTI, [3, 1])
    expected = native_frames(MULTI)
    assert frames == [expected[2], expected[0]]
    (single,) = site.client.retrieve_instance_frames(STUDY, SERIES, SINGLE, [1])
    assert single == bytes(make_dataset(sop_uid=SINGLE).PixelData)


def stored_bits(frame: bytes) -> list[int]:
    """The 12 stored bits of each pixel (decoders sign-extend the high bits)."""
    return list(np.frombuffer(frame, "<u2") & 0x0FFF)


def test_compressed_file_gives_uncompressed_frames_by_default(site: Site) -> None:
    frames = site.client.retrieve_instance_frames(STUDY, SERIES, RLE, [1, 2, 3])
    assert [stored_bits(f) for f in frames] == [stored_bits(f) for f in native_frames(RLE)]
    response = site.api.get(f"{BASE}/{RLE}/frames/2")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(OCTET)


def test_frames_as_stored(site: Site) -> None:
    response = site.api.get(
        f"{BASE}/{RLE}/frames/1", headers={"Accept": OCTET + "; transfer-syntax=*"}
    )
    assert response.status_code == 200
    content_type = response.headers["content-type"]
    assert content_type.startswith('multipart/related; type="image/dicom-rle"')
    assert f"transfer-syntax={RLELossless}".encode() in response.content
    frames = site.client.retrieve_instance_frames(
        STUDY, SERIES, RLE, [1], media_types=(("image/dicom-rle", RLELossless),)
    )
    assert frames[0][:4] != native_frames(RLE)[0][:4]  # the RLE header, not pixels


def test_frames_transcoded_to_the_syntax_asked_for(site: Site) -> None:
    (jls,) = site.client.retrieve_instance_frames(
        STUDY, SERIES, MULTI, [2], media_types=(("image/jls", JPEGLSLossless),)
    )
    assert jls[:2] == b"\xff\xd8"  # a JPEG-LS code stream
    (jpeg,) = site.client.retrieve_instance_frames(
        STUDY, SERIES, SINGLE, [1], media_types=("image/jpeg",)
    )
    assert jpeg[:2] == b"\xff\xd8"


def test_frame_errors(site: Site) -> None:
    assert site.api.get(f"{BASE}/{MULTI}/frames/4").status_code == 400
    assert site.api.get(f"{BASE}/{MULTI}/frames/0").status_code == 400
    assert site.api.get(f"{BASE}/{MULTI}/frames/1,x").status_code == 400
    assert site.api.get(f"{BASE}/{STUDY}.9.9/frames/1").status_code == 404
    refused = site.api.get(f"{BASE}/{MULTI}/frames/1", headers={"Accept": "text/html"})
    assert refused.status_code == 406
    wrong = site.api.get(
        f"{BASE}/{MULTI}/frames/1",
        headers={"Accept": 'multipart/related; type="image/jls"; transfer-syntax=1.2.3'},
    )
    assert wrong.status_code == 406


def test_metadata_gives_bulk_data_uris_that_resolve(site: Site) -> None:
    # dicomweb-client sends a Host header without the port: the URIs follow the Host.
    metadata = site.api.get(f"{BASE}/{BULK}/metadata").json()[0]
    overlay = metadata["60003000"]
    assert overlay["vr"] == "OW" and set(overlay) == {"vr", "BulkDataURI"}
    uri = overlay["BulkDataURI"]
    assert uri == f"{site.server.url}{BASE}/{BULK}/bulk/60003000"
    assert site.client.retrieve_bulkdata(uri) == [bytes(range(256)) * 8]
    icon = metadata["00880200"]["Value"][0]["7FE00010"]
    assert icon["BulkDataURI"] == f"{site.server.url}{BASE}/{BULK}/bulk/00880200/1/7FE00010"
    assert site.client.retrieve_bulkdata(icon["BulkDataURI"]) == [b"\x01\x02" * 1024]
    assert site.client.retrieve_instance_metadata(STUDY, SERIES, BULK)["60003000"] == {
        "vr": "OW",
        "BulkDataURI": uri.replace(site.server.url, "http://127.0.0.1"),
    }
    assert metadata["00091010"]["InlineBinary"]  # small values stay inline
    # Native pixel data: bulk data too, the same bytes as the frame.
    pixels = site.client.retrieve_bulkdata(metadata["7FE00010"]["BulkDataURI"])
    assert pixels == site.client.retrieve_instance_frames(STUDY, SERIES, BULK, [1])
    rle = site.api.get(f"{BASE}/{RLE}/metadata").json()[0]
    assert "7FE00010" not in rle  # encapsulated: its frames only
    # The series metadata, cached, answers the same URIs.
    series = site.api.get(f"/dicom-web/studies/{STUDY}/series/{SERIES}/metadata").json()
    again = site.api.get(f"/dicom-web/studies/{STUDY}/series/{SERIES}/metadata").json()
    assert series == again
    (bulk,) = [item for item in series if item["00080018"]["Value"] == [BULK]]
    assert bulk["60003000"]["BulkDataURI"] == uri


def test_bulk_data_of_a_big_endian_file_is_little_endian(site: Site) -> None:
    # PS3.18 8.7.3.2: bulk data comes in Explicit VR Little Endian, whatever the file's.
    sop_uid = STUDY + ".1.9"
    ds = make_dataset(study_uid=STUDY, series_uid=SERIES, sop_uid=sop_uid, instance_number=9)
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    words = list(range(1024))
    ds.add_new(0x60000010, "US", 128)
    ds.add_new(0x60000011, "US", 128)
    ds.add_new(0x60003000, "OW", struct.pack(">1024H", *words))  # as the file holds them
    ds.add_new(0x00091000, "LO", "SMALL")
    ds.add_new(0x00091012, "OB", bytes(range(256)) * 8)  # bytes: nothing to swap
    site.upload(to_bytes(ds))
    path = f"{BASE}/{sop_uid}/bulk"
    octet = {"Accept": "application/octet-stream"}
    overlay = site.api.get(f"{path}/60003000", headers=octet)
    assert overlay.status_code == 200
    assert overlay.content == struct.pack("<1024H", *words)
    assert site.api.get(f"{path}/00091012", headers=octet).content == bytes(range(256)) * 8


def test_bulk_data_single_part_and_errors(site: Site) -> None:
    path = f"{BASE}/{BULK}/bulk/60003000"
    single = site.api.get(path, headers={"Accept": "application/octet-stream"})
    assert single.status_code == 200
    assert single.headers["content-type"] == "application/octet-stream"
    assert single.content == bytes(range(256)) * 8
    assert site.api.get(f"{BASE}/{BULK}/bulk/00100010").status_code == 404  # not binary
    assert site.api.get(f"{BASE}/{BULK}/bulk/60103000").status_code == 404  # absent
    assert site.api.get(f"{BASE}/{BULK}/bulk/00880200/2/7FE00010").status_code == 404
    assert site.api.get(f"{BASE}/{BULK}/bulk/00880200/1").status_code == 400
    assert site.api.get(f"{BASE}/{BULK}/bulk/nothex00").status_code == 400
    assert site.api.get(path, headers={"Accept": "image/png"}).status_code == 406


def test_study_and_series_rendered(site: Site) -> None:
    study = site.api.get(f"/dicom-web/studies/{STUDY}/rendered")
    assert study.status_code == 200 and study.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(study.content)).format == "JPEG"
    series = site.client.retrieve_series_rendered(
        STUDY, SERIES, media_types=("image/png",), params={"viewport": "8,8"}
    )
    image = Image.open(io.BytesIO(series))
    assert image.format == "PNG" and image.size == (8, 8)
    with pytest.raises(HTTPError):
        site.client.retrieve_series_rendered(STUDY, STUDY + ".9")
    response = site.api.get(f"/dicom-web/studies/{STUDY}/rendered", headers={"Accept": "text/x"})
    assert response.status_code == 406


def test_metadata_and_searches_as_xml(site: Site) -> None:
    """PS3.18 8.7.3.3: multipart/related; type="application/dicom+xml", one part each."""
    xml = 'multipart/related; type="application/dicom+xml"'
    response = site.api.get(f"{BASE}/{BULK}/metadata", headers={"Accept": xml})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(xml + "; boundary=")
    (part,) = parts(response)
    root = ET.fromstring(part)
    tags = {a.get("tag"): a for a in root.findall("DicomAttribute")}
    assert tags["00080018"].findtext("Value") == BULK
    bulk = tags["60003000"].find("BulkData")
    assert bulk is not None and bulk.get("uri", "").endswith(f"/{BULK}/bulk/60003000")
    found = site.api.get(f"/dicom-web/studies?StudyInstanceUID={STUDY}", headers={"Accept": xml})
    assert found.status_code == 200
    (study,) = parts(found)
    assert ET.fromstring(study).find("DicomAttribute[@tag='0020000D']/Value").text == STUDY  # type: ignore[union-attr]
    # JSON first in the Accept header: JSON.
    both = site.api.get(
        f"/dicom-web/studies?StudyInstanceUID={STUDY}",
        headers={"Accept": "application/dicom+json, " + xml},
    )
    assert both.headers["content-type"] == "application/dicom+json"
    refused = site.api.get(f"{BASE}/{BULK}/metadata", headers={"Accept": "text/xml"})
    assert refused.status_code == 406


def parts(response: Any) -> list[bytes]:
    boundary = response.headers["content-type"].split("boundary=")[1]
    chunks = response.content.split(b"--" + boundary.encode())[1:-1]
    return [chunk.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n") for chunk in chunks]


# -- negotiation, without a server -------------------------------------------------------------


def test_negotiation_of_frame_media_types() -> None:
    little = "1.2.840.10008.1.2.1"
    assert negotiate(None, RLELossless) == (little,)
    assert negotiate("*/*", RLELossless) == (little,)
    assert negotiate(OCTET, RLELossless) == (little,)
    assert negotiate(OCTET + "; transfer-syntax=*", RLELossless) == (AS_STORED,)
    assert negotiate('multipart/related; type="image/dicom-rle"', RLELossless) == (RLELossless,)
    jpeg = negotiate('multipart/related; type="image/jpeg"', little)
    assert jpeg[0] == "1.2.840.10008.1.2.4.50" and "1.2.840.10008.1.2.4.70" in jpeg
    # Stored as asked: as stored; otherwise its default syntax.
    assert negotiate('multipart/related; type="image/jls"; transfer-syntax=*', JPEGLSLossless) == (
        AS_STORED,
    )
    assert negotiate("text/html, " + OCTET, little) == (little,)  # the first servable
    for refused in ("text/html", 'multipart/related; type="image/jls"; transfer-syntax=1.2.840'):
        with pytest.raises(PharosError) as caught:
            negotiate(refused, little)
        assert caught.value.http_status == 406


def test_frame_lists() -> None:
    assert frame_numbers("3,1, 2") == [3, 1, 2]
    for bad in ("", "0", "1,,2", "-1", "1.5", "\u0661"):
        with pytest.raises(PharosError):
            frame_numbers(bad)
