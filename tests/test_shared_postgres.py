"""Two Pharos processes on one PostgreSQL database and one storage folder."""

from __future__ import annotations

import io
import random
import threading
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.uid import generate_uid

from pharos.model.ids import ResourceIds
from tests.conftest import PostgresDatabases, ServerProcess
from tests.dicomgen import make_series


@pytest.mark.postgres
def test_same_study_sent_to_two_processes_at_once(
    postgres_databases: PostgresDatabases, tmp_path: Path
) -> None:
    config: dict[str, Any] = {
        "PostgreSQL": postgres_databases.create(),
        "StorageDirectory": str(tmp_path / "shared-storage"),
    }
    servers = [ServerProcess(tmp_path, config).start() for _ in range(2)]
    try:
        study_uid = generate_uid()  # one study, two series of 20
        study = make_series(20, patient_id="P-SHARED", study_uid=study_uid) + make_series(
            20, patient_id="P-SHARED", study_uid=study_uid
        )
        statuses: list[str] = []
        errors: list[str] = []

        def send(server: ServerProcess, order: list[bytes]) -> None:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                for data in order:
                    response = client.post("/instances", content=data)
                    if response.status_code != 200:
                        errors.append(response.text)
                    else:
                        statuses.append(response.json()["Status"])

        threads = []
        for server in servers:
            for seed in range(2):  # two clients per process, each with the whole study
                order = list(study)
                random.Random(seed + server.port).shuffle(order)
                threads.append(threading.Thread(target=send, args=(server, order)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert errors == []
        assert statuses.count("Success") == 40
        assert statuses.count("AlreadyStored") == 120
        for server in servers:
            stats = httpx.get(server.url + "/statistics").json()
            assert (stats["CountPatients"], stats["CountStudies"]) == (1, 1)
            assert (stats["CountSeries"], stats["CountInstances"]) == (2, 40)
        expected = {_ids(data).instance for data in study}
        assert set(httpx.get(servers[0].url + "/instances").json()) == expected
        for data in study[:5]:
            instance = _ids(data).instance
            assert httpx.get(f"{servers[1].url}/instances/{instance}/file").content == data
        files = [p for p in (tmp_path / "shared-storage").rglob("*") if p.is_file()]
        assert len(files) == 40
        changes = httpx.get(servers[0].url + "/changes", params={"limit": 1000}).json()["Changes"]
        kinds = [c["ChangeType"] for c in changes]
        assert kinds.count("NewInstance") == 40
        assert kinds.count("NewSeries") == 2
        assert kinds.count("NewStudy") == 1
        assert kinds.count("NewPatient") == 1
    finally:
        for server in servers:
            server.stop()


def _ids(data: bytes) -> ResourceIds:
    ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    return ResourceIds.compute(
        str(ds.PatientID),
        str(ds.StudyInstanceUID),
        str(ds.SeriesInstanceUID),
        str(ds.SOPInstanceUID),
    )
