"""Two Pharos processes on one PostgreSQL database: the plugins' change and stability
listeners and a plugin's event sink hear each change once in all, from one process."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PostgresDatabases, ServerProcess
from tests.dicomgen import make_dicom

# Both processes load this file; each appends what it hears (one short line per write, with
# O_APPEND: lines of both processes never interleave).
LISTENER = """
import json
import os
from pathlib import Path

from pharos.plugins import hookimpl

OUT = Path(__file__).parent / "heard.jsonl"


def write(record):
    record["Pid"] = os.getpid()
    with open(OUT, "a") as out:
        out.write(json.dumps(record) + "\\n")


class Sink:
    name = "shared"

    def publish(self, events):
        for event in events:
            write({"Hook": "sink", "Seq": event["Seq"]})


@hookimpl
def pharos_on_change(change):
    write({"Hook": "change", "Seq": change["Seq"], "Type": change["ChangeType"]})


@hookimpl
def pharos_on_stable(level, resource_id):
    write({"Hook": "stable", "Level": level, "ID": resource_id})


@hookimpl
def pharos_event_sinks():
    return [Sink()]
"""


def heard(folder: Path) -> list[dict[str, Any]]:
    path = folder / "heard.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def wait_for(condition: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


@pytest.mark.postgres
def test_listeners_and_sinks_hear_each_change_once(
    postgres_databases: PostgresDatabases, tmp_path: Path
) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "listener.py").write_text(LISTENER)
    config: dict[str, Any] = {
        "PostgreSQL": postgres_databases.create(),
        "StorageDirectory": str(tmp_path / "shared-storage"),
        "Plugins": [str(plugins)],
        "StableAge": 1,
    }
    servers = [ServerProcess(tmp_path, config).start(timeout=120) for _ in range(2)]
    try:
        for number, server in enumerate(servers * 2):
            data = make_dicom(PatientID=f"P{number}")
            assert httpx.post(server.url + "/instances", content=data, timeout=60).is_success
        # 4 changes per instance, then 3 stable resources each (one patient per instance).
        wait_for(lambda: sum(r["Hook"] == "stable" for r in heard(plugins)) >= 12)
        changes = httpx.get(servers[0].url + "/changes", params={"limit": 1000}).json()
        seqs = [change["Seq"] for change in changes["Changes"]]
        assert len(seqs) == 4 * 4 + 4 * 3
        wait_for(lambda: sum(r["Hook"] == "sink" for r in heard(plugins)) >= len(seqs))
        wait_for(lambda: sum(r["Hook"] == "change" for r in heard(plugins)) >= len(seqs))
        time.sleep(1)  # a second telling, if any, would show up now
    finally:
        for server in servers:
            server.stop()
    records = heard(plugins)
    for hook in ("change", "sink"):
        assert sorted(r["Seq"] for r in records if r["Hook"] == hook) == seqs, hook
    stable = [(r["Level"], r["ID"]) for r in records if r["Hook"] == "stable"]
    assert len(stable) == len(set(stable)) == 12
