"""STOW-RS (PS3.18 10.5): each DICOM part of a request through the store path of every other
way in (StoreService), and the PS3.18 answer (Table 10.5.3-1): which instances were stored
(ReferencedSOPSequence, with their RetrieveURL) and which failed, and why (FailedSOPSequence).

A part is checked before it is stored (readable DICOM, in the study of the URL if one is
given), and stored on its own: a failed part leaves nothing, the others are kept.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

from pharos.index.base import Reception
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.store import StoreService

log = logging.getLogger(__name__)

# PS3.18 Table 10.5.3-2 / PS3.4 Annex B status codes used as FailureReason.
PROCESSING_FAILURE = 0x0110
OUT_OF_RESOURCES = 0xA700
STUDY_MISMATCH = 0xA900  # "Error: Data Set does not match SOP Class"; the usual choice
CANNOT_UNDERSTAND = 0xC000
_UIDS = (0x00080016, 0x00080018, 0x0020000D, 0x0020000E)  # SOP Class/Instance, Study, Series


@dataclass(slots=True)
class StowOutcome:
    """The answer being built for one STOW-RS request."""

    base_url: str  # the DICOMweb root, ending with a slash
    study_uid: str | None  # from the URL
    # (position of the part, item): parts may be stored concurrently, answered in order.
    stored: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    failed: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    studies: set[str] = field(default_factory=set)

    @property
    def status(self) -> int:
        if not self.failed:
            return 200
        return 202 if self.stored else 409

    def to_json(self) -> dict[str, Any]:
        answer: dict[str, Any] = {}
        if len(self.studies) == 1 and self.stored:
            (study,) = self.studies
            answer["00081190"] = {"vr": "UR", "Value": [f"{self.base_url}studies/{study}"]}
        if self.failed:
            answer["00081198"] = {"vr": "SQ", "Value": [item for _, item in sorted(self.failed)]}
        if self.stored:
            answer["00081199"] = {"vr": "SQ", "Value": [item for _, item in sorted(self.stored)]}
        return answer


class DicomWebStore:
    def __init__(self, store: StoreService):
        self._store = store

    def store_part(
        self, outcome: StowOutcome, position: int, data: bytes, reception: Reception
    ) -> None:
        """Store one DICOM part (the `position`-th) and record the result in `outcome`
        (thread-safe: list appends and set adds)."""
        try:
            header = _read_uids(data)
            sop_class = str(header.get("SOPClassUID", ""))
            sop_instance = str(header.get("SOPInstanceUID", ""))
            study = str(header.get("StudyInstanceUID", ""))
            series = str(header.get("SeriesInstanceUID", ""))
        except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
            failure = _failed("", "", CANNOT_UNDERSTAND, f"Not DICOM: {exc}")
            outcome.failed.append((position, failure))
            return
        if outcome.study_uid is not None and study != outcome.study_uid:
            details = f"StudyInstanceUID {study!r} is not the study of the URL"
            outcome.failed.append(
                (position, _failed(sop_class, sop_instance, STUDY_MISMATCH, details))
            )
            return
        try:
            self._store.store(data, reception)
        except PharosError as exc:
            reason = (
                CANNOT_UNDERSTAND
                if exc.code in (ErrorCode.BAD_FILE_FORMAT, ErrorCode.BAD_REQUEST)
                else OUT_OF_RESOURCES
                if exc.code is ErrorCode.FULL_STORAGE
                else PROCESSING_FAILURE
            )
            details = exc.details or str(exc)
            outcome.failed.append((position, _failed(sop_class, sop_instance, reason, details)))
            return
        except OSError as exc:
            log.error("STOW-RS: cannot store %s: %s", sop_instance, exc)
            failure = _failed(sop_class, sop_instance, OUT_OF_RESOURCES, str(exc))
            outcome.failed.append((position, failure))
            return
        outcome.studies.add(study)
        outcome.stored.append(
            (
                position,
                {
                    "00081150": {"vr": "UI", "Value": [sop_class]},
                    "00081155": {"vr": "UI", "Value": [sop_instance]},
                    "00081190": {
                        "vr": "UR",
                        "Value": [
                            f"{outcome.base_url}studies/{study}/series/{series}"
                            f"/instances/{sop_instance}"
                        ],
                    },
                },
            )
        )

    def unsupported_part(self, outcome: StowOutcome, position: int, content_type: str) -> None:
        failure = _failed("", "", CANNOT_UNDERSTAND, f"Unsupported part type {content_type!r}")
        outcome.failed.append((position, failure))


def _read_uids(data: bytes) -> pydicom.Dataset:
    """The UIDs of a part. A dataset without preamble and file meta (a raw implicit VR
    little endian dataset) is read too, as the REST API's store path reads it; without a
    SOPInstanceUID it is not DICOM."""
    try:
        header = pydicom.dcmread(
            io.BytesIO(data), stop_before_pixels=True, specific_tags=list(_UIDS)
        )
    except InvalidDicomError as exc:
        try:
            header = pydicom.dcmread(
                io.BytesIO(data), stop_before_pixels=True, specific_tags=list(_UIDS), force=True
            )
            found = "SOPInstanceUID" in header and bool(header.SOPInstanceUID)
        except Exception:  # anything pydicom trips over in bytes that are not DICOM
            found = False
        if not found:
            raise exc
    return header


def _failed(sop_class: str, sop_instance: str, reason: int, details: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "00081150": {"vr": "UI", "Value": [sop_class]} if sop_class else {"vr": "UI"},
        "00081155": {"vr": "UI", "Value": [sop_instance]} if sop_instance else {"vr": "UI"},
        "00081197": {"vr": "US", "Value": [reason]},
    }
    log.info("STOW-RS: instance %r not stored (0x%04X): %s", sop_instance, reason, details)
    return item
