"""Acceptance: every file pydicom ships and every corpus file is stored and read back
byte-identical with the right IDs and tags, or refused with a 400 that says why. No 500."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.data import get_testdata_files

from pharos.model.ids import ResourceIds
from tests.conftest import ServerProcess, corpus_files


def sample_files() -> list[Path]:
    pydicom_files = [
        Path(p)
        for p in get_testdata_files()
        if Path(p).is_file() and not p.endswith((".json", ".txt"))
    ]
    return sorted(set(pydicom_files)) + corpus_files()


def expected_identifiers(data: bytes) -> ResourceIds | None:
    """IDs from pydicom's reading of the file; None when pydicom cannot read it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        values = [
            str(ds.get(k, "") or "").strip()
            for k in ("PatientID", "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
        ]
    except Exception:
        return None
    return ResourceIds.compute(*values)


def test_every_sample_file_is_stored_or_refused_clearly(server: ServerProcess) -> None:
    stored = refused = 0
    problems: list[str] = []
    first_stored: dict[str, bytes] = {}
    with httpx.Client(base_url=server.url, timeout=60) as client:
        for path in sample_files():
            data = path.read_bytes()
            response = client.post("/instances", content=data)
            name = path.name
            if response.status_code == 400:
                details = response.json().get("Details", "")
                if not details:
                    problems.append(f"{name}: 400 without details")
                refused += 1
                continue
            if response.status_code != 200:
                problems.append(f"{name}: HTTP {response.status_code} {response.text[:200]}")
                continue
            answer = response.json()
            if isinstance(answer, list):  # a zip in pydicom's data would be odd, but allowed
                continue
            stored += 1
            instance = answer["ID"]
            # Several sample files share their UIDs: the first one stored is kept.
            first = first_stored.setdefault(instance, data)
            if client.get(f"/instances/{instance}/file").content != first:
                problems.append(f"{name}: file read back differs")
            expected = expected_identifiers(data)
            if (
                expected is not None
                and answer["Status"] == "Success"
                and expected.instance != instance
            ):
                problems.append(
                    f"{name}: ID {instance} but pydicom's identifiers give {expected.instance}"
                )
            info = client.get(f"/instances/{instance}")
            if info.status_code != 200:
                problems.append(f"{name}: GET instance {info.status_code}")
            tags = info.json().get("MainDicomTags", {})
            if not tags.get("SOPInstanceUID"):
                problems.append(f"{name}: no SOPInstanceUID in MainDicomTags")
            for route in ("tags", "tags?simplify", "header", "frames", "content"):
                # A file with an invalid value (e.g. NumberOfFrames "1A") gets a clear 400.
                reply = client.get(f"/instances/{instance}/{route}")
                clear_refusal = reply.status_code == 400 and reply.json().get("Details")
                if reply.status_code != 200 and not clear_refusal:
                    problems.append(f"{name}: /{route} gives HTTP {reply.status_code}")
            shown = client.get(f"/instances/{instance}/tags?short").json()
            if answer["Status"] == "Success" and shown.get("0008,0018") != tags["SOPInstanceUID"]:
                problems.append(f"{name}: /tags and MainDicomTags disagree on SOPInstanceUID")
    assert problems == [], "\n".join(problems)
    assert stored > 50
    print(f"stored {stored}, refused {refused}")


@pytest.mark.corpus
def test_deeply_nested_sequence_is_refused(server: ServerProcess) -> None:
    path = next((p for p in corpus_files() if "Deeply-Nested" in p.name), None)
    if path is None:
        pytest.skip("corpus not available")
    response = httpx.post(server.url + "/instances", content=path.read_bytes(), timeout=60)
    assert response.status_code == 400
    assert "nest" in response.json()["Details"].lower()
