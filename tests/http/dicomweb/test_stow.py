"""STOW-RS on a real server (SQLite): instances stored through the REST store path, the
PS3.18 answer, and failed parts that leave nothing stored."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pydicom
import pytest
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import generate_uid

from tests.dicomgen import make_dataset, make_dicom
from tests.http.dicomweb.conftest import Site, shared_site

BOUNDARY = "pharos-test-boundary"
CONTENT_TYPE = f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from shared_site(tmp_path_factory.mktemp("stow"), {})


def body(*parts: tuple[str, bytes]) -> bytes:
    out = b"preamble, ignored\r\n"
    for content_type, data in parts:
        out += f"--{BOUNDARY}\r\nContent-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def count_instances(site: Site) -> int:
    return int(site.api.get("/statistics").json()["CountInstances"])


def test_store_instances_with_the_client(site: Site) -> None:
    study = generate_uid()
    datasets = [
        pydicom.dcmread(
            io.BytesIO(make_dicom(patient_id="SP1", study_uid=study, instance_number=n))
        )
        for n in range(1, 8)  # more than PARTS_IN_FLIGHT: answered in order still
    ]
    answer = site.client.store_instances(datasets)
    referenced = answer.ReferencedSOPSequence
    assert [item.ReferencedSOPInstanceUID for item in referenced] == [
        ds.SOPInstanceUID for ds in datasets
    ]
    assert all(item.ReferencedSOPClassUID == datasets[0].SOPClassUID for item in referenced)
    assert answer.RetrieveURL.endswith(f"/dicom-web/studies/{study}")
    assert referenced[0].RetrieveURL.endswith(
        f"/studies/{study}/series/{datasets[0].SeriesInstanceUID}"
        f"/instances/{datasets[0].SOPInstanceUID}"
    )
    assert "FailedSOPSequence" not in answer
    found = site.client.search_for_instances(study)
    assert len(found) == 7
    # Stored as a REST upload is (Origin "RestApi"), byte for byte.
    instance = site.api.post("/tools/lookup", content=datasets[0].SOPInstanceUID).json()
    (ref,) = [item for item in instance if item["Type"] == "Instance"]
    origin = site.api.get(f"/instances/{ref['ID']}/metadata/Origin")
    assert origin.text == "RestApi"


def test_store_into_a_given_study(site: Site) -> None:
    study = generate_uid()
    data = make_dicom(patient_id="SP2", study_uid=study)
    response = site.api.post(
        f"/dicom-web/studies/{study}",
        content=body(("application/dicom", data)),
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom+json"
    assert len(response.json()["00081199"]["Value"]) == 1


def test_some_parts_failing_is_202_and_stores_the_others(site: Site) -> None:
    before = count_instances(site)
    good = make_dicom(patient_id="SP3")
    response = site.api.post(
        "/dicom-web/studies",
        content=body(
            ("application/dicom", good),
            ("application/dicom", b"this is not DICOM"),
            ("application/pdf", b"%PDF-1.4"),
        ),
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert response.status_code == 202, response.text
    answer = response.json()
    assert len(answer["00081199"]["Value"]) == 1
    failed = answer["00081198"]["Value"]
    assert [item["00081197"]["Value"] for item in failed] == [[0xC000], [0xC000]]
    assert count_instances(site) == before + 1


def test_a_dataset_without_file_meta_is_stored_as_by_the_rest_api(site: Site) -> None:
    # No preamble, no "DICM", no file meta: implicit VR little endian, as POST /instances
    # takes it (the corpus has such files).
    ds = make_dataset(patient_id="RAW")
    raw = DicomBytesIO()
    raw.is_implicit_VR, raw.is_little_endian = True, True
    write_dataset(raw, ds)
    data = raw.getvalue()
    assert data[128:132] != b"DICM" and not data.startswith(b"\x02\x00")
    response = site.api.post(
        "/dicom-web/studies",
        content=body(("application/dicom", data)),
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert response.status_code == 200, response.text
    (stored,) = response.json()["00081199"]["Value"]
    assert stored["00081155"]["Value"] == [ds.SOPInstanceUID]


def test_nothing_stored_is_409(site: Site) -> None:
    before = count_instances(site)
    files_before = len(site.api.stored_files())
    study = generate_uid()
    other = make_dicom(patient_id="SP4", study_uid=generate_uid(), sop_uid="1.2.826.3.1")
    response = site.api.post(
        f"/dicom-web/studies/{study}",  # the instance belongs to another study
        content=body(("application/dicom", other), ("application/dicom", b"garbage")),
        headers={"Content-Type": CONTENT_TYPE},
    )
    assert response.status_code == 409, response.text
    failed = response.json()["00081198"]["Value"]
    assert failed[0]["00081155"] == {"vr": "UI", "Value": ["1.2.826.3.1"]}
    assert failed[0]["00081197"] == {"vr": "US", "Value": [0xA900]}
    assert "00081199" not in response.json()
    assert count_instances(site) == before
    assert len(site.api.stored_files()) == files_before  # no file left behind


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/dicom", 415),
        ("multipart/form-data; boundary=x", 415),
        ('multipart/related; type="application/dicom+xml"; boundary=x', 415),
        ('multipart/related; type="application/dicom"', 400),  # no boundary
    ],
)
def test_wrong_content_types(site: Site, content_type: str, status: int) -> None:
    before = count_instances(site)
    response = site.api.post(
        "/dicom-web/studies", content=make_dicom(), headers={"Content-Type": content_type}
    )
    assert response.status_code == status, response.text
    assert count_instances(site) == before


@pytest.mark.parametrize(
    "content",
    [
        b"no boundary at all",
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\nnot closed".encode(),
        f"--{BOUNDARY}--\r\n".encode(),  # no part
    ],
)
def test_malformed_bodies_are_400(site: Site, content: bytes) -> None:
    before = count_instances(site)
    response = site.api.post(
        "/dicom-web/studies", content=content, headers={"Content-Type": CONTENT_TYPE}
    )
    assert response.status_code == 400, response.text
    assert count_instances(site) == before
