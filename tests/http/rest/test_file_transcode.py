"""GET /instances/{id}/file?transcode=<transfer syntax UID> (Orthanc 1.9+): the stored file in
another syntax, on the fly; what cannot be done is a 400 with the reason, nothing changed."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from tests.dicom.imagegen import image_dataset, ramp, stored_bytes
from tests.dicomgen import make_dicom

EXPLICIT = "1.2.840.10008.1.2.1"
LOSSLESS = [
    "1.2.840.10008.1.2",  # implicit VR little endian
    "1.2.840.10008.1.2.2",  # explicit VR big endian
    "1.2.840.10008.1.2.1.99",  # deflated
    "1.2.840.10008.1.2.5",  # RLE
    "1.2.840.10008.1.2.4.57",  # JPEG lossless
    "1.2.840.10008.1.2.4.70",  # JPEG lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 lossless
]


def read(content: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(content))


def test_file_transcoded_to_each_lossless_syntax(api: Any) -> None:
    data = make_dicom(rows=48, columns=40, patient_id="P-TRANSCODE")
    original = read(data)
    instance = api.post("/instances", content=data).json()["ID"]
    for syntax in LOSSLESS:
        response = api.get(f"/instances/{instance}/file", params={"transcode": syntax})
        assert response.status_code == 200, (syntax, response.text)
        assert response.headers["content-type"] == "application/dicom"
        converted = read(response.content)
        assert converted.file_meta.TransferSyntaxUID == syntax
        assert converted.SOPInstanceUID == original.SOPInstanceUID
        assert np.array_equal(converted.pixel_array, original.pixel_array), syntax
    # The stored syntax: the stored bytes as they are.
    same = api.get(f"/instances/{instance}/file", params={"transcode": EXPLICIT})
    assert same.content == data
    # Nothing changed in the store.
    assert api.get(f"/instances/{instance}/file").content == data
    assert api.get(f"/instances/{instance}/metadata/TransferSyntax").text == EXPLICIT
    assert len(api.get("/instances").json()) == 1


def test_lossy_transcoding_when_asked(api_factory: Any) -> None:
    api = api_factory(DicomLossyTranscodingQuality=50)
    ds = image_dataset(ramp((64, 64), np.uint8, 0, 255), ImageType=["ORIGINAL", "PRIMARY"])
    instance = api.post("/instances", content=stored_bytes(ds)).json()["ID"]
    response = api.get(f"/instances/{instance}/file?transcode=1.2.840.10008.1.2.4.50")
    assert response.status_code == 200, response.text
    converted = read(response.content)
    assert converted.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert converted.LossyImageCompression == "01"
    assert "quality 50" in converted.DerivationDescription
    assert converted.SOPInstanceUID != ds.SOPInstanceUID  # a new instance, as DCMTK makes
    assert converted.SourceImageSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert converted.pixel_array.shape == (64, 64)


def test_refusals_are_400_and_change_nothing(api: Any) -> None:
    data = make_dicom(rows=48, columns=40)  # 12-bit signed CT
    instance = api.post("/instances", content=data).json()["ID"]
    url = f"/instances/{instance}/file"
    cases = [
        ("1.2.840.10008.1.2.4.50", "JPEG Baseline.*8-bit samples only, not 12-bit"),
        ("1.2.840.10008.1.2.4.201", "High-Throughput JPEG 2000.*encoding not supported"),
        ("nonsense", "Unknown transfer syntax: 'nonsense'"),
        ("1.2.3.4", "Unknown transfer syntax"),
        ("", "Unknown transfer syntax"),
    ]
    for syntax, reason in cases:
        response = api.get(url, params={"transcode": syntax})
        assert response.status_code == 400, (syntax, response.text)
        assert re.search(reason, response.json()["Details"]), response.json()
    assert api.get("/instances/nope/file?transcode=1.2.840.10008.1.2").status_code == 404
    assert api.get(url).content == data
