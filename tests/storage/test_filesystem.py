import mmap
import os
import time
import uuid
from pathlib import Path

import pytest

from pharos.model.errors import ErrorCode, PharosError
from pharos.storage.compression import compress, uncompress
from pharos.storage.filesystem import FileSystemStorage
from tests.storage.page_cache import drops_written_pages, linux_only, resident_pages


def test_create_read_remove_with_orthanc_layout(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path)
    name = str(uuid.uuid4())
    storage.create(name, b"hello world")
    assert (tmp_path / name[:2] / name[2:4] / name).read_bytes() == b"hello world"
    assert storage.read(name) == b"hello world"
    assert storage.read_range(name, 6, 11) == b"world"
    assert storage.exists(name)
    assert [u for u, _ in storage.scan()] == [name]
    storage.remove(name)
    assert not storage.exists(name)
    storage.remove(name)  # removing twice is harmless


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path)
    with pytest.raises(PharosError) as caught:
        storage.read(str(uuid.uuid4()))
    assert caught.value.code is ErrorCode.INEXISTENT_FILE


def test_names_that_are_not_uuids_never_reach_the_filesystem(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path)
    for bad in ("../../etc/passwd", "..", "", "a" * 36):
        with pytest.raises(PharosError):
            storage.read(bad)


def test_leftover_temporary_files_are_removed(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path)
    name = str(uuid.uuid4())
    storage.create(name, b"x")
    leftover = tmp_path / name[:2] / name[2:4] / (str(uuid.uuid4()) + ".tmp")
    leftover.write_bytes(b"partial")
    old = time.time() - 100
    os.utime(leftover, (old, old))
    assert storage.remove_temporary_files(time.time() - 10) == 1
    assert not leftover.exists()
    assert storage.exists(name)


def test_orthanc_compression_round_trip() -> None:
    data = bytes(range(256)) * 100
    packed = compress(data)
    assert int.from_bytes(packed[:8], "little") == len(data)
    assert uncompress(packed) == data
    with pytest.raises(PharosError):
        uncompress(packed[:20])


def test_a_failed_write_leaves_no_file_and_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = FileSystemStorage(tmp_path)
    name = str(uuid.uuid4())

    def full(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(PharosError) as raised:
        storage.create(name, b"data")
    assert raised.value.code is ErrorCode.FULL_STORAGE
    assert not storage.exists(name)
    monkeypatch.undo()
    storage.create(name, b"data")  # the name is free again
    assert storage.read(name) == b"data"


def test_a_first_level_folder_removed_by_hand_is_made_again(tmp_path: Path) -> None:
    storage = FileSystemStorage(tmp_path)
    name = "ab" + str(uuid.uuid4())[2:]
    (tmp_path / "ab").rmdir()
    storage.create(name, b"x")
    assert (tmp_path / "ab" / name[2:4] / name).read_bytes() == b"x"


@linux_only
def test_written_files_leave_the_page_cache_once_fsynced(tmp_path: Path) -> None:
    if not drops_written_pages(tmp_path):
        pytest.skip("this filesystem keeps written pages cached (tmpfs)")
    data = os.urandom(256 * 1024)
    storage = FileSystemStorage(tmp_path)
    name = str(uuid.uuid4())
    storage.create(name, data)
    assert resident_pages(storage.path(name)) == 0
    assert storage.read(name) == data  # read back from the disk, whole


@linux_only
def test_written_files_stay_cached_when_asked_or_without_fsync(tmp_path: Path) -> None:
    data = os.urandom(256 * 1024)
    pages = len(data) // mmap.PAGESIZE
    for storage in (
        FileSystemStorage(tmp_path / "kept", drop_from_cache=False),
        FileSystemStorage(tmp_path / "unsynced", fsync=False),  # dirty pages are not dropped
    ):
        name = str(uuid.uuid4())
        storage.create(name, data)
        assert resident_pages(storage.path(name)) == pages
        assert storage.read(name) == data


def test_a_refused_cache_advice_does_not_fail_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object) -> None:
        raise OSError(22, "Invalid argument")

    monkeypatch.setattr(os, "posix_fadvise", refuse, raising=False)
    storage = FileSystemStorage(tmp_path)
    name = str(uuid.uuid4())
    storage.create(name, b"kept")
    assert storage.read(name) == b"kept"
