"""Thumbnails: a small JPEG of an instance's first frame, generated on first request and kept
as an internal attachment of the instance. Other sizes and formats (DICOMweb's `viewport`,
PNG) are rendered on each request from the same instance, and not kept.

Why it stays fresh: instances are immutable; an overwrite (`OverwriteInstances`) deletes the
instance row with all its attachments and creates a new one, and deleting an instance deletes
its attachments, so a cached thumbnail never outlives the pixels it shows.

Why concurrent first requests are safe, also across processes sharing PostgreSQL: the
attachment is created only if absent (an expected revision that no existing attachment can
match); the loser of the race removes its own file and serves the image it rendered.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import TypeVar

from pharos.dicom import image_formats, rendering
from pharos.dicom.image_formats import ImageFormat
from pharos.dicom.pixels import decode_frame
from pharos.dicom.rendering import RenderOptions
from pharos.index.base import Attachment, Index, ResourceRef
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.cached_attachments import CachedAttachments
from pharos.services.files import FileService
from pharos.services.images import ImageService
from pharos.services.resources import ResourceService
from pharos.storage.base import StorageArea

log = logging.getLogger(__name__)
T = TypeVar("T")

# Below Orthanc's user range (1024-65535), above its built-in numbers (1-3): a client can
# neither create nor collide with it, and `/attachments` listings do not show it.
THUMBNAIL_CONTENT_TYPE = 900
THUMBNAIL_SIZE = 128  # longest side, in pixels
THUMBNAIL_QUALITY = 80


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
        self._resources = resources
        self._files = files
        self._images = ImageService(resources, files)
        self._cache = CachedAttachments(index, storage, store_md5)

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
        return self._first_image(ref, self.instance)

    def custom(
        self,
        level: Level,
        public_id: str,
        options: RenderOptions,
        fmt: ImageFormat,
        quality: int,
    ) -> bytes:
        """The thumbnail of a resource (the instance `instance`/`series`/`study` would show)
        rendered with other options or in another format, not cached."""
        ref = self._resources.resolve(level, public_id)
        return self._first_image(
            ref, lambda instance_id: self.render(instance_id, options, fmt, quality)
        )

    def render(
        self,
        instance_id: str,
        options: RenderOptions | None = None,
        fmt: ImageFormat = ImageFormat.JPEG,
        quality: int = THUMBNAIL_QUALITY,
    ) -> bytes:
        """The instance's first frame, without the cache. Without a size in `options`, with
        the file's window (as `/preview`) fit in THUMBNAIL_SIZE pixels keeping the aspect
        ratio, never enlarged."""
        options = options or RenderOptions(smooth=True)
        loaded = self._images.load(instance_id)
        frame = decode_frame(loaded.dataset, 0, loaded.info)
        if options.width is None and options.height is None:
            longest = max(loaded.info.rows, loaded.info.columns)
            box = THUMBNAIL_SIZE if longest > THUMBNAIL_SIZE else None
            options = dataclasses.replace(options, width=box, height=box)
        pixels = rendering.rendered(frame, loaded.dataset, loaded.info, 0, options)
        return image_formats.encode(pixels, fmt, quality)

    def _first_image(self, ref: ResourceRef, produce: Callable[[str], T]) -> T:
        """`produce` for the resource's representative instance: itself, a series' middle
        instance, or that of a study's first series (by series number) that has an image."""
        if ref.level is Level.INSTANCE:
            return produce(ref.public_id)
        if ref.level is Level.SERIES:
            return produce(self._middle_instance(ref))
        series = self._ordered(self._resources.descendants(ref, Level.SERIES), "SeriesNumber")
        failure: PharosError | None = None
        for candidate in series:
            try:
                return produce(self._middle_instance(candidate))
            except PharosError as exc:
                if exc.http_status != 415:
                    raise
                failure = exc
        raise failure or PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Study {ref.public_id} is empty")

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
        self._cache.keep(ref, THUMBNAIL_CONTENT_TYPE, data, replace)
        return data


def _number(text: str | None) -> float:
    """A sort key from an IS/DS main tag; missing or invalid ones last."""
    try:
        return float(str(text).split("\\")[0])
    except (TypeError, ValueError):
        return float("inf")
