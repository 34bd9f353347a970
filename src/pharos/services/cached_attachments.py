"""Files Pharos derives from a resource and keeps beside it as internal attachments (the
thumbnail, the DICOMweb metadata): written once, safe when several requests or processes
make the same one at the same time, removed with their resource."""

from __future__ import annotations

import hashlib
import logging
import uuid

from pharos.index.base import Attachment, Index, ResourceRef
from pharos.index.base_annotations import ExpectedRevision
from pharos.model.errors import ErrorCode, PharosError
from pharos.storage.base import StorageArea
from pharos.storage.compression import Compression

log = logging.getLogger(__name__)

# Never matches an existing attachment: creates the record, or fails if one exists.
_ONLY_IF_ABSENT = ExpectedRevision(-1, "")


class CachedAttachments:
    def __init__(self, index: Index, storage: StorageArea, store_md5: bool = True):
        self._index = index
        self._storage = storage
        self._store_md5 = store_md5

    def keep(
        self, ref: ResourceRef, content_type: int, data: bytes, replace: Attachment | None
    ) -> None:
        """Keep `data` as the `content_type` attachment of `ref`, replacing `replace` (a
        record whose file was lost), or only if there is none. When another request kept
        its own first, ours is dropped harmlessly; PharosError UNKNOWN_RESOURCE when the
        resource was deleted (or overwritten) meanwhile."""
        md5 = hashlib.md5(data).hexdigest() if self._store_md5 else None
        record = Attachment(
            content_type=content_type,
            uuid=str(uuid.uuid4()),
            compressed_size=len(data),
            uncompressed_size=len(data),
            compression=int(Compression.NONE),  # small, or already compressed (JPEG)
            uncompressed_md5=md5,
            compressed_md5=md5,
        )
        expected = (
            _ONLY_IF_ABSENT
            if replace is None
            else ExpectedRevision(replace.revision, replace.uncompressed_md5 or "")
        )
        self._storage.create(record.uuid, data)
        try:
            update = self._index.set_attachment(ref, record, expected, log_change=False)
        except PharosError as exc:
            # Kept by another request first (REVISION), or the resource is gone: nothing
            # references our file.
            self._remove(record.uuid)
            if exc.code is ErrorCode.REVISION:
                return
            raise
        except BaseException:
            self._discard(record.uuid)
            raise
        if update.replaced_uuid is not None:
            self._remove(update.replaced_uuid)

    def _remove(self, file_uuid: str) -> None:
        try:
            self._storage.remove(file_uuid)
        except Exception:
            log.exception("Could not remove file %s", file_uuid)

    def _discard(self, file_uuid: str) -> None:
        """After a failure whose outcome is unknown (lost during the commit), remove the file
        only if the index does not reference it; else the start-up clean-up decides."""
        try:
            if file_uuid in self._index.unknown_files([file_uuid]):
                self._storage.remove(file_uuid)
        except Exception:
            log.warning("Kept cached file %s after a failure; start-up checks it", file_uuid)
