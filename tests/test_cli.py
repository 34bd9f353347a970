"""The installed command in a subprocess: configuration, start-up, crash recovery."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import json5

from tests.conftest import ServerProcess
from tests.dicomgen import make_dicom, make_series


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pharos.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_pharos_config_prints_a_loadable_default_configuration() -> None:
    result = run_cli("config")
    assert result.returncode == 0
    parsed = json5.loads(result.stdout)
    assert parsed["HttpPort"] == 8042
    assert parsed["StorageDirectory"] == "PharosStorage"
    assert "// " in result.stdout


def test_ill_typed_option_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text('{ // comment\n "HttpPort": "eighty" }')
    result = run_cli("serve", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "HttpPort" in result.stderr and "bad.json" in result.stderr


def test_unknown_option_is_reported_but_does_not_stop(server_factory: Any) -> None:
    server: ServerProcess = server_factory({"HttpPrt": 1})
    assert httpx.get(server.url + "/system").status_code == 200
    assert "HttpPort" in server.log()  # the suggestion


def test_serve_stores_and_reads_back(server: ServerProcess) -> None:
    data = make_dicom(rows=128, columns=128)
    answer = httpx.post(server.url + "/instances", content=data).json()
    assert answer["Status"] == "Success"
    assert httpx.get(f"{server.url}/instances/{answer['ID']}/file").content == data
    assert httpx.get(server.url + "/statistics").json()["CountInstances"] == 1


def test_acknowledged_instances_survive_a_crash_and_orphans_are_removed(
    server: ServerProcess, tmp_path: Path
) -> None:
    acknowledged = []
    for data in make_series(12, patient_id="P-CRASH"):
        acknowledged.append(
            (httpx.post(server.url + "/instances", content=data).json()["ID"], data)
        )
    server.kill()  # SIGKILL: no shutdown code runs

    storage = Path(server.workdir) / "PharosStorage"
    name = str(uuid.uuid4())
    orphan = storage / name[:2] / name[2:4] / name
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"written before a crash, never indexed")
    old = time.time() - 3600
    os.utime(orphan, (old, old))

    again = ServerProcess(server.workdir, json.loads(server.config_path.read_text()))
    again.port = server.port
    again.url = server.url
    again.config_path = server.config_path
    again.start()
    try:
        for instance, data in acknowledged:
            assert httpx.get(f"{again.url}/instances/{instance}/file").content == data
        deadline = time.monotonic() + 20
        while orphan.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # (With a shared index only files older than a grace period go; this one is old.)
        assert not orphan.exists()
    finally:
        again.stop()
