"""WADO-RS on a real server (SQLite): studies, series and instances as multipart DICOM (as
stored, or transcoded when the Accept header asks), and their metadata in the DICOM JSON
model, cached as an internal attachment."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pydicom
import pytest
from PIL import Image
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import ImplicitVRLittleEndian, RLELossless

from pharos.model.ids import ResourceIds
from tests.dicomgen import make_dataset, make_dicom
from tests.http.dicomweb.conftest import Site, shared_site

STUDY = "1.2.826.2.1"
SERIES = STUDY + ".1"
OTHER_SERIES = STUDY + ".2"
MULTIPART_DICOM = 'multipart/related; type="application/dicom"'


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    for found in shared_site(tmp_path_factory.mktemp("wado"), {}):
        found.files = {}  # type: ignore[attr-defined]
        for number in range(1, 4):
            data = make_dicom(
                patient_id="WP1",
                patient_name="Müller^Jürgen=山田^太郎",
                study_uid=STUDY,
                series_uid=SERIES if number < 3 else OTHER_SERIES,
                sop_uid=f"{STUDY}.{number}",
                instance_number=number,
                StudyDescription="Wado",
                SpecificCharacterSet=["ISO_IR 192"],
            )
            found.files[f"{STUDY}.{number}"] = data  # type: ignore[attr-defined]
            found.upload(data)
        yield found


def files(site: Site) -> dict[str, bytes]:
    return site.files  # type: ignore[attr-defined, no-any-return]


def test_retrieve_study_series_and_instance_as_stored(site: Site) -> None:
    study = site.client.retrieve_study(STUDY)
    assert sorted(ds.SOPInstanceUID for ds in study) == sorted(files(site))
    series = site.client.retrieve_series(STUDY, SERIES)
    assert [ds.SOPInstanceUID for ds in series] == [f"{STUDY}.1", f"{STUDY}.2"]
    one = site.client.retrieve_instance(STUDY, SERIES, f"{STUDY}.1")
    assert one.SOPInstanceUID == f"{STUDY}.1"
    # The stored bytes, unchanged, with "transfer-syntax=*".
    response = site.api.get(
        f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{STUDY}.1",
        headers={"Accept": MULTIPART_DICOM + "; transfer-syntax=*"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(MULTIPART_DICOM)
    assert files(site)[f"{STUDY}.1"] in response.content


def test_retrieve_with_an_explicit_transfer_syntax_transcodes(site: Site) -> None:
    (dataset,) = site.client.retrieve_series(
        STUDY, OTHER_SERIES, media_types=(("application/dicom", RLELossless),)
    )
    assert dataset.file_meta.TransferSyntaxUID == RLELossless
    original = pydicom.dcmread(io.BytesIO(files(site)[f"{STUDY}.3"]))
    assert (dataset.pixel_array == original.pixel_array).all()
    # An uncompressed one the client library does not offer, by hand.
    response = site.api.get(
        f"/dicom-web/studies/{STUDY}/series/{OTHER_SERIES}",
        headers={"Accept": f"{MULTIPART_DICOM}; transfer-syntax={ImplicitVRLittleEndian}"},
    )
    assert response.status_code == 200
    part_type = f"Content-Type: application/dicom; transfer-syntax={ImplicitVRLittleEndian}"
    assert part_type.encode() in response.content
    start = response.content.index(b"\r\n\r\n") + 4
    end = response.content.rindex(b"\r\n--")
    converted = pydicom.dcmread(io.BytesIO(response.content[start:end]))
    assert converted.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert converted.PixelData == original.PixelData


@pytest.mark.parametrize(
    "accept",
    [
        MULTIPART_DICOM + "; transfer-syntax=1.2.3.4",  # not a transfer syntax
        "application/dicom+json",  # not DICOM files
        'multipart/related; type="image/jpeg"',
    ],
)
def test_unacceptable_media_types_are_406(site: Site, accept: str) -> None:
    response = site.api.get(f"/dicom-web/studies/{STUDY}", headers={"Accept": accept})
    assert response.status_code == 406, response.text


def test_unknown_and_malformed_uids(site: Site) -> None:
    for path in (
        "/dicom-web/studies/1.2.999",
        f"/dicom-web/studies/{STUDY}/series/1.2.999",
        f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{STUDY}.3",  # other series
        "/dicom-web/studies/1.2.999/metadata",
    ):
        assert site.api.get(path).status_code == 404, path
    assert site.api.get("/dicom-web/studies/1.2.x*/metadata").status_code == 400


def attributes(answer: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["00080018"]["Value"][0]: item for item in answer}


def test_metadata_follows_the_json_model(site: Site) -> None:
    metadata = site.client.retrieve_instance_metadata(STUDY, SERIES, f"{STUDY}.1")
    assert metadata["00100010"] == {
        "vr": "PN",
        "Value": [{"Alphabetic": "Müller^Jürgen", "Ideographic": "山田^太郎"}],
    }
    assert metadata["00280010"] == {"vr": "US", "Value": [16]}  # Rows: a number
    assert metadata["00200013"] == {"vr": "IS", "Value": [1]}  # IS: a number
    assert metadata["00280030"] == {"vr": "DS", "Value": [0.5, 0.5]}  # DS: numbers
    pixels = metadata.pop("7FE00010")  # native Pixel Data: bulk data (as Orthanc's plugin)
    assert set(pixels) == {"vr", "BulkDataURI"}
    assert pixels["BulkDataURI"].endswith(f"/instances/{STUDY}.1/bulk/7FE00010")
    assert list(metadata) == sorted(metadata)
    for node in metadata.values():
        assert set(node) <= {"vr", "Value", "InlineBinary", "BulkDataURI"}
        assert "BulkDataURI" not in node


def test_series_and_study_metadata(site: Site) -> None:
    series = site.client.retrieve_series_metadata(STUDY, SERIES)
    assert sorted(attributes(series)) == [f"{STUDY}.1", f"{STUDY}.2"]
    study = site.client.retrieve_study_metadata(STUDY)
    assert sorted(attributes(study)) == sorted(files(site))
    response = site.api.get(f"/dicom-web/studies/{STUDY}/metadata")
    assert response.headers["content-type"] == "application/dicom+json"
    xml = site.api.get(
        f"/dicom-web/studies/{STUDY}/metadata", headers={"Accept": "application/dicom+xml"}
    )
    assert xml.status_code == 200 and xml.content.count(b"<NativeDicomModel>") == 3
    refused = site.api.get(f"/dicom-web/studies/{STUDY}/metadata", headers={"Accept": "text/xml"})
    assert refused.status_code == 406


def test_metadata_is_cached_as_an_internal_attachment(site: Site) -> None:
    path = f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{STUDY}.2/metadata"
    first = site.api.get(path)
    before = len(site.api.stored_files())
    second = site.api.get(path)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert len(site.api.stored_files()) == before  # nothing new: read from the cache
    instance = ResourceIds.compute("WP1", STUDY, SERIES, f"{STUDY}.2").instance
    response = site.api.get(f"/instances/{instance}/attachments")
    assert response.json() == ["dicom"], response.text
    # Deleting the instance deletes its cached metadata with it.
    files_before = len(site.api.stored_files())
    assert site.api.delete(f"/instances/{instance}").status_code == 200
    assert len(site.api.stored_files()) == files_before - 2
    assert site.api.get(path).status_code == 404
    site.upload(files(site)[f"{STUDY}.2"])  # as it was, for the other tests
    assert site.api.get(path).json() == first.json()


def test_series_metadata_follows_the_instances_of_the_series(site: Site) -> None:
    def series_uids() -> list[str]:
        answer = site.client.retrieve_series_metadata(STUDY, OTHER_SERIES)
        return sorted(attributes(answer))

    assert series_uids() == [f"{STUDY}.3"]  # now cached whole on the series
    added = make_dicom(
        patient_id="WP1",
        study_uid=STUDY,
        series_uid=OTHER_SERIES,
        sop_uid=f"{STUDY}.4",
        instance_number=4,
    )
    answer = site.upload(added)
    assert series_uids() == [f"{STUDY}.3", f"{STUDY}.4"]
    assert site.api.delete(f"/instances/{answer['ID']}").status_code == 200
    assert series_uids() == [f"{STUDY}.3"]
    series_id = ResourceIds.compute("WP1", STUDY, OTHER_SERIES, "").series
    assert site.api.get(f"/series/{series_id}/attachments").json() == []


def test_thumbnails(site: Site) -> None:
    for path in (
        f"/dicom-web/studies/{STUDY}/thumbnail",
        f"/dicom-web/studies/{STUDY}/series/{SERIES}/thumbnail",
        f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{STUDY}.1/thumbnail",
    ):
        response = site.api.get(path, headers={"Accept": "image/jpeg"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/jpeg"
        assert response.content[:2] == b"\xff\xd8"
    assert site.api.get("/dicom-web/studies/1.2.999/thumbnail").status_code == 404


def test_thumbnails_as_png_and_in_a_viewport(site: Site) -> None:
    series = f"/dicom-web/studies/{STUDY}/series/{SERIES}"
    png = site.api.get(f"{series}/thumbnail", headers={"Accept": "image/png"})
    assert png.status_code == 200, png.text
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (16, 16)  # never enlarged
    # The same instance as the cached JPEG: the series' middle one (number 1 of 1, 2).
    instance = site.api.get(
        f"{series}/instances/{STUDY}.1/thumbnail", headers={"Accept": "image/png"}
    )
    assert instance.content == png.content
    for accept in ("image/jpeg", "image/png"):
        sized = site.api.get(f"{series}/thumbnail?viewport=64,32", headers={"Accept": accept})
        assert sized.status_code == 200, sized.text
        assert sized.headers["content-type"] == accept
        assert Image.open(io.BytesIO(sized.content)).size == (32, 32)
    for query in ("viewport=0,10", "viewport=10", "window=40", "quality=101"):
        bad = site.api.get(f"{series}/thumbnail?{query}")
        assert bad.status_code == 400, query
    refused = site.api.get(f"{series}/thumbnail", headers={"Accept": "image/gif"})
    assert refused.status_code == 406


def test_rendered_instance_and_frame(site: Site) -> None:
    base = f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{STUDY}.1"
    jpeg = site.api.get(f"{base}/rendered")
    assert jpeg.status_code == 200, jpeg.text
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(jpeg.content)).size == (16, 16)
    png = site.api.get(f"{base}/frames/1/rendered?viewport=8,8", headers={"Accept": "image/png"})
    assert png.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(png.content)).size == (8, 8)
    narrow = site.api.get(f"{base}/rendered?window=0,1", headers={"Accept": "image/png"})
    wide = site.api.get(f"{base}/rendered?window=0,100000", headers={"Accept": "image/png"})
    assert narrow.status_code == wide.status_code == 200
    assert narrow.content != wide.content
    # The client library sees the same image.
    rendered = site.client.retrieve_instance_rendered(
        STUDY, SERIES, f"{STUDY}.1", media_types=("image/png",)
    )
    assert Image.open(io.BytesIO(rendered)).size == (16, 16)


@pytest.mark.parametrize(
    ("suffix", "accept", "status"),
    [
        ("rendered?viewport=0,8", None, 400),
        ("rendered?viewport=8,8,0,0,4,4", None, 400),
        ("rendered?window=40", None, 400),
        ("rendered?window=40,400,SIGMOID", None, 400),
        ("rendered?quality=101", None, 400),
        ("frames/0/rendered", None, 400),
        ("rendered", "image/gif", 406),
    ],
)
def test_bad_rendering_requests(site: Site, suffix: str, accept: str | None, status: int) -> None:
    base = f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{STUDY}.1"
    headers = {"Accept": accept} if accept else {}
    response = site.api.get(f"{base}/{suffix}", headers=headers)
    assert response.status_code == status, response.text


def test_rendering_a_frame_the_instance_lacks(site: Site) -> None:
    base = f"/dicom-web/studies/{STUDY}/series/{SERIES}/instances/{STUDY}.1"
    response = site.api.get(f"{base}/frames/2/rendered")
    assert response.status_code == 400, response.text
    assert "no frame 2" in response.json()["Details"]


def test_a_file_stored_without_file_meta_is_sent_as_a_part10_file(site: Site) -> None:
    # POST /instances keeps a bare dataset (no preamble, no file meta) as received; DICOMweb
    # sends PS3.10 files, so the retrieved one gets its file meta (Implicit VR here).
    study, series, sop = "1.2.826.2.9", "1.2.826.2.9.1", "1.2.826.2.9.1.1"
    ds = make_dataset(study_uid=study, series_uid=series, sop_uid=sop)
    raw = DicomBytesIO()
    raw.is_implicit_VR, raw.is_little_endian = True, True
    write_dataset(raw, ds)
    site.upload(raw.getvalue())
    retrieved = site.client.retrieve_instance(study, series, sop)
    assert retrieved.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    assert retrieved.file_meta.MediaStorageSOPInstanceUID == sop
    assert retrieved.PatientName == ds.PatientName
    explicit = site.client.retrieve_instance(
        study, series, sop, media_types=(("application/dicom", "1.2.840.10008.1.2.1"),)
    )
    assert explicit.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    wado = site.api.get(
        "/wado",
        params={"requestType": "WADO", "studyUID": study, "seriesUID": series,
                "objectUID": sop, "contentType": "application/dicom"},
    )  # fmt: skip
    assert wado.status_code == 200 and wado.content[128:132] == b"DICM"
