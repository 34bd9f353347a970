"""Generate DICOM files for tests and benchmarks (pydicom-built, deterministic when asked)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def make_dataset(
    *,
    patient_id: str = "P1",
    patient_name: str = "Doe^John",
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    instance_number: int = 1,
    rows: int = 16,
    columns: int = 16,
    seed: int = 0,
    **tags: Any,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "M"
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = series_uid or generate_uid()
    ds.StudyDate = "20240131"
    ds.StudyTime = "101010"
    ds.StudyDescription = "Chest"
    ds.AccessionNumber = "ACC1"
    ds.StudyID = "S1"
    ds.ReferringPhysicianName = "Who^Doctor"
    ds.Modality = "CT"
    ds.SeriesNumber = 1
    ds.SeriesDescription = "Axial"
    ds.BodyPartExamined = "CHEST"
    ds.Manufacturer = "Pharos"
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [0, 0, instance_number]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = 1
    ds.Rows = rows
    ds.Columns = columns
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 1
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleSlope = 1
    ds.RescaleIntercept = -1024
    ds.WindowCenter = 40
    ds.WindowWidth = 400
    rng = np.random.default_rng(seed)
    ds.PixelData = rng.integers(0, 4000, (rows, columns), dtype=np.int16).tobytes()
    for keyword, value in tags.items():
        if value is None:
            delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def make_dicom(**kwargs: Any) -> bytes:
    return to_bytes(make_dataset(**kwargs))


def make_series(count: int, **kwargs: Any) -> list[bytes]:
    """`count` instances of one series (same patient, study and series UIDs)."""
    study_uid = kwargs.pop("study_uid", None) or generate_uid()
    series_uid = kwargs.pop("series_uid", None) or generate_uid()
    return [
        make_dicom(study_uid=study_uid, series_uid=series_uid, instance_number=i + 1, **kwargs)
        for i in range(count)
    ]


def roundtrip(ds: Dataset, syntax: str = ExplicitVRLittleEndian) -> Dataset:
    """Write `ds` to a file in memory and read it back, so its elements are raw again."""
    import pydicom

    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5"
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    buffer.seek(0)
    return pydicom.dcmread(buffer)
