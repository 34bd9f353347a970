"""Finding plugins: `Plugins` files and folders, entry points; failures logged, not fatal."""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path

import pytest

from pharos.plugins import PluginManager
from pharos.plugins.loader import load_configured, load_entry_points

PLUGIN = """
from pharos.plugins import hookimpl

__version__ = "0.9"

@hookimpl
def pharos_plugin_info():
    return {"Description": "a test plugin"}
"""


def test_files_and_folders(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "alpha.py").write_text(PLUGIN)
    (folder / "beta.py").write_text(PLUGIN)
    (folder / "_helper.py").write_text("raise RuntimeError('never imported')")
    (folder / "libOrthancDicomWeb.so").write_bytes(b"\x7fELF")
    (folder / "notes.txt").write_text("not a plugin")
    (tmp_path / "gamma.py").write_text(PLUGIN)
    manager = PluginManager()
    with caplog.at_level(logging.WARNING, "pharos.plugins"):
        load_configured(manager, ["plugins", str(tmp_path / "gamma.py")], relative_to=tmp_path)
    assert manager.names() == ["alpha", "beta", "gamma"]
    assert manager.infos()["beta"] == {
        "ID": "beta",
        "Version": "0.9",
        "Description": "a test plugin",
    }
    assert "libOrthancDicomWeb.so" in caplog.text  # said why it is not loaded
    assert manager.failed == {}


def test_failures_are_logged_and_recorded(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "broken.py").write_text("import no_such_module_at_all\n")
    (tmp_path / "misspelt.py").write_text(
        "from pharos.plugins import hookimpl\n\n@hookimpl\ndef pharos_on_stored(instance_id):\n"
        "    pass\n"
    )
    (tmp_path / "good.py").write_text(PLUGIN)
    manager = PluginManager()
    with caplog.at_level(logging.ERROR, "pharos.plugins"):
        load_configured(
            manager,
            ["broken.py", "misspelt.py", "missing.py", "libX.so", 42, "good.py"],
            relative_to=tmp_path,
        )
    assert manager.names() == ["good"]
    assert set(manager.failed) == {"broken", "misspelt", "missing.py", "libX.so", "42"}
    assert "no_such_module_at_all" in manager.failed["broken"]
    assert "pharos_on_stored" in manager.failed["misspelt"]
    assert "no such file or folder" in manager.failed["missing.py"]
    assert "Plugin broken not loaded" in caplog.text


def test_entry_points(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "pharos_test_entry.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    points = [
        importlib.metadata.EntryPoint("entry", "pharos_test_entry", "pharos.plugins"),
        importlib.metadata.EntryPoint("gone", "pharos_no_such_entry", "pharos.plugins"),
    ]

    def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
        return [point for point in points if point.group == group]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    manager = PluginManager()
    load_entry_points(manager)
    assert manager.names() == ["entry"]
    assert "pharos_no_such_entry" in manager.failed["gone"]
