"""DICOM tags of stored instances in Orthanc's renderings: tags, header, content, modules,
and the tags shared by, or listed for, every instance of a patient, study or series."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pharos.dicom.content import content, number_of_frames
from pharos.dicom.modules import extract_module, shared_tags
from pharos.dicom.orthanc_json import TagFormat, convert_format, dataset_to_json, header_to_json
from pharos.index.base import Index, ResourceRef
from pharos.model.errors import unknown_resource
from pharos.model.levels import Level
from pharos.services.files import FileService
from pharos.services.options import ServiceOptions


class TagService:
    def __init__(self, index: Index, files: FileService, options: ServiceOptions):
        self._index = index
        self._files = files
        self._options = options

    def tags(
        self, ref: ResourceRef, fmt: TagFormat = TagFormat.FULL, ignore_length: Iterable[int] = ()
    ) -> dict[str, Any]:
        dataset = self._files.read_dataset(ref)
        return dataset_to_json(
            dataset,
            fmt,
            ignore_length=ignore_length,
            default_encoding=self._options.default_encoding,
        )

    def header(self, ref: ResourceRef, fmt: TagFormat) -> dict[str, Any]:
        dataset = self._files.read_dataset(ref)
        return header_to_json(getattr(dataset, "file_meta", None), fmt)

    def content(self, ref: ResourceRef, path: list[str]) -> list[str] | bytes:
        with_pixels = bool(path) and path[0].lower() == "7fe0-0010"
        dataset = self._files.read_dataset(ref, with_pixels=with_pixels)
        return content(dataset, path, transfer_syntax=_transfer_syntax(dataset))

    def frame_count(self, ref: ResourceRef) -> int:
        dataset = self._files.read_dataset(ref)
        return number_of_frames(dataset, transfer_syntax=_transfer_syntax(dataset))

    def module(self, ref: ResourceRef, module: Level, fmt: TagFormat) -> dict[str, Any]:
        """Orthanc 1.10: the module's tags, read from one instance of the resource."""
        instances = self._index.descendants(ref, Level.INSTANCE)
        if not instances:
            raise unknown_resource(ref.public_id)
        return convert_format(extract_module(self.tags(instances[0]), module), fmt)

    def shared(self, ref: ResourceRef, fmt: TagFormat) -> dict[str, Any]:
        instances = self._index.descendants(ref, Level.INSTANCE)
        return convert_format(shared_tags(self.tags(i) for i in instances), fmt)

    def of_instances(self, ref: ResourceRef, fmt: TagFormat) -> dict[str, Any]:
        return {
            instance.public_id: self.tags(instance, fmt)
            for instance in self._index.descendants(ref, Level.INSTANCE)
        }


def _transfer_syntax(dataset: Any) -> str | None:
    meta = getattr(dataset, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        return None
    return str(meta.TransferSyntaxUID)
