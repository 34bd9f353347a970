"""Read stored instances back: the exact bytes received, or their parsed header."""

from __future__ import annotations

import io

import pydicom
from pydicom.dataset import Dataset

from pharos.dicom.structure import check_structure
from pharos.index.base import DICOM_CONTENT_TYPE, Attachment, Index, ResourceRef
from pharos.model.errors import ErrorCode, PharosError
from pharos.storage.base import StorageArea
from pharos.storage.compression import Compression, uncompress


class FileService:
    def __init__(self, index: Index, storage: StorageArea):
        self._index = index
        self._storage = storage

    def dicom_attachment(self, ref: ResourceRef) -> Attachment:
        attachment = self._index.attachment(ref, DICOM_CONTENT_TYPE)
        if attachment is None:
            raise PharosError(ErrorCode.INEXISTENT_FILE, f"No DICOM file for {ref.public_id}")
        return attachment

    def read(self, attachment: Attachment) -> bytes:
        data = self._storage.read(attachment.uuid)
        if attachment.compression == Compression.ZLIB_WITH_SIZE:
            return uncompress(data)
        return data

    def read_dicom(self, ref: ResourceRef) -> bytes:
        return self.read(self.dicom_attachment(ref))

    def one_dataset_each(self, refs: list[ResourceRef]) -> dict[int, Dataset]:
        """The header of one instance of each resource ({resource pk: dataset}); resources
        without instances, or deleted meanwhile, are left out."""
        instances = self._index.one_instance(refs)
        found: dict[int, Dataset] = {}
        for ref in refs:
            instance = instances.get(ref.pk)
            if instance is None:
                continue
            try:
                found[ref.pk] = self.read_dataset(instance)
            except PharosError as exc:
                if exc.code is not ErrorCode.INEXISTENT_FILE:
                    raise
        return found

    def read_dataset(self, ref: ResourceRef, with_pixels: bool = False) -> Dataset:
        """The stored file parsed by pydicom.

        Without `with_pixels`, the pixel data is not read; an empty Pixel Data element stands
        in for it, so that renderings still show the tag (as Orthanc's do).
        """
        data = self.read_dicom(ref)
        try:
            dataset = pydicom.dcmread(
                io.BytesIO(data), stop_before_pixels=not with_pixels, force=True
            )
            if not with_pixels and check_structure(data).pixel_data_offset is not None:
                dataset.add_new(PIXEL_DATA, "OB" if _is_encapsulated(dataset) else "OW", b"")
            return dataset
        except PharosError:
            raise
        except Exception as exc:  # the file was checked at ingest; this is storage corruption
            raise PharosError(
                ErrorCode.CORRUPTED_FILE, f"Stored file of {ref.public_id} is unreadable: {exc}"
            ) from None


def _is_encapsulated(dataset: Dataset) -> bool:
    meta = getattr(dataset, "file_meta", None)
    syntax = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    return syntax not in _NATIVE_SYNTAXES


_NATIVE_SYNTAXES = {"", "1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}
PIXEL_DATA = 0x7FE00010
