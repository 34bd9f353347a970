"""Public identifiers: the SHA-1 of the DICOM identifiers, as Orthanc computes them.

The same file gets the same IDs in Pharos and in Orthanc, so links and scripts keep working.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

_PUBLIC_ID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")


def hash_public_id(text: str) -> str:
    """SHA-1 of the UTF-8 text, hex, in five dash-separated groups of 8."""
    digest = hashlib.sha1(text.encode("utf-8")).hexdigest()
    return "-".join(digest[i : i + 8] for i in range(0, 40, 8))


def is_public_id(text: str) -> bool:
    return _PUBLIC_ID.match(text) is not None


@dataclass(frozen=True, slots=True)
class ResourceIds:
    """The public IDs of an instance and of its three ancestors."""

    patient: str
    study: str
    series: str
    instance: str

    @classmethod
    def compute(cls, patient_id: str, study_uid: str, series_uid: str, sop_uid: str) -> ResourceIds:
        return cls(
            patient=hash_public_id(patient_id),
            study=hash_public_id(f"{patient_id}|{study_uid}"),
            series=hash_public_id(f"{patient_id}|{study_uid}|{series_uid}"),
            instance=hash_public_id(f"{patient_id}|{study_uid}|{series_uid}|{sop_uid}"),
        )

    def as_tuple(self) -> tuple[str, str, str, str]:
        return (self.patient, self.study, self.series, self.instance)
