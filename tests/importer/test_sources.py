"""Walking paths into entries: folders, zip and tar archives (nested too), what is skipped."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from pydicom.data import get_testdata_files

from pharos.dicom.structure import check_structure
from pharos.importer import sources
from pharos.importer.sources import (
    DicomFile,
    Entry,
    Kind,
    Skipped,
    SkipReason,
    Unreadable,
    count_entries,
    iter_entries,
    sniff,
)
from pharos.model.errors import PharosError
from tests.conftest import corpus_files
from tests.dicomgen import make_dicom
from tests.importer.trees import (
    bare_dataset,
    dicom,
    dicomdir,
    mixed_tree,
    tar_bytes,
    write,
    zip_bytes,
)


def entries(*paths: Path) -> dict[str, Entry]:
    """Entries by name relative to the test folder (names are unique in these trees)."""
    found = list(iter_entries([str(p) for p in paths]))
    names = [entry.name for entry in found]
    assert len(set(names)) == len(names)
    return {entry.name: entry for entry in found}


def kinds(found: dict[str, Entry], root: Path) -> dict[str, str]:
    def kind(entry: Entry) -> str:
        if isinstance(entry, DicomFile):
            return "dicom"
        if isinstance(entry, Skipped):
            return entry.reason.value
        return "unreadable"

    return {os.path.relpath(name, root): kind(entry) for name, entry in found.items()}


def test_a_mixed_folder_yields_one_entry_per_file_archive_members_included(
    tmp_path: Path,
) -> None:
    mixed_tree(tmp_path)
    found = entries(tmp_path)
    assert kinds(found, tmp_path) == {
        "a.dcm": "dicom",
        "bare.dcm": "dicom",
        "notes.txt": "not DICOM",
        "empty.dcm": "empty",
        "DICOMDIR": "DICOMDIR",
        "sub/refused.dcm": "dicom",  # DICOM; the server decides it is not storable
        "sub/deeper/IM0002": "dicom",
        "archives/series.zip!x/3.dcm": "dicom",
        "archives/series.zip!x/4.dcm": "dicom",
        "archives/more.tar.gz!5.dcm": "dicom",
        "archives/more.tar.gz!6": "dicom",
        "archives/nested.zip!7.dcm": "dicom",
        "archives/nested.zip!inner.tar.xz!8.dcm": "dicom",
        "archives/nested.zip!readme.md": "not DICOM",
    }
    # The bytes are the file's, unchanged.
    assert found[str(tmp_path / "a.dcm")] == DicomFile(
        str(tmp_path / "a.dcm"), (tmp_path / "a.dcm").read_bytes()
    )


def test_folders_are_walked_in_sorted_order(tmp_path: Path) -> None:
    for name in ("c.dcm", "a.dcm", "b/z.dcm", "b/y.dcm"):
        write(tmp_path / name, dicom())
    names = [os.path.relpath(e.name, tmp_path) for e in iter_entries([str(tmp_path)])]
    assert names == ["a.dcm", "c.dcm", "b/y.dcm", "b/z.dcm"]


@pytest.mark.parametrize("compression", ["", "gz", "bz2", "xz"])
def test_tar_archives_plain_or_compressed(tmp_path: Path, compression: str) -> None:
    files = {"one.dcm": dicom(seed=1), "dir/two.dcm": dicom(seed=2), "text": b"hello"}
    suffix = f".tar.{compression}" if compression else ".tar"
    archive = write(tmp_path / f"a{suffix}", tar_bytes(files, compression))
    found = list(iter_entries([str(archive)]))
    assert [(e.name, type(e).__name__) for e in found] == [
        (f"{archive}!one.dcm", "DicomFile"),
        (f"{archive}!dir/two.dcm", "DicomFile"),
        (f"{archive}!text", "Skipped"),
    ]
    assert [e.data for e in found if isinstance(e, DicomFile)] == [
        files["one.dcm"],
        files["dir/two.dcm"],
    ]


def test_archives_are_recognised_by_content_not_name(tmp_path: Path) -> None:
    write(tmp_path / "archive.bin", zip_bytes({"1.dcm": dicom(seed=1)}))
    write(tmp_path / "tarball", tar_bytes({"2.dcm": dicom(seed=2)}))
    write(tmp_path / "compressed", tar_bytes({"3.dcm": dicom(seed=3)}, "gz"))
    assert kinds(entries(tmp_path), tmp_path) == {
        "archive.bin!1.dcm": "dicom",
        "compressed!3.dcm": "dicom",
        "tarball!2.dcm": "dicom",
    }


def test_archives_nested_in_archives(tmp_path: Path) -> None:
    innermost = tar_bytes({"deep.dcm": dicom(seed=3)}, "bz2")
    middle = zip_bytes({"2.dcm": dicom(seed=2), "c.tar.bz2": innermost})
    outer = write(tmp_path / "outer.tar.gz", tar_bytes({"b.zip": middle}, "gz"))
    zip_in_zip = write(tmp_path / "z.zip", zip_bytes({"in.zip": zip_bytes({"1.dcm": dicom()})}))
    assert kinds(entries(outer, zip_in_zip), tmp_path) == {
        "outer.tar.gz!b.zip!2.dcm": "dicom",
        "outer.tar.gz!b.zip!c.tar.bz2!deep.dcm": "dicom",
        "z.zip!in.zip!1.dcm": "dicom",
    }


def test_archives_nested_too_deep_are_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "MAX_NESTING", 2)
    data = dicom()
    for _ in range(3):
        data = zip_bytes({"in.zip" if data[:2] == b"PK" else "x.dcm": data})
    found = list(iter_entries([str(write(tmp_path / "a.zip", data))]))
    assert len(found) == 1 and isinstance(found[0], Unreadable)
    assert found[0].name == f"{tmp_path / 'a.zip'}!in.zip!in.zip"
    assert "nested more than 2 deep" in found[0].reason


def test_a_nested_zip_larger_than_the_memory_spool_goes_through_a_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "SPOOL_IN_MEMORY", 1000)
    inner = zip_bytes({f"{i}.dcm": dicom(seed=i) for i in range(3)})
    outer = write(tmp_path / "a.tar", tar_bytes({"inner.zip": inner}))
    assert len([e for e in iter_entries([str(outer)]) if isinstance(e, DicomFile)]) == 3


def test_dicomdir_files_are_skipped_by_name_or_by_sop_class(tmp_path: Path) -> None:
    write(tmp_path / "DICOMDIR", dicom())
    write(tmp_path / "dicomdir.dcm", dicomdir())
    write(tmp_path / "a.zip", zip_bytes({"CD/DICOMDIR": dicomdir(), "CD/IM1": dicom()}))
    assert kinds(entries(tmp_path), tmp_path) == {
        "DICOMDIR": "DICOMDIR",
        "dicomdir.dcm": "DICOMDIR",
        "a.zip!CD/DICOMDIR": "DICOMDIR",
        "a.zip!CD/IM1": "dicom",
    }


def test_empty_files_and_empty_archives(tmp_path: Path) -> None:
    write(tmp_path / "empty", b"")
    write(tmp_path / "empty.zip", zip_bytes({}))
    write(tmp_path / "empty.tar", tar_bytes({}))
    write(tmp_path / "holds-empty.zip", zip_bytes({"nothing.dcm": b"", "folder/": b""}))
    assert kinds(entries(tmp_path), tmp_path) == {
        "empty": "empty",
        "holds-empty.zip!nothing.dcm": "empty",
    }


def test_bare_data_sets_are_dicom_but_look_alikes_are_not(tmp_path: Path) -> None:
    write(tmp_path / "bare", bare_dataset())
    # Starts like a group 0008 element, then nonsense: the full walk refuses it.
    write(tmp_path / "look-alike", b"\x08\x00\x05\x00CS\x0a\x00" + b"\xff" * 300)
    write(tmp_path / "image.png", b"\x89PNG\r\n\x1a\n" + bytes(2000))
    write(tmp_path / "short", b"\x08\x00")
    assert kinds(entries(tmp_path), tmp_path) == {
        "bare": "dicom",
        "image.png": "not DICOM",
        "look-alike": "not DICOM",
        "short": "not DICOM",
    }


def test_compressed_files_that_are_not_tar_archives_are_skipped(tmp_path: Path) -> None:
    import gzip

    write(tmp_path / "image.dcm.gz", gzip.compress(dicom()))
    write(tmp_path / "log.gz", gzip.compress(b"text"))
    assert kinds(entries(tmp_path), tmp_path) == {
        "image.dcm.gz": "not DICOM",
        "log.gz": "not DICOM",
    }


def test_corrupt_archives_are_unreadable_with_a_reason(tmp_path: Path) -> None:
    # Random pixels: compression keeps the members apart, so the cut falls after the first.
    files = {f"{i}.dcm": make_dicom(rows=64, columns=64, seed=i) for i in range(4)}
    write(tmp_path / "bad.zip", b"PK\x03\x04" + bytes(100))
    good_tar = tar_bytes(files, "gz")
    write(tmp_path / "cut.tar.gz", good_tar[: len(good_tar) // 2])
    write(tmp_path / "noise.tar.gz", b"\x1f\x8b" + bytes(100))
    # A zip member whose data was damaged: the CRC check catches it.
    good_zip = bytearray(zip_bytes({"1.dcm": dicom(seed=9)}))
    good_zip[100:110] = bytes(10)
    write(tmp_path / "damaged.zip", bytes(good_zip))

    found = list(iter_entries([str(tmp_path)]))
    unreadable = {
        os.path.relpath(e.name, tmp_path): e.reason for e in found if isinstance(e, Unreadable)
    }
    assert set(unreadable) == {"bad.zip", "cut.tar.gz", "noise.tar.gz", "damaged.zip!1.dcm"}
    assert "zip" in unreadable["bad.zip"]
    assert "tar" in unreadable["cut.tar.gz"]
    # What came before the cut was read.
    assert any(
        e.name.startswith(str(tmp_path / "cut.tar.gz!")) for e in found if isinstance(e, DicomFile)
    )


def test_a_file_that_cannot_be_read_is_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "secret.dcm", dicom())

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(sources, "open", refuse, raising=False)  # (tests run as root)
    [entry] = iter_entries([str(path)])
    assert entry == Unreadable(str(path), "Permission denied")


def test_members_larger_than_the_limit_are_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sources, "MAX_FILE_SIZE", 1000)
    write(tmp_path / "a.zip", zip_bytes({"big.dcm": dicom()}))
    write(tmp_path / "b.tar", tar_bytes({"big.dcm": dicom()}))
    write(tmp_path / "c.dcm", dicom())
    found = entries(tmp_path)
    assert all(isinstance(e, Unreadable) and "larger than 1000" in e.reason for e in found.values())
    assert len(found) == 3


def test_sniff() -> None:
    data = dicom()
    assert sniff("x", data[: sources.HEAD_SIZE]) is Kind.DICOM
    assert sniff("DICOMDIR", data) is Kind.DICOMDIR
    assert sniff("x", dicomdir()[: sources.HEAD_SIZE]) is Kind.DICOMDIR
    assert sniff("x", b"") is Kind.EMPTY
    assert sniff("x", zip_bytes({})) is Kind.ZIP
    assert sniff("x", tar_bytes({"a": b"1"})[:1024]) is Kind.TAR
    assert sniff("x", tar_bytes({"a": b"1"}, "xz")) is Kind.MAYBE_TAR
    assert sniff("x", bare_dataset()[:1024]) is Kind.MAYBE_DATASET
    assert sniff("x", b"%PDF-1.4") is Kind.OTHER


def test_count_entries_knows_folders_zips_and_plain_tars(tmp_path: Path) -> None:
    write(tmp_path / "a.dcm", dicom())
    write(tmp_path / "notes.txt", b"text")
    write(tmp_path / "b.zip", zip_bytes({"1": dicom(), "2": b"", "d/": b""}))
    write(tmp_path / "c.tar", tar_bytes({"1": dicom(), "2": dicom()}))
    assert count_entries([str(tmp_path)]) == 6 == len(list(iter_entries([str(tmp_path)])))


def test_count_entries_is_unknown_for_compressed_tars_and_nested_archives(tmp_path: Path) -> None:
    gz = write(tmp_path / "a.tar.gz", tar_bytes({"1": dicom()}, "gz"))
    nested = write(tmp_path / "b.zip", zip_bytes({"in.zip": zip_bytes({"1": dicom()})}))
    assert count_entries([str(gz)]) is None
    assert count_entries([str(nested)]) is None


def sample_files() -> list[Path]:
    shipped = [Path(p) for p in get_testdata_files() if not p.endswith((".json", ".txt"))]
    return sorted(p for p in shipped if p.is_file()) + corpus_files()


def test_every_file_that_walks_as_dicom_is_sent_and_none_is_skipped_as_not_dicom() -> None:
    """pydicom's test files and the corpus (when present): no false "not DICOM"."""
    missed = []
    for path in sample_files():
        data = path.read_bytes()
        try:
            check_structure(data)
        except PharosError:
            continue
        [entry] = iter_entries([str(path)])
        if isinstance(entry, Skipped) and entry.reason is SkipReason.DICOMDIR:
            continue
        if not (isinstance(entry, DicomFile) and entry.data == data):
            missed.append(f"{path.name}: {entry}")
    assert missed == []


def test_zip_members_are_read_one_at_a_time(tmp_path: Path) -> None:
    """Streaming: entries come while the archive is read, not after it was read whole."""
    archive = write(tmp_path / "a.zip", zip_bytes({f"{i}.dcm": dicom(seed=i) for i in range(3)}))
    opened: list[str] = []
    original = zipfile.ZipFile.open

    def spy(self: zipfile.ZipFile, name: object, *args: object, **kwargs: object) -> object:
        opened.append(getattr(name, "filename", str(name)))
        return original(self, name, *args, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(zipfile.ZipFile, "open", spy)
        walk = iter_entries([str(archive)])
        first = next(walk)
        assert opened == ["0.dcm"] and first.name.endswith("!0.dcm")
        assert len(list(walk)) == 2
    assert opened == ["0.dcm", "1.dcm", "2.dcm"]


def test_names_use_the_path_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "in" / "a.zip", zip_bytes({"x/1.dcm": dicom()}))
    assert [e.name for e in iter_entries(["in"])] == ["in/a.zip!x/1.dcm"]
