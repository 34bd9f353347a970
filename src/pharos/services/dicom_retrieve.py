"""C-MOVE and C-GET: the instances an identifier names, and their files.

As Orthanc's C-MOVE SCP: the key of the Query/Retrieve Level (PatientID, StudyInstanceUID, or
AccessionNumber when it is given at the study level, SeriesInstanceUID, SOPInstanceUID) is
looked up exactly, as one value or a list of values separated by backslashes; without a level,
the most specific key given decides (instance, then series, study, patient).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import UID

from pharos.dicom.matching import Constraint, Kind
from pharos.dicom.query import Identifier
from pharos.index.base import Index, ResourceRef
from pharos.index.base_search import FindQuery, TagFilter
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.dicom_query import IdentifierError, query_level
from pharos.services.files import FileService
from pharos.services.find_request import BUILTIN_METADATA, main_column

PATIENT_ID = 0x00100020
ACCESSION_NUMBER = 0x00080050
STUDY_INSTANCE_UID = 0x0020000D
SERIES_INSTANCE_UID = 0x0020000E
SOP_INSTANCE_UID = 0x00080018

_KEYS = {
    Level.PATIENT: PATIENT_ID,
    Level.STUDY: STUDY_INSTANCE_UID,
    Level.SERIES: SERIES_INSTANCE_UID,
    Level.INSTANCE: SOP_INSTANCE_UID,
}
_BATCH = 500
_TRANSFER_SYNTAX = BUILTIN_METADATA["TransferSyntax"]
_SOP_CLASS_UID = BUILTIN_METADATA["SopClassUid"]


@dataclass(frozen=True, slots=True)
class StoredInstance:
    ref: ResourceRef
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax: str


class RetrieveService:
    def __init__(self, index: Index, files: FileService):
        self._index = index
        self._files = files

    def instances(self, identifier: Identifier, service: str) -> list[StoredInstance]:
        """The instances to send, in the order they were received, each once."""
        if identifier.level:
            level = query_level(identifier, service)
            resources = self._lookup(identifier, level)
            if resources is None:
                raise IdentifierError(
                    f"{service} request at the {level.title.lower()} level without "
                    f"{_key_name(_key(identifier, level))}"
                )
        else:
            # No level (not standard, but some SCUs do it): the most specific key decides.
            for level in reversed(Level):
                resources = self._lookup(identifier, level)
                if resources is not None:
                    break
            else:
                raise IdentifierError(f"{service} request without any identifier to retrieve")
        return self.stored(resources)

    def stored(self, resources: Iterable[ResourceRef]) -> list[StoredInstance]:
        """The instances of these resources, each once, with what sending them needs
        (instances deleted meanwhile are left out)."""
        seen: set[int] = set()
        refs: list[ResourceRef] = []
        for resource in resources:
            for ref in self._index.descendants(resource, Level.INSTANCE):
                if ref.pk not in seen:
                    seen.add(ref.pk)
                    refs.append(ref)
        found: list[StoredInstance] = []
        for start in range(0, len(refs), _BATCH):
            chunk = refs[start : start + _BATCH]
            tags = self._index.tag_values(Level.INSTANCE, [ref.pk for ref in chunk])
            for ref in chunk:
                uid = tags.get(ref.pk, {}).get(Level.INSTANCE, {}).get(SOP_INSTANCE_UID)
                metadata = self._index.all_metadata(ref)
                syntax = metadata.get(_TRANSFER_SYNTAX)
                sop_class = metadata.get(_SOP_CLASS_UID)
                if uid is None or syntax is None or sop_class is None:
                    continue  # deleted meanwhile
                found.append(StoredInstance(ref, uid, sop_class.value, syntax.value))
        return found

    def by_sop_instance_uids(self, uids: Iterable[str]) -> list[StoredInstance]:
        """The stored instances having one of these SOP Instance UIDs (exactly)."""
        unique = sorted(set(uids))
        column = main_column(SOP_INSTANCE_UID, Level.INSTANCE)
        found: list[StoredInstance] = []
        for start in range(0, len(unique), _BATCH):
            values = tuple(unique[start : start + _BATCH])
            constraint = Constraint(SOP_INSTANCE_UID, Kind.LIST, values, case_sensitive=True)
            query = FindQuery(Level.INSTANCE, (TagFilter(Level.INSTANCE, constraint, column),))
            found.extend(self.stored(self._index.find(query)))
        return found

    def load(self, instance: StoredInstance) -> Dataset:
        """The stored file, parsed (PharosError INEXISTENT_FILE if deleted meanwhile)."""
        data = self._files.read_dicom(instance.ref)
        try:
            # force: files without a File Meta Information header are accepted at ingest
            dataset = pydicom.dcmread(io.BytesIO(data), force=True)
        except Exception as exc:  # checked at ingest: this is storage corruption
            raise PharosError(
                ErrorCode.CORRUPTED_FILE,
                f"Stored file of {instance.ref.public_id} is unreadable: {exc}",
            ) from None
        meta = dataset.file_meta
        if "TransferSyntaxUID" not in meta:  # what ingest found is in the metadata
            meta.TransferSyntaxUID = UID(instance.transfer_syntax)
            meta.MediaStorageSOPClassUID = UID(instance.sop_class_uid)
            meta.MediaStorageSOPInstanceUID = UID(instance.sop_instance_uid)
        return dataset

    def _lookup(self, identifier: Identifier, level: Level) -> list[ResourceRef] | None:
        """The resources of `level` whose key equals one of the values given (None when the
        identifier has no value for the key)."""
        tag = _key(identifier, level)
        text = identifier.value(tag)
        if not text:
            return None
        values = tuple(sorted({value for value in text.split("\\") if value}))
        if not values:
            return None
        column = main_column(tag, level)
        constraint = Constraint(tag, Kind.LIST, values, case_sensitive=True)
        return self._index.find(FindQuery(level, (TagFilter(level, constraint, column),)))


def _key(identifier: Identifier, level: Level) -> int:
    if level is Level.STUDY and identifier.value(ACCESSION_NUMBER):
        return ACCESSION_NUMBER  # as Orthanc (compatibility with Ambra's SCU)
    return _KEYS[level]


def _key_name(tag: int) -> str:
    return {
        PATIENT_ID: "PatientID (0010,0020)",
        ACCESSION_NUMBER: "AccessionNumber (0008,0050)",
        STUDY_INSTANCE_UID: "StudyInstanceUID (0020,000D)",
        SERIES_INSTANCE_UID: "SeriesInstanceUID (0020,000E)",
        SOP_INSTANCE_UID: "SOPInstanceUID (0008,0018)",
    }[tag]
