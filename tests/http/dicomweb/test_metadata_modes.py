"""WADO-RS metadata of studies and series in the "MainDicomTags" and "Extrapolate" modes
(DicomWeb.StudiesMetadata / SeriesMetadata), on both index backends; instance metadata stays
"Full"."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dicomgen import make_dicom
from tests.http.dicomweb.conftest import Site, shared_site

STUDY = "1.2.826.5.1"
SERIES = STUDY + ".1"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    config: dict[str, Any] = {
        "DicomWeb": {
            "StudiesMetadata": "MainDicomTags",
            "SeriesMetadata": "Extrapolate",
            "SeriesMetadataExtrapolatedTags": ["PixelSpacing", "0018,0050", "Manufacturer"],
        }
    }
    if request.param == "postgres":
        config["PostgreSQL"] = request.getfixturevalue("postgres_databases").create()
    for found in shared_site(tmp_path_factory.mktemp("modes"), config):
        for number in (1, 2, 3, 4):
            found.upload(
                make_dicom(
                    patient_id="MM1",
                    study_uid=STUDY,
                    series_uid=SERIES,
                    sop_uid=f"{SERIES}.{number}",
                    instance_number=number,
                    Manufacturer="Pharos" if number != 4 else "Other",
                    Rows=16,
                )
            )
        yield found


def by_sop(answers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {answer["00080018"]["Value"][0]: answer for answer in answers}


def test_study_metadata_from_the_index(site: Site) -> None:
    answers = by_sop(site.client.retrieve_study_metadata(STUDY))
    assert sorted(answers) == [f"{SERIES}.{n}" for n in (1, 2, 3, 4)]
    first = answers[f"{SERIES}.1"]
    assert first["00100020"] == {"vr": "LO", "Value": ["MM1"]}  # patient
    assert first["0020000D"] == {"vr": "UI", "Value": [STUDY]}  # study
    assert first["00080060"] == {"vr": "CS", "Value": ["CT"]}  # series
    assert first["00200013"] == {"vr": "IS", "Value": [1]}  # instance
    assert first["00080016"]["Value"] == ["1.2.840.10008.5.1.4.1.1.2"]  # SOP class
    assert "00280030" not in first  # PixelSpacing: not a main tag, no file read
    assert "00280010" not in first  # Rows
    assert list(first) == sorted(first)


def test_series_metadata_extrapolated(site: Site) -> None:
    answers = by_sop(site.client.retrieve_series_metadata(STUDY, SERIES))
    for answer in answers.values():
        assert answer["00280030"] == {"vr": "DS", "Value": [0.5, 0.5]}
        assert answer["00180050"] == {"vr": "DS", "Value": [1]}
        assert "00280010" not in answer  # not asked for
    # The value most of the sampled instances have (3 "Pharos" out of 4, sampled 3).
    manufacturers = {answer["00080070"]["Value"][0] for answer in answers.values()}
    assert len(manufacturers) == 1


def test_instance_metadata_stays_full(site: Site) -> None:
    instance = site.client.retrieve_instance_metadata(STUDY, SERIES, f"{SERIES}.1")
    assert instance["00280010"] == {"vr": "US", "Value": [16]}
    assert instance["00280030"] == {"vr": "DS", "Value": [0.5, 0.5]}


def test_bad_mode_stops_the_start_up(server_factory: Any, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"DicomWeb\.StudiesMetadata"):
        server_factory({"DicomWeb": {"StudiesMetadata": "Partial"}}, tmp_path)
    with pytest.raises(RuntimeError, match=r"SeriesMetadataExtrapolatedTags"):
        server_factory({"DicomWeb": {"SeriesMetadataExtrapolatedTags": ["NoSuchTag"]}}, tmp_path)
