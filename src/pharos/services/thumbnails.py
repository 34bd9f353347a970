"""Thumbnails: a small JPEG of an instance's first frame, generated on first request and kept
as an internal attachment of the instance.

Why it stays fresh: instances are immutable; an overwrite (`OverwriteInstances`) deletes the
instance row with all its attachments and creates a new one, and deleting an instance deletes
its attachments, so a cached thumbnail never outlives the pixels it shows.

Why concurrent first requests are safe, also across processes sharing PostgreSQL: the
attachment is created only if absent (an expected revision that no existing attachment can
match); the loser of the race removes its own file and serves the image it rendered.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

from pharos.dicom import rendering
from pharos.dicom.image_formats import encode_jpeg
from pharos.dicom.pixels import decode_frame
from pharos.dicom.rendering import RenderOptions
from pharos.index.base import Attachment, Index, ResourceRef
from pharos.index.base_annotations import ExpectedRevision
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.files import FileService
from pharos.services.images import ImageService
from pharos.services.resources import ResourceService
from pharos.storage.base import StorageArea
from pharos.storage.compression import Compression

log = logging.getLogger(__name__)

# Below Orthanc's user range (1024-65535), above its built-in numbers (1-3): a client can
# neither create nor collide with it, and `/attachments` listings do not show it.
THUMBNAIL_CONTENT_TYPE = 900
THUMBNAIL_SIZE = 128  # longest side, in pixels
THUMBNAIL_QUALITY = 80
# Never matches an existing attachment: creates the thumbnail, or fails if one exists.
_ONLY_IF_ABSENT = ExpectedRevision(-1, "")


class ThumbnailService:
    def __init__(
        self,
        index: Index,
        storage: StorageArea,
        resources: ResourceService,
        files: FileService,
        store_md5: bool = True,
    ):
        self._index = index
        self._storage = storage
        self._resources = resources
        self._files = files
        self._images = ImageService(resources, files)
        self._store_md5 = store_md5

    def instance(self, instance_id: str) -> bytes:
        ref = self._resources.resolve(Level.INSTANCE, instance_id)
        cached = self._index.attachment(ref, THUMBNAIL_CONTENT_TYPE)
        if cached is not None:
            try:
                return self._files.read(cached)
            except Exception as exc:  # a lost file: render again and replace the record
                log.warning("Thumbnail of %s unreadable (%s): rendering it again", instance_id, exc)
                return self._generate(ref, replace=cached)
        return self._generate(ref, replace=None)

    def series(self, series_id: str) -> bytes:
        """The thumbnail of the series' middle instance (by instance number)."""
        ref = self._resources.resolve(Level.SERIES, series_id)
        return self.instance(self._middle_instance(ref))

    def study(self, study_id: str) -> bytes:
        """The thumbnail of the first series (by series number) that has an image."""
        ref = self._resources.resolve(Level.STUDY, study_id)
        series = self._ordered(self._resources.descendants(ref, Level.SERIES), "SeriesNumber")
        failure: PharosError | None = None
        for candidate in series:
            try:
                return self.instance(self._middle_instance(candidate))
            except PharosError as exc:
                if exc.http_status != 415:
                    raise
                failure = exc
        raise failure or PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Study {study_id} is empty")

    def render(self, instance_id: str) -> bytes:
        """The thumbnail as a JPEG, without the cache: the first frame with the file's window
        (as `/preview`), fit in THUMBNAIL_SIZE pixels keeping the aspect ratio, never enlarged."""
        loaded = self._images.load(instance_id)
        frame = decode_frame(loaded.dataset, 0, loaded.info)
        longest = max(loaded.info.rows, loaded.info.columns)
        box = THUMBNAIL_SIZE if longest > THUMBNAIL_SIZE else None
        options = RenderOptions(width=box, height=box, smooth=True)
        pixels = rendering.rendered(frame, loaded.dataset, loaded.info, 0, options)
        return encode_jpeg(pixels, THUMBNAIL_QUALITY)

    def _middle_instance(self, series: ResourceRef) -> str:
        instances = self._resources.descendants(series, Level.INSTANCE)
        if not instances:
            raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Series {series.public_id} is empty")
        ordered = self._ordered(instances, "InstanceNumber")
        return ordered[(len(ordered) - 1) // 2].public_id

    def _ordered(self, refs: list[ResourceRef], number_tag: str) -> list[ResourceRef]:
        """By the number tag (series or instance number), then in order of arrival."""
        infos = self._index.resources_info(refs)
        infos.sort(key=lambda info: (_number(info.tags.get(number_tag)), info.ref.pk))
        return [info.ref for info in infos]

    def _generate(self, ref: ResourceRef, replace: Attachment | None) -> bytes:
        data = self.render(ref.public_id)
        md5 = hashlib.md5(data).hexdigest() if self._store_md5 else None
        record = Attachment(
            content_type=THUMBNAIL_CONTENT_TYPE,
            uuid=str(uuid.uuid4()),
            compressed_size=len(data),
            uncompressed_size=len(data),
            compression=int(Compression.NONE),  # a JPEG does not deflate
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
            # Another request cached it first (REVISION), or the instance was deleted or
            # overwritten meanwhile (UNKNOWN_RESOURCE): nothing references our file.
            self._remove(record.uuid)
            if exc.code is ErrorCode.REVISION:
                return data
            raise
        except BaseException:
            self._discard(record.uuid)
            raise
        if update.replaced_uuid is not None:
            self._remove(update.replaced_uuid)
        return data

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
            log.warning("Kept thumbnail file %s after a failure; start-up checks it", file_uuid)


def _number(text: str | None) -> float:
    """A sort key from an IS/DS main tag; missing or invalid ones last."""
    try:
        return float(str(text).split("\\")[0])
    except (TypeError, ValueError):
        return float("inf")
