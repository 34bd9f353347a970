"""The search part of the index interface (`Index` in base.py combines the parts), and the
records it takes: a `FindQuery` is what /tools/find asks of the database once the request
has been checked (constraints on indexed tags, labels, order)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Protocol

from pharos.dicom.matching import Constraint
from pharos.model.levels import Level

if TYPE_CHECKING:
    from pharos.index.base import ResourceRef


class LabelsMode(Enum):
    ALL = "All"
    ANY = "Any"
    NONE = "None"


@dataclass(frozen=True, slots=True)
class TagFilter:
    """A constraint on a tag the index holds for the resources of `level` (the query level or
    one above it): a main tag column, or (`column` None) an extra main tag."""

    level: Level
    constraint: Constraint
    column: str | None = None


class SortSource(Enum):
    COLUMN = "column"  # a column of the level table of `level` (main tag or built-in metadata)
    EXTRA_TAG = "extra"  # an extra main tag of `level`; `key` is the tag number
    METADATA = "metadata"  # the metadata table of the resource; `key` is the metadata type
    LAST_UPDATE = "last-update"  # when the resource last received an instance


@dataclass(frozen=True, slots=True)
class SortKey:
    source: SortSource
    level: Level
    key: str | int
    descending: bool = False


@dataclass(frozen=True, slots=True)
class FindQuery:
    level: Level
    filters: tuple[TagFilter, ...] = ()
    # ModalitiesInStudy at the study level: at least one series whose Modality matches.
    modalities: tuple[Constraint, ...] = ()
    labels: tuple[str, ...] = ()
    labels_mode: LabelsMode = LabelsMode.ALL
    # Resources come in creation order unless sorted (ties keep creation order).
    order: tuple[SortKey, ...] = ()


@dataclass(frozen=True, slots=True)
class MainTagsUpdate:
    """New main tags for a resource (/reconstruct): keyed as in `NewInstance.tags`, extra
    main tags included; `patient_tags` are the copy a study keeps."""

    pk: int
    level: Level
    tags: Mapping[str, str]
    patient_tags: Mapping[str, str] | None = None


# Values of tags by tag number, grouped by the level they belong to.
LevelTags = dict[Level, dict[int, str]]


class SearchIndex(Protocol):
    def find(self, query: FindQuery, since: int = 0, limit: int | None = None) -> list[ResourceRef]:
        """The resources matching every filter, sorted, from the `since`-th on."""
        ...

    def lookup_identifier(self, value: str, level: Level | None = None) -> list[ResourceRef]:
        """Patients, studies, series and instances whose PatientID, StudyInstanceUID,
        SeriesInstanceUID or SOPInstanceUID equals `value` (case-insensitively); with `level`,
        the resources of that level only (one statement instead of four)."""
        ...

    def tag_values(self, level: Level, pks: list[int], extras: bool = True) -> dict[int, LevelTags]:
        """The main and extra main tags of the resources (of `level`) and of their
        ancestors, as indexed: {pk: {level: {tag: value}}} (a study's patient tags are its
        own copy). Without `extras`, the main tags only (one statement less)."""
        ...

    def computed_tags(
        self, level: Level, pks: list[int], wanted: frozenset[int]
    ) -> dict[int, dict[int, str]]:
        """The computed tags among `wanted` (counts of children, ModalitiesInStudy,
        SOPClassesInStudy, and an instance's SOPClassUID from its column) that exist at
        `level`."""
        ...

    def one_instance(self, refs: list[ResourceRef]) -> dict[int, ResourceRef]:
        """An instance below (or at) each resource: the first one received."""
        ...

    def set_main_tags(self, updates: list[MainTagsUpdate]) -> None:
        """Replace the main and extra main tags of resources, in one transaction."""
        ...
