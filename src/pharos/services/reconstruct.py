"""Re-read the stored files of instances to index their main tags again (Orthanc's
`/{level}/{id}/reconstruct` and `/tools/reconstruct`): after a change of
`ExtraMainDicomTags`, or of the character set rules, for instances stored before it.

Each instance's tags are rewritten from its own file; a series, study and patient take the
tags of their first instance (in the order received), as at ingest. With `files`
("ReconstructFiles", Orthanc 1.11+), each file is first written again by the store service
(IngestTranscoding and StorageCompression as configured now), its identity kept.
"""

from __future__ import annotations

from collections.abc import Iterator

from pharos.dicom.parse import ParsedInstance, parse_instance
from pharos.index.base import Index, ResourceRef
from pharos.index.base_search import MainTagsUpdate
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.files import FileService
from pharos.services.options import ServiceOptions
from pharos.services.store import StoreService

_BATCH = 200  # instances parsed and written per transaction


class Reconstructor:
    def __init__(
        self,
        index: Index,
        files: FileService,
        options: ServiceOptions,
        store: StoreService | None = None,
    ):
        self._index = index
        self._files = files
        self._options = options
        self._store = store

    def resource(self, ref: ResourceRef, files: bool = False) -> None:
        """Reconstruct the instances below (or at) `ref`, and the series, study and patient
        above them from their first instance; with `files`, write their files again first."""
        if files and self._store is None:
            raise PharosError(ErrorCode.NOT_IMPLEMENTED, '"ReconstructFiles" is not available')
        instances = self._index.descendants(ref, Level.INSTANCE)  # in the order received
        first_of_series: dict[int, tuple[ResourceRef, ParsedInstance]] = {}
        for batch in _batches(instances):
            updates = []
            for instance in batch:
                parsed = self._rewrite(instance) if files else self._parse(instance)
                updates.append(
                    MainTagsUpdate(instance.pk, Level.INSTANCE, parsed.tags[Level.INSTANCE])
                )
                if instance.parent_pk is not None:
                    first_of_series.setdefault(instance.parent_pk, (instance, parsed))
            self._index.set_main_tags(updates)
        parents: dict[int, tuple[Level, ParsedInstance]] = {}
        for series_pk, (instance, parsed) in first_of_series.items():
            parents[series_pk] = (Level.SERIES, parsed)
            study = self._index.ancestor(instance, Level.STUDY)
            parents.setdefault(study.pk, (Level.STUDY, parsed))
            if study.parent_pk is not None:
                parents.setdefault(study.parent_pk, (Level.PATIENT, parsed))
        updates = [
            MainTagsUpdate(
                pk,
                level,
                parsed.tags[level],
                parsed.tags[Level.PATIENT] if level is Level.STUDY else None,
            )
            for pk, (level, parsed) in parents.items()
        ]
        if updates:
            self._index.set_main_tags(updates)

    def _rewrite(self, instance: ResourceRef) -> ParsedInstance:
        assert self._store is not None
        return self._store.rewrite(instance, self._files.read_dicom(instance))

    def _parse(self, instance: ResourceRef) -> ParsedInstance:
        data = self._files.read_dicom(instance)
        return parse_instance(data, self._options.default_encoding, self._options.extra_main_tags)


def _batches(items: list[ResourceRef]) -> Iterator[list[ResourceRef]]:
    for start in range(0, len(items), _BATCH):
        yield items[start : start + _BATCH]
