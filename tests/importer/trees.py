"""Build folders and archives of generated DICOM files for the importer tests."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

from pydicom.uid import generate_uid

from tests.dicomgen import make_dataset, make_dicom, to_bytes


def dicom(patient_id: str = "IMPORT", seed: int = 0) -> bytes:
    return make_dicom(patient_id=patient_id, rows=8, columns=8, seed=seed)


def without_sop_instance_uid() -> bytes:
    """A DICOM file (with "DICM") that every server refuses: no SOPInstanceUID."""
    return to_bytes(make_dataset(rows=8, columns=8, SOPInstanceUID=None))


def bare_dataset() -> bytes:
    """A data set without preamble, "DICM" or file meta group: still DICOM."""
    ds = make_dataset(rows=8, columns=8)
    del ds.file_meta
    buffer = io.BytesIO()
    ds.save_as(buffer, implicit_vr=True, little_endian=True)
    data = buffer.getvalue()
    assert data[128:132] != b"DICM"
    return data


def dicomdir() -> bytes:
    """A file whose meta group says it is a DICOMDIR (Media Storage Directory Storage)."""
    ds = make_dataset(rows=8, columns=8)
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    ds.SOPClassUID = "1.2.840.10008.1.3.10"
    return to_bytes(ds)


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def tar_bytes(members: dict[str, bytes], compression: str = "") -> bytes:
    """A tar archive; `compression` is "", "gz", "bz2" or "xz"."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}") as archive:
        folder = tarfile.TarInfo("folder")
        folder.type = tarfile.DIRTYPE
        archive.addfile(folder)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def mixed_tree(root: Path) -> dict[str, int]:
    """A folder of everything the importer meets; the expected counts, by kind."""
    study, series = generate_uid(), generate_uid()

    def instance(i: int) -> bytes:
        return make_dicom(
            patient_id="TREE",
            study_uid=study,
            series_uid=series,
            instance_number=i,
            rows=8,
            columns=8,
            seed=i,
        )

    write(root / "a.dcm", instance(1))
    write(root / "sub" / "deeper" / "IM0002", instance(2))  # no extension
    write(root / "bare.dcm", bare_dataset())
    write(root / "notes.txt", b"not DICOM at all\n")
    write(root / "empty.dcm", b"")
    write(root / "DICOMDIR", dicomdir())
    write(root / "sub" / "refused.dcm", without_sop_instance_uid())
    write(
        root / "archives" / "series.zip",
        zip_bytes({"x/3.dcm": instance(3), "x/4.dcm": instance(4)}),
    )
    write(
        root / "archives" / "more.tar.gz", tar_bytes({"5.dcm": instance(5), "6": instance(6)}, "gz")
    )
    inner = tar_bytes({"8.dcm": instance(8)}, "xz")
    write(
        root / "archives" / "nested.zip",
        zip_bytes({"7.dcm": instance(7), "inner.tar.xz": inner, "readme.md": b"# hi"}),
    )
    return {"stored": 9, "not DICOM": 2, "DICOMDIR": 1, "empty": 1, "failed": 1}
