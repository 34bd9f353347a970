"""`pharos import` end to end: into real `pharos serve` processes and into the local store."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pharos.importer.outcomes import ServerGone
from pharos.importer.run import import_entries, run_import
from pharos.importer.senders import HttpSender
from pharos.importer.stats import ImportStats
from tests.conftest import ServerProcess, free_port
from tests.importer.trees import dicom, mixed_tree, write

MIXED_COUNTS = "skipped: 4 (2 not DICOM, 1 DICOMDIR, 1 empty), failed: 1"


def run(*paths: Path | str, **kwargs: Any) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run_import([str(p) for p in paths], out=out, err=err, **kwargs)
    return code, out.getvalue(), err.getvalue()


def count_instances(url: str, **kwargs: Any) -> int:
    return int(httpx.get(url + "/statistics", **kwargs).json()["CountInstances"])


def good_files(folder: Path, count: int) -> Path:
    for i in range(count):
        write(folder / f"{i}.dcm", dicom(seed=i))
    return folder


# --- into a running server ----------------------------------------------------------------


def test_import_into_a_server_reports_every_outcome(server: ServerProcess, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    mixed_tree(tree)

    code, out, err = run(tree, url=server.url, jobs=3)
    assert (code, err) == (1, "")
    assert f"stored: 9, already stored: 0, {MIXED_COUNTS}" in out
    # The refused file is named, with the server's Details.
    assert f"{tree / 'sub' / 'refused.dcm'}: HTTP 400: Missing or empty SOPInstanceUID" in out
    assert count_instances(server.url) == 9

    code, out, _ = run(tree, url=server.url)
    assert code == 1
    assert f"stored: 0, already stored: 9, {MIXED_COUNTS}" in out
    assert count_instances(server.url) == 9


def test_import_exits_0_when_everything_is_stored_or_already_stored(
    server_factory: Any, tmp_path: Path
) -> None:
    server: ServerProcess = server_factory()
    folder = good_files(tmp_path / "in", 6)
    code, out, _ = run(folder, url=server.url)
    assert code == 0
    assert "Done: 6 DICOM files" in out and "stored: 6, already stored: 0" in out
    assert "Failed" not in out
    write(folder / "7.dcm", dicom(seed=7))
    code, out, _ = run(folder, url=server.url + "/")  # a trailing slash is fine
    assert code == 0 and "stored: 1, already stored: 6" in out
    assert count_instances(server.url) == 7


def test_credentials_in_the_url(server_factory: Any, tmp_path: Path) -> None:
    server: ServerProcess = server_factory(
        {"AuthenticationEnabled": True, "RegisteredUsers": {"alice": "s3cr:t"}}
    )
    folder = good_files(tmp_path / "in", 2)
    with_credentials = server.url.replace("http://", "http://alice:s3cr%3At@")
    assert run(folder, url=with_credentials)[0] == 0
    assert count_instances(server.url, auth=("alice", "s3cr:t")) == 2

    for url in (server.url, server.url.replace("http://", "http://alice:wrong@")):
        code, out, err = run(folder, url=url)
        assert (code, out) == (2, "")
        assert "refused the credentials (HTTP 401)" in err


def test_an_unreachable_server_is_a_usage_error(tmp_path: Path) -> None:
    folder = good_files(tmp_path / "in", 1)
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = run(folder, url=url)
    assert (code, out) == (2, "")
    assert err.startswith(f"pharos import: cannot reach {url}") and err.count("\n") == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("localhost:8042", "expected http://host:port"),
        ("ftp://example.org", "expected http://host:port"),
        ("http://", "expected http://host:port"),
        ("http://localhost:99999", "port 99999 out of range"),
        ("http://localhost:8042/?x=1", "no query"),
    ],
)
def test_bad_urls_are_usage_errors(tmp_path: Path, url: str, message: str) -> None:
    code, out, err = run(good_files(tmp_path, 1), url=url)
    assert (code, out) == (2, "")
    assert err.startswith(f"pharos import: bad URL {url!r}") and message in err


def test_a_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    code, out, err = run(good_files(tmp_path / "in", 1), tmp_path / "missing", url="http://x")
    assert (code, out) == (2, "")
    assert err == f"pharos import: no such file or folder: {tmp_path / 'missing'}\n"


def test_jobs_must_be_positive(tmp_path: Path) -> None:
    code, _, err = run(tmp_path, url="http://localhost:8042", jobs=0)
    assert code == 2 and "--jobs must be at least 1" in err


def test_a_server_that_stops_answering_stops_the_import(
    server_factory: Any, tmp_path: Path
) -> None:
    server: ServerProcess = server_factory()
    folder = good_files(tmp_path / "in", 30)
    sender = HttpSender(server.url, jobs=2)
    sender.check()
    server.kill()
    stats = ImportStats()
    try:
        with pytest.raises(ServerGone):
            sender.send(dicom())
        assert import_entries([str(folder)], sender, 2, stats) is False
    finally:
        sender.close()
    assert stats.stopped is not None and "stopped answering" in stats.stopped
    # Only the files already handed to the senders were tried.
    assert 1 <= len(stats.failed) <= 6 and stats.stored == 0
    assert "Stopped early" in stats.summary()


# --- into the local store -------------------------------------------------------------------


def test_import_into_the_local_store(
    server_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    mixed_tree(tmp_path / "tree")
    code, out, err = run("tree", jobs=2)
    assert (code, err) == (1, "")
    assert "Importing into local store" in out and str(tmp_path / "PharosStorage") in out
    assert f"stored: 9, already stored: 0, {MIXED_COUNTS}" in out
    # The local reason: the PharosError's details.
    assert "tree/sub/refused.dcm: Missing or empty SOPInstanceUID" in out

    code, out, _ = run("tree")
    assert code == 1 and "stored: 0, already stored: 9" in out

    # A server started on that folder serves what was imported.
    server: ServerProcess = server_factory(workdir=tmp_path)
    assert count_instances(server.url) == 9


def test_local_import_beside_a_running_server_on_the_same_storage(
    server_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server: ServerProcess = server_factory()
    httpx.post(server.url + "/instances", content=dicom(seed=100)).raise_for_status()
    monkeypatch.chdir(server.workdir)
    folder = good_files(tmp_path / "in", 12)
    code, out, _ = run(folder, config_paths=[str(server.config_path)], jobs=4)
    assert code == 0 and "stored: 12" in out
    assert count_instances(server.url) == 13
    # The server can still write, and reads the files the import wrote.
    httpx.post(server.url + "/instances", content=dicom(seed=101)).raise_for_status()
    instances = httpx.get(server.url + "/instances").json()
    assert len(instances) == 14
    for instance in instances[:3]:
        assert httpx.get(f"{server.url}/instances/{instance}/file").status_code == 200


def test_local_configuration_errors_are_usage_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path / "bad.json", b'{ "StorageDirectory": 12 }')
    code, out, err = run(good_files(tmp_path / "in", 1), config_paths=[str(config)])
    assert (code, out) == (2, "")
    assert err.startswith("pharos import: configuration error:") and "StorageDirectory" in err
    assert not (tmp_path / "PharosStorage").exists()


# --- the installed command --------------------------------------------------------------------


def pharos(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pharos.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )


def test_the_command_imports_and_prints_a_summary_without_a_bar(
    server_factory: Any, tmp_path: Path
) -> None:
    server: ServerProcess = server_factory()
    mixed_tree(tmp_path / "tree")
    result = pharos("import", "tree", "--url", server.url, "--jobs", "2", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert result.stderr == ""
    assert "\x1b[" not in result.stdout  # not a terminal: no progress bar
    assert result.stdout.splitlines()[0].startswith(f"Importing into {server.url}")
    assert f"stored: 9, already stored: 0, {MIXED_COUNTS}" in result.stdout
    assert "tree/sub/refused.dcm: HTTP 400: Missing or empty SOPInstanceUID" in result.stdout


def test_the_command_locally_with_a_configuration_file(tmp_path: Path) -> None:
    good_files(tmp_path / "in", 3)
    config = {"StorageDirectory": "Store", "IndexDirectory": "Index"}
    (tmp_path / "pharos.json").write_text(json.dumps(config))
    result = pharos("import", "in", "--config", "pharos.json", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stored: 3" in result.stdout
    assert (tmp_path / "Index" / "index.db").exists()
    assert len([p for p in (tmp_path / "Store").rglob("*") if p.is_file()]) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["import", "missing"], "pharos import: no such file or folder: missing"),
        (["import", ".", "--url", "nonsense"], "pharos import: bad URL 'nonsense'"),
        (["import", ".", "--url", "http://x", "--config", "c.json"], "not allowed with"),
        (["import"], "the following arguments are required: PATH"),
    ],
)
def test_the_command_reports_usage_errors_without_a_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = pharos(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_progress_bar_is_drawn(server_factory: Any, tmp_path: Path) -> None:
    server: ServerProcess = server_factory()
    folder = good_files(tmp_path / "in", 5)
    out = FakeTerminal()
    assert run_import([str(folder)], url=server.url, out=out, err=io.StringIO()) == 0
    text = out.getvalue()
    assert "Importing" in text and "files/s" in text and "stored 5" in text  # the bar
    assert "stored: 5, already stored: 0" in text  # then the summary


def test_ctrl_c_stops_the_walk_and_reports_what_was_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    from pharos.importer import run as run_module
    from pharos.importer.outcomes import STORED, Outcome
    from pharos.importer.sources import DicomFile, Entry

    sent: list[bytes] = []
    first_sent = threading.Event()

    class Recorder:
        def describe(self) -> str:
            return "a recorder"

        def send(self, data: bytes) -> Outcome:
            sent.append(data)
            first_sent.set()
            return STORED

        def close(self) -> None:
            pass

    def interrupted_walk(paths: object) -> Iterator[Entry]:
        yield DicomFile("1.dcm", b"one")
        assert first_sent.wait(10)
        yield DicomFile("2.dcm", b"two")  # in flight or dropped: either is fine
        raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "iter_entries", interrupted_walk)
    stats = ImportStats()
    assert import_entries(["."], Recorder(), 1, stats) is True
    assert sent[0] == b"one" and stats.stored == len(sent) and not stats.failed
    assert stats.summary(interrupted=True).startswith(f"Interrupted: {len(sent)} DICOM files")
