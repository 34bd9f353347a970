"""WADO-RS metadata of studies and series from the index, as DicomWeb.StudiesMetadata and
DicomWeb.SeriesMetadata of Orthanc's DICOMweb plugin choose:

- "Full" (the default): every instance's file, all its attributes (services/dicomweb_retrieve.py,
  cached per series);
- "MainDicomTags": the main and extra main tags the index holds for each instance and its
  parents, without reading a file;
- "Extrapolate": the same, plus the tags of StudiesMetadataExtrapolatedTags /
  SeriesMetadataExtrapolatedTags read from up to 3 instances picked at random and assumed
  constant across the study or series (the value most of them have).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Sequence
from enum import Enum
from typing import Any

from pydicom import Dataset

from pharos.dicom import dicom_json
from pharos.index.base import Index, ResourceRef
from pharos.model.errors import PharosError
from pharos.model.levels import Level
from pharos.services.files import FileService
from pharos.services.find_request import parse_tag_name

SOP_CLASS_UID = 0x00080016
_SOP_CLASS_METADATA = 10  # Orthanc's MetadataType_Instance_SopClassUid
EXTRAPOLATION_SAMPLE = 3


class MetadataMode(Enum):
    FULL = "Full"
    MAIN_DICOM_TAGS = "MainDicomTags"
    EXTRAPOLATE = "Extrapolate"


def metadata_mode(value: str, option: str) -> MetadataMode:
    """The mode named by an option's value; ValueError naming the option otherwise."""
    for mode in MetadataMode:
        if mode.value == value:
            return mode
    choices = ", ".join(f'"{mode.value}"' for mode in MetadataMode)
    raise ValueError(f"DicomWeb.{option} must be one of {choices}, not {value!r}")


class IndexedMetadata:
    def __init__(
        self,
        index: Index,
        files: FileService,
        studies: MetadataMode = MetadataMode.FULL,
        series: MetadataMode = MetadataMode.FULL,
        studies_extrapolated: Sequence[int] = (),
        series_extrapolated: Sequence[int] = (),
    ):
        self._index = index
        self._files = files
        self.studies = studies
        self.series = series
        self._extrapolated = {Level.STUDY: studies_extrapolated, Level.SERIES: series_extrapolated}

    def objects(self, resource: ResourceRef, mode: MetadataMode) -> list[bytes]:
        """The DICOM JSON objects (UTF-8) of the instances of a study or series, from the
        index (and, to extrapolate, a few files)."""
        instances = self._index.descendants(resource, Level.INSTANCE)
        if not instances:
            return []
        indexed = self._index.tag_values(Level.INSTANCE, [ref.pk for ref in instances])
        constant: dict[str, Any] = {}
        if mode is MetadataMode.EXTRAPOLATE:
            constant = self._extrapolate(instances, self._extrapolated.get(resource.level, ()))
        objects: list[bytes] = []
        for ref in instances:
            values: dict[int, str | None] = {}
            for level in Level:  # the parents' first: an instance's own tags win
                values.update(indexed.get(ref.pk, {}).get(level, {}))
            sop_class = self._index.metadata_value(ref, _SOP_CLASS_METADATA)
            if sop_class is not None:
                values[SOP_CLASS_UID] = sop_class.value
            answer = {**constant, **dicom_json.attributes(values)}
            objects.append(
                json.dumps(
                    dict(sorted(answer.items())), separators=(",", ":"), ensure_ascii=False
                ).encode("utf-8")
            )
        return objects

    def _extrapolate(self, instances: list[ResourceRef], tags: Sequence[int]) -> dict[str, Any]:
        """The JSON attributes of `tags` most of a few random instances agree on."""
        if not tags:
            return {}
        sample = random.sample(instances, min(EXTRAPOLATION_SAMPLE, len(instances)))
        votes: dict[str, Counter[str]] = {}
        for ref in sample:
            dataset = self._files.read_dataset(ref)
            subset = Dataset()
            for tag in tags:
                if tag in dataset:
                    subset.add(dataset[tag])
            for key, node in dicom_json.dataset_to_dicom_json(subset).items():
                votes.setdefault(key, Counter())[json.dumps(node, sort_keys=True)] += 1
        return {key: json.loads(counter.most_common(1)[0][0]) for key, counter in votes.items()}


def indexed_metadata(
    index: Index,
    files: FileService,
    studies: str,
    series: str,
    studies_extrapolated: Sequence[str],
    series_extrapolated: Sequence[str],
) -> IndexedMetadata:
    """The metadata modes of the DicomWeb section's options; ValueError naming a bad one."""
    return IndexedMetadata(
        index,
        files,
        metadata_mode(studies, "StudiesMetadata"),
        metadata_mode(series, "SeriesMetadata"),
        _tags(studies_extrapolated, "StudiesMetadataExtrapolatedTags"),
        _tags(series_extrapolated, "SeriesMetadataExtrapolatedTags"),
    )


def _tags(names: Sequence[str], option: str) -> tuple[int, ...]:
    tags: list[int] = []
    for name in names:
        try:
            tags.append(parse_tag_name(str(name)))
        except PharosError:
            raise ValueError(
                f"DicomWeb.{option}: {name!r} is neither a DICOM keyword nor a tag"
            ) from None
    return tuple(tags)
