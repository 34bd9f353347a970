import io

import pydicom
import pytest
from pynetdicom.dsutils import create_file_meta, encode_file_meta

from pharos.dicom.file_meta import PREAMBLE, file_meta_header

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"


@pytest.mark.parametrize(
    ("instance", "version"),
    [
        ("1.2.3.4", "PYNETDICOM_300"),  # even lengths
        ("1.2.3.45", "PHAROS1"),  # an odd UID, an odd version name: both padded
    ],
)
def test_the_same_bytes_as_pydicom_writes(instance: str, version: str) -> None:
    meta = create_file_meta(
        sop_class_uid=CT,
        sop_instance_uid=instance,
        transfer_syntax=EXPLICIT_LE,
        implementation_uid="1.2.826.0.1.3680043.9.3811.3.0.0",  # pynetdicom's
        implementation_version=version,
    )
    expected = PREAMBLE + encode_file_meta(meta)
    implementation = "1.2.826.0.1.3680043.9.3811.3.0.0"
    header = file_meta_header(CT, instance, EXPLICIT_LE, implementation, version)
    assert header == expected


def test_pydicom_reads_a_file_made_of_it_without_a_version_name() -> None:
    data_set = b"\x08\x00\x16\x00UI\x1a\x00" + CT.encode() + b"\x00" * (26 - len(CT))
    data = file_meta_header(CT, "1.2.3.45", EXPLICIT_LE, "1.2.3") + data_set
    ds = pydicom.dcmread(io.BytesIO(data))
    assert ds.file_meta.MediaStorageSOPInstanceUID == "1.2.3.45"
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT_LE
    assert ds.file_meta.FileMetaInformationGroupLength == len(data) - 132 - 12 - len(data_set)
    assert ds.SOPClassUID == CT
    assert "ImplementationVersionName" not in ds.file_meta
