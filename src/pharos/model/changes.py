"""The change log: what happened to which resource, numbered by a sequence."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from pharos.model.levels import Level


class ChangeType(IntEnum):
    """Orthanc's `ChangeType` numbers, plus `Deleted`, which Pharos logs (Orthanc does not)."""

    COMPLETED_SERIES = 1
    NEW_INSTANCE = 2
    NEW_PATIENT = 3
    NEW_SERIES = 4
    NEW_STUDY = 5
    ANONYMIZED_STUDY = 6
    ANONYMIZED_SERIES = 7
    MODIFIED_STUDY = 8
    MODIFIED_SERIES = 9
    ANONYMIZED_PATIENT = 10
    MODIFIED_PATIENT = 11
    STABLE_PATIENT = 12
    STABLE_STUDY = 13
    STABLE_SERIES = 14
    UPDATED_ATTACHMENT = 15
    UPDATED_METADATA = 16
    DELETED = 4096

    @property
    def title(self) -> str:
        """Orthanc's name for the change, e.g. 'NewInstance'."""
        return "".join(part.capitalize() for part in self.name.split("_"))

    @classmethod
    def stable_for(cls, level: Level) -> ChangeType:
        return {
            Level.PATIENT: cls.STABLE_PATIENT,
            Level.STUDY: cls.STABLE_STUDY,
            Level.SERIES: cls.STABLE_SERIES,
        }[level]

    @classmethod
    def new_for(cls, level: Level) -> ChangeType:
        return {
            Level.PATIENT: cls.NEW_PATIENT,
            Level.STUDY: cls.NEW_STUDY,
            Level.SERIES: cls.NEW_SERIES,
            Level.INSTANCE: cls.NEW_INSTANCE,
        }[level]


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    change_type: ChangeType
    level: Level
    public_id: str
    date: str  # Orthanc's ISO form, UTC: YYYYMMDDTHHMMSS

    def to_json(self) -> dict[str, object]:
        return {
            "ChangeType": self.change_type.title,
            "Date": self.date,
            "ID": self.public_id,
            "Path": self.level.path(self.public_id),
            "ResourceType": self.level.title,
            "Seq": self.seq,
        }
