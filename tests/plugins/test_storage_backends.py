"""Storage backends offered by plugins (`pharos_storage_areas`, option `StorageBackend`): the
choice at start-up, its failures (unknown name, unusable backend) and, in a real server, a
backend keeping every file flat in one folder: store, read and delete go through it."""

from __future__ import annotations

import json
import mmap
import uuid
from pathlib import Path
from typing import Any

import pytest

from pharos.config import load_config
from pharos.context import storage_area
from pharos.plugins import PluginManager, hookimpl
from pharos.storage.filesystem import FileSystemStorage
from tests.conftest import Api, ServerProcess
from tests.dicomgen import make_dicom
from tests.storage.page_cache import drops_written_pages, linux_only, resident_pages

# A real alternative layout: every attachment directly in one folder, as <uuid>.bin.
FLAT = """
import os
from pathlib import Path

from pharos.model.errors import ErrorCode, PharosError
from pharos.plugins import hookimpl
from pharos.storage.base import check_uuid


class FlatFolder:
    def __init__(self, root):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, uuid):
        return self.root / (check_uuid(uuid) + ".bin")

    def create(self, uuid, data):
        target = self._path(uuid)
        tmp = target.with_suffix(".tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)

    def read(self, uuid):
        try:
            return self._path(uuid).read_bytes()
        except FileNotFoundError:
            raise PharosError(ErrorCode.INEXISTENT_FILE, f"Missing file: {uuid}") from None

    def read_range(self, uuid, start, end):
        return self.read(uuid)[start:end]

    def remove(self, uuid):
        self._path(uuid).unlink(missing_ok=True)

    def exists(self, uuid):
        return self._path(uuid).is_file()

    def scan(self):
        for path in self.root.glob("*.bin"):
            yield path.stem, path.stat().st_mtime

    def remove_temporary_files(self, older_than):
        removed = 0
        for path in self.root.glob("*.tmp"):
            if path.stat().st_mtime < older_than:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def describe(self):
        return f"flat folder {self.root}"


def flat(config, storage_dir):
    assert config["StorageBackend"] == "Flat"  # the whole configuration
    return FlatFolder(storage_dir / "flat")


@hookimpl
def pharos_storage_areas():
    return {"Flat": flat}
"""


class Offers:
    """Backends for the in-process choice: a usable one, a broken one, a failing factory."""

    @hookimpl
    def pharos_storage_areas(self) -> dict[str, Any]:
        def failing(config: dict[str, Any], storage_dir: Path) -> object:
            raise OSError("bucket unreachable")

        return {
            "Folder": lambda config, storage_dir: FileSystemStorage(storage_dir / "other"),
            "Broken": lambda config, storage_dir: object(),
            "Failing": failing,
        }


def choose(tmp_path: Path, name: str) -> object:
    (tmp_path / "config.json").write_text(json.dumps({"StorageBackend": name}))
    plugins = PluginManager()
    plugins.register(Offers(), "offers")
    return storage_area(load_config([tmp_path / "config.json"]), tmp_path / "storage", plugins)


def test_the_built_in_folder_is_the_default(tmp_path: Path) -> None:
    config = load_config([])
    assert config.get_str("StorageBackend") == "FileSystem"
    assert isinstance(storage_area(config, tmp_path, PluginManager()), FileSystemStorage)


@linux_only
@pytest.mark.parametrize(
    ("options", "cached"),
    [
        ({}, False),  # fsynced, then dropped from the page cache
        ({"KeepStoredFilesInPageCache": True}, True),
        ({"SyncStorageArea": False}, True),  # not fsynced: its pages are still dirty
    ],
)
def test_the_built_in_folder_follows_its_options(
    tmp_path: Path, options: dict[str, bool], cached: bool
) -> None:
    if not cached and not drops_written_pages(tmp_path):
        pytest.skip("this filesystem keeps written pages cached (tmpfs)")
    (tmp_path / "config.json").write_text(json.dumps(options))
    storage = storage_area(load_config([tmp_path / "config.json"]), tmp_path, PluginManager())
    assert isinstance(storage, FileSystemStorage)
    storage.create(name := str(uuid.uuid4()), bytes(64 * 1024))
    assert resident_pages(storage.path(name)) == (64 * 1024 // mmap.PAGESIZE if cached else 0)


def test_a_plugin_backend_is_chosen_by_name(tmp_path: Path) -> None:
    area = choose(tmp_path, "Folder")
    assert isinstance(area, FileSystemStorage)
    assert area.root == (tmp_path / "storage" / "other").resolve()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("S3", "StorageBackend 'S3' is unknown (known: FileSystem, Broken, Failing, Folder)"),
        ("Broken", "StorageBackend 'Broken' lacks create, read, read_range, remove, exists"),
        ("Failing", "StorageBackend 'Failing' cannot start: bucket unreachable"),
    ],
)
def test_unusable_backends_stop_the_start_up(tmp_path: Path, name: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        choose(tmp_path, name)
    assert str(raised.value).startswith(message)


def flat_server(tmp_path: Path, **config: object) -> tuple[ServerProcess, Path]:
    (tmp_path / "flat.py").write_text(FLAT)
    storage = tmp_path / "PharosStorage"
    server = ServerProcess(
        tmp_path,
        {"Plugins": ["flat.py"], "StorageBackend": "Flat", **config},
    )
    return server, storage / "flat"


def test_store_read_and_delete_go_through_the_plugin_backend(tmp_path: Path) -> None:
    server, folder = flat_server(tmp_path)
    server.start(timeout=120)
    try:
        with Api(base_url=server.url, timeout=60) as api:
            api.server = server
            data = make_dicom()
            instance = api.post("/instances", content=data).json()["ID"]
            files = sorted(folder.glob("*.bin"))
            assert len(files) == 1 and files[0].read_bytes() == data
            assert api.stored_files() == []  # nothing in the built-in layout
            assert api.get("/system").json()["StorageAreaPlugin"] == "Flat"
            assert api.get(f"/instances/{instance}/file").content == data
            assert api.get(f"/instances/{instance}/tags?simplify").json()["PatientID"]
            assert api.delete(f"/instances/{instance}").status_code == 200
            assert list(folder.glob("*.bin")) == []
    finally:
        server.stop()
    assert "Storage backend Flat: flat folder" in server.log()


def test_an_unknown_backend_stops_the_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, {"StorageBackend": "Nope"})
    with pytest.raises(RuntimeError) as raised:
        server.start(timeout=120)
    assert "StorageBackend 'Nope' is unknown (known: FileSystem)" in str(raised.value)
