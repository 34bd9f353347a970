"""IngestTranscoding (and its companions) on every way in, and ReconstructFiles: the stored file
in the configured syntax, its identity kept (lossless) or renewed (lossy, as Orthanc), the
file stored as received when it cannot be transcoded, on both index backends."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from pharos.index.base import DICOM_CONTENT_TYPE, Reception
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.deletion import DeletionService
from pharos.services.files import FileService
from pharos.services.options import ServiceOptions
from pharos.services.resources import ResourceService
from pharos.services.store import StoreService
from pharos.storage.filesystem import FileSystemStorage
from tests.conftest import Api
from tests.dicom.imagegen import image_dataset, ramp, stored_bytes
from tests.dicomgen import make_dataset, make_dicom, roundtrip, to_bytes
from tests.dimse.peers import requires_dcmtk, storescu

EXPLICIT = "1.2.840.10008.1.2.1"
IMPLICIT = "1.2.840.10008.1.2"
RLE = "1.2.840.10008.1.2.5"
J2K_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_LOSSLESS = "1.2.840.10008.1.2.4.70"
REST = Reception("RestApi", "", "127.0.0.1")


def read(content: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(content))


def stored_syntax(api: Api, instance: str) -> str:
    syntax = api.get(f"/instances/{instance}/metadata/TransferSyntax").text
    assert read(api.get(f"/instances/{instance}/file").content).file_meta.TransferSyntaxUID == (
        syntax
    )
    return syntax


def restart(api: Api, **config: object) -> None:
    """The same server (same storage and index) started again with other options."""
    server = api.server
    server.stop()
    server.config.update(config)
    server.config_path.write_text(json.dumps(server.config))
    server.start()


def test_rest_upload_is_transcoded_losslessly(api_factory: Any) -> None:
    api = api_factory(IngestTranscoding=J2K_LOSSLESS)
    data = make_dicom(rows=48, columns=40, patient_id="P-INGEST")
    original = read(data)
    answer = api.post("/instances", content=data).json()
    assert answer["Status"] == "Success"
    instance = answer["ID"]
    assert stored_syntax(api, instance) == J2K_LOSSLESS
    stored = read(api.get(f"/instances/{instance}/file").content)
    assert stored.SOPInstanceUID == original.SOPInstanceUID  # the same instance
    assert np.array_equal(stored.pixel_array, original.pixel_array)
    assert api.get(f"/instances/{instance}/attachments/dicom/size").text == str(
        len(api.get(f"/instances/{instance}/file").content)
    )
    # Sent again: already stored, still one instance.
    assert api.post("/instances", content=data).json()["Status"] == "AlreadyStored"
    assert api.get("/instances").json() == [instance]

    # An image that cannot be decoded (a broken JPEG codestream): stored as received.
    broken = broken_jpeg()
    broken_answer = api.post("/instances", content=broken).json()
    assert broken_answer["Status"] == "Success"
    assert stored_syntax(api, broken_answer["ID"]) == JPEG_LOSSLESS
    assert api.get(f"/instances/{broken_answer['ID']}/file").content == broken
    assert "stored as received" in api.server.log()


def broken_jpeg(**tags: Any) -> bytes:
    """A JPEG lossless file whose codestream no decoder can read (structure intact)."""
    pixels = ramp((32, 32), np.uint16, 0, 4095)
    garbage = b"\xff\xd8\xff\xc3 not a JPEG codestream \xff\xd9"
    return stored_bytes(
        image_dataset(pixels, syntax=JPEG_LOSSLESS, bits_stored=12, encoded=[garbage], **tags)
    )


def test_lossy_ingest_makes_a_new_instance(api_factory: Any) -> None:
    api = api_factory(IngestTranscoding=JPEG_BASELINE, DicomLossyTranscodingQuality=80)
    ds = image_dataset(ramp((64, 64), np.uint8, 0, 255), ImageType=["ORIGINAL", "PRIMARY"])
    answer = api.post("/instances", content=stored_bytes(ds)).json()
    assert stored_syntax(api, answer["ID"]) == JPEG_BASELINE
    tags = api.get(f"/instances/{answer['ID']}/simplified-tags").json()
    assert tags["SOPInstanceUID"] != ds.SOPInstanceUID  # as Orthanc warns in its docs
    assert tags["LossyImageCompression"] == "01"
    assert tags["LossyImageCompressionMethod"] == "ISO_10918_1"
    assert tags["ImageType"].startswith("DERIVED")
    # 16-bit data cannot go to JPEG baseline: kept as it came.
    ct = api.post("/instances", content=make_dicom(rows=32, columns=32)).json()
    assert stored_syntax(api, ct["ID"]) == EXPLICIT


def test_uncompressed_and_compressed_switches(api_factory: Any) -> None:
    api = api_factory(
        IngestTranscoding=EXPLICIT,
        IngestTranscodingOfUncompressed=False,
        IngestTranscodingOfCompressed=True,
    )
    implicit = to_bytes(roundtrip(make_dataset(patient_id="P-IMPLICIT"), IMPLICIT))
    rle_ds = make_dataset(patient_id="P-RLE", rows=32, columns=32)
    rle_ds.compress(RLE, generate_instance_uid=False, encoding_plugin="pylibjpeg")
    ids = [api.post("/instances", content=x).json()["ID"] for x in (implicit, to_bytes(rle_ds))]
    assert stored_syntax(api, ids[0]) == IMPLICIT  # uncompressed: left alone
    assert stored_syntax(api, ids[1]) == EXPLICIT  # compressed: decompressed


def test_bad_ingest_options_stop_start_up(server_factory: Any, tmp_path: Path) -> None:
    cases = [
        ({"IngestTranscoding": "1.2.3"}, "IngestTranscoding: Unknown transfer syntax"),
        (
            {"IngestTranscoding": "1.2.840.10008.1.2.4.201"},
            "IngestTranscoding: Cannot transcode to High-Throughput JPEG 2000",
        ),
        ({"DicomLossyTranscodingQuality": 0}, "between 1 and 100"),
    ]
    for number, (config, reason) in enumerate(cases):
        workdir = tmp_path / f"bad{number}"
        workdir.mkdir()
        with pytest.raises(RuntimeError, match=reason):
            server_factory(config, workdir)


@requires_dcmtk
def test_c_store_is_transcoded(api_factory: Any, tmp_path: Path) -> None:
    api = api_factory(IngestTranscoding=RLE)
    path = tmp_path / "ct.dcm"
    path.write_bytes(make_dicom(rows=32, columns=30, patient_id="P-CSTORE"))
    result = storescu(api, [path])
    assert result.returncode == 0, result.stdout
    (instance,) = api.get("/instances").json()
    assert stored_syntax(api, instance) == RLE
    stored = read(api.get(f"/instances/{instance}/file").content)
    assert np.array_equal(stored.pixel_array, read(path.read_bytes()).pixel_array)


def test_reconstruct_files(api: Api) -> None:
    data = [
        make_dicom(rows=40, columns=36, patient_id="P-RECON", study_uid="1.2.9", seed=n)
        for n in range(2)
    ]
    broken = broken_jpeg(patient_id="P-RECON-BROKEN")
    ids = [api.post("/instances", content=x).json()["ID"] for x in (*data, broken)]
    before = {path.name for path in api.stored_files()}
    study = api.get(f"/instances/{ids[0]}/study").json()["ID"]

    # Without transcoding: the files are written again (new files), the same bytes.
    response = api.post(f"/studies/{study}/reconstruct", json={"ReconstructFiles": True})
    assert (response.status_code, response.text) == (200, "")
    after = {path.name for path in api.stored_files()}
    assert len(after) == 3 and len(after & before) == 1  # the broken one: in another study
    assert [api.get(f"/instances/{i}/file").content for i in ids] == [*data, broken]

    # With IngestTranscoding set since: every file goes to that syntax, identities kept.
    restart(api, IngestTranscoding=J2K_LOSSLESS, StorageCompression=True)
    response = api.post("/tools/reconstruct", json={"ReconstructFiles": True})
    assert (response.status_code, response.text) == (200, "")
    assert sorted(api.get("/instances").json()) == sorted(ids)
    for instance, original in zip(ids[:2], data, strict=True):
        assert stored_syntax(api, instance) == J2K_LOSSLESS
        stored = read(api.get(f"/instances/{instance}/file").content)
        assert stored.SOPInstanceUID == read(original).SOPInstanceUID
        assert np.array_equal(stored.pixel_array, read(original).pixel_array)
        assert api.get(f"/instances/{instance}/attachments/dicom/is-compressed").text == "1"
        assert api.post(f"/instances/{instance}/attachments/dicom/verify-md5").status_code == 200
    assert stored_syntax(api, ids[2]) == JPEG_LOSSLESS  # undecodable: as it was
    assert api.get(f"/instances/{ids[2]}/file").content == broken
    assert len(api.stored_files()) == 3  # the replaced files are gone
    found = api.post("/tools/find", json={"Level": "Patient", "Query": {"PatientID": "P-RECON"}})
    assert len(found.json()) == 1


def test_reconstruct_files_refusals(api: Api) -> None:
    instance = api.post("/instances", content=make_dicom()).json()["ID"]
    files = api.stored_files()
    for body, status in (
        ({"ReconstructFiles": "yes"}, 400),
        ([1], 400),
    ):
        response = api.post(f"/instances/{instance}/reconstruct", json=body)
        assert response.status_code == status, response.text
    assert api.post("/instances/nope/reconstruct", json={"ReconstructFiles": True}).status_code == (
        404
    )
    assert api.stored_files() == files


class FailingStorage(FileSystemStorage):
    """A storage area whose writes fail (a full disk)."""

    def create(self, uuid: str, data: bytes) -> None:
        raise OSError(28, "No space left on device")


@pytest.fixture
def services(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Services]:
    if backend == "sqlite":
        index = open_sqlite_index(tmp_path)
    else:
        section = request.getfixturevalue("postgres_databases").create()
        index = open_postgres_index(postgres_url(section))
    storage = FileSystemStorage(tmp_path / "storage", fsync=False)
    options = ServiceOptions(ingest_transcoding=RLE)
    store = StoreService(index, storage, options)
    yield Services(index, storage, store, options, tmp_path / "storage")
    store.close()
    index.close()


@dataclass
class Services:
    index: SqlIndex
    storage: FileSystemStorage
    store: StoreService
    options: ServiceOptions
    storage_dir: Path

    def files(self) -> list[str]:
        return sorted(p.name for p in self.storage_dir.glob("??/??/*") if len(p.name) == 36)


def test_rewrite_failures_change_nothing(services: Services) -> None:
    result = services.store.store(make_dicom(rows=32, columns=32), REST)
    ref = ResourceService(services.index).resolve(Level.INSTANCE, result.ids.instance)
    files = FileService(services.index, services.storage)
    data = files.read_dicom(ref)
    before = (services.index.attachment(ref, DICOM_CONTENT_TYPE), services.files())

    # The new file cannot be written: the index still points at the old one.
    failing = StoreService(
        services.index, FailingStorage(services.storage_dir, fsync=False), services.options
    )
    with pytest.raises(OSError, match="No space left"):
        failing.rewrite(ref, data)
    failing.close()
    assert (services.index.attachment(ref, DICOM_CONTENT_TYPE), services.files()) == before

    # The instance is deleted while its file is re-written: the new file does not stay.
    DeletionService(services.index, services.storage).delete(ref)
    with pytest.raises(PharosError) as error:
        services.store.rewrite(ref, data)
    assert error.value.code is ErrorCode.UNKNOWN_RESOURCE
    assert services.files() == []
