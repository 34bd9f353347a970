"""Event sinks from a plugin in a real `pharos serve` (SQLite and PostgreSQL): every change
published in order though the sink fails at first, and a restart resuming from the stored
cursor the changes a sink could not publish before the server stopped."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.conftest import Api
from tests.dicomgen import make_dicom

# Appends what it publishes to events.jsonl beside itself; fails its first two publishes in
# each process, and every publish while a file "down" is there.
SINK = """
import json
import os
from pathlib import Path

from pharos.plugins import hookimpl

HERE = Path(__file__).parent


class FileSink:
    name = "file"

    def __init__(self):
        self.calls = 0

    def publish(self, events):
        self.calls += 1
        if self.calls <= 2 or (HERE / "down").exists():
            raise ConnectionError(f"broker down (call {self.calls})")
        with open(HERE / "events.jsonl", "a") as out:
            for event in events:
                out.write(json.dumps(event) + "\\n")
            out.flush()
            os.fsync(out.fileno())


@hookimpl
def pharos_event_sinks():
    return [FileSink()]
"""


def plugin_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "sinks"
    folder.mkdir()
    (folder / "file_sink.py").write_text(SINK)
    return folder


def published(folder: Path) -> list[dict[str, Any]]:
    path = folder / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def logged(api: Api) -> list[dict[str, Any]]:
    return list(api.get("/changes", params={"limit": 1000}).json()["Changes"])


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def test_a_plugin_sink_gets_every_change_in_order_despite_failures(
    api_factory: Callable[..., Api], tmp_path: Path
) -> None:
    folder = plugin_folder(tmp_path)
    api = api_factory(Plugins=[str(folder)])
    for number in range(2):
        assert api.post("/instances", content=make_dicom(PatientID=f"P{number}")).is_success
    wait_for(lambda: len(published(folder)) >= 8)
    assert published(folder) == logged(api)  # the same JSON as /changes, each change once
    log = api.server.log()
    assert "Event sink file failed (attempt 2)" in log
    assert "broker down (call 2)" in log
    assert "Event sink file publishes again" in log


def test_a_restart_resumes_from_the_stored_cursor(
    api_factory: Callable[..., Api], tmp_path: Path
) -> None:
    folder = plugin_folder(tmp_path)
    api = api_factory(Plugins=[str(folder)])
    assert api.post("/instances", content=make_dicom(PatientID="BEFORE")).is_success
    wait_for(lambda: len(published(folder)) == 4)
    (folder / "down").touch()
    assert api.post("/instances", content=make_dicom(PatientID="DOWN")).is_success
    wait_for(lambda: "broker down (call 4)" in api.server.log())  # tried, not published
    assert len(published(folder)) == 4
    api.server.stop()
    (folder / "down").unlink()
    api.server.start(timeout=120)
    wait_for(lambda: len(published(folder)) >= 8)
    assert published(folder) == logged(api)  # nothing lost, nothing twice
