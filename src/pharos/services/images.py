"""Images of stored instances: decoded frames as PNG/JPEG/PAM, raw frames, numpy, Matlab, PDF."""

from __future__ import annotations

import gzip
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from pharos.dicom import image_formats, rendering
from pharos.dicom.image_formats import ImageFormat
from pharos.dicom.pixels import (
    ImageInfo,
    decode_frame,
    image_info,
    raw_frame,
    raw_frame_media_type,
)
from pharos.dicom.rendering import RenderOptions
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.files import FileService
from pharos.services.resources import ResourceService

# Orthanc's extraction modes: what each image route does to a decoded frame.
TRUNCATIONS: dict[str, type[np.generic]] = {
    "image-uint8": np.uint8,
    "image-uint16": np.uint16,
    "image-int16": np.int16,
}
IMAGE_KINDS = ("preview", *TRUNCATIONS)


@dataclass(frozen=True, slots=True)
class Image:
    """An encoded image or file, with its content type."""

    data: bytes
    media_type: str


@dataclass(frozen=True, slots=True)
class Loaded:
    dataset: Dataset
    info: ImageInfo


class ImageService:
    def __init__(self, resources: ResourceService, files: FileService):
        self._resources = resources
        self._files = files

    def _dataset(self, instance_id: str) -> Dataset:
        ref = self._resources.resolve(Level.INSTANCE, instance_id)
        return self._files.read_dataset(ref, with_pixels=True)

    def load(self, instance_id: str) -> Loaded:
        dataset = self._dataset(instance_id)
        return Loaded(dataset, image_info(dataset))

    def image(
        self, instance_id: str, frame: int, kind: str, fmt: ImageFormat, quality: int
    ) -> Image:
        """`preview`, `image-uint8`, `image-uint16` or `image-int16` of one frame."""
        loaded = self.load(instance_id)
        decoded = decode_frame(loaded.dataset, frame, loaded.info)
        if kind == "preview":
            pixels = rendering.preview(decoded, loaded.dataset, loaded.info, frame)
        else:
            pixels = rendering.truncate(decoded, loaded.info, TRUNCATIONS[kind])
        return Image(image_formats.encode(pixels, fmt, quality), fmt.media_type)

    def rendered(
        self,
        instance_id: str,
        frame: int,
        options: RenderOptions,
        fmt: ImageFormat,
        quality: int,
    ) -> Image:
        loaded = self.load(instance_id)
        decoded = decode_frame(loaded.dataset, frame, loaded.info)
        pixels = rendering.rendered(decoded, loaded.dataset, loaded.info, frame, options)
        return Image(image_formats.encode(pixels, fmt, quality), fmt.media_type)

    def raw(self, instance_id: str, frame: int, gzipped: bool = False) -> Image:
        """The frame's bytes as stored (fragments for encapsulated syntaxes)."""
        loaded = self.load(instance_id)
        data = raw_frame(loaded.dataset, frame, loaded.info)
        if gzipped:
            return Image(gzip.compress(data, compresslevel=6), "application/gzip")
        return Image(data, raw_frame_media_type(loaded.info.transfer_syntax))

    def matlab(self, instance_id: str, frame: int) -> str:
        loaded = self.load(instance_id)
        return rendering.matlab(decode_frame(loaded.dataset, frame, loaded.info), loaded.info)

    def numpy_frame(self, instance_id: str, frame: int, rescale: bool, compress: bool) -> Image:
        """(height, width, channels)."""
        loaded = self.load(instance_id)
        array = _numpy_frame(loaded, frame, rescale)
        return _numpy_image(array, compress)

    def numpy_instance(self, instance_id: str, rescale: bool, compress: bool) -> Image:
        """(frames, height, width, channels)."""
        loaded = self.load(instance_id)
        return _numpy_image(_numpy_frames([loaded], rescale), compress)

    def numpy_series(self, series_id: str, rescale: bool, compress: bool) -> Image:
        """Every frame of every instance, in slice order: (frames, height, width, channels)."""
        ref = self._resources.resolve(Level.SERIES, series_id)
        instances = self._resources.descendants(ref, Level.INSTANCE)
        if not instances:
            raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Series {series_id} has no instance")
        loaded = []
        for instance in instances:
            dataset = self._files.read_dataset(instance, with_pixels=True)
            loaded.append(Loaded(dataset, image_info(dataset)))
        return _numpy_image(_numpy_frames(slice_order(loaded), rescale), compress)

    def pdf(self, instance_id: str) -> bytes:
        """The Encapsulated Document of an encapsulated PDF; 404 for any other instance."""
        ref = self._resources.resolve(Level.INSTANCE, instance_id)
        dataset = self._files.read_dataset(ref)
        mime = str(dataset.get("MIMETypeOfEncapsulatedDocument") or "").strip().lower()
        document = dataset.get("EncapsulatedDocument")
        if mime != "application/pdf" or not document:
            raise PharosError(
                ErrorCode.UNKNOWN_RESOURCE,
                f"Instance {instance_id} does not contain an encapsulated PDF document",
            )
        data = bytes(document)
        length = dataset.get("EncapsulatedDocumentLength")
        if isinstance(length, int) and 0 < length <= len(data):
            data = data[:length]  # drop the padding to an even length
        return data


def _numpy_frame(loaded: Loaded, frame: int, rescale: bool) -> np.ndarray:
    decoded = decode_frame(loaded.dataset, frame, loaded.info)
    return rendering.numpy_frame(decoded, loaded.dataset, loaded.info, frame, rescale)


def _numpy_frames(instances: list[Loaded], rescale: bool) -> np.ndarray:
    frames = [
        _numpy_frame(loaded, index, rescale)
        for loaded in instances
        for index in range(loaded.info.frames)
    ]
    shapes = {(frame.shape, frame.dtype.str) for frame in frames}
    if len(shapes) > 1:
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT,
            "The frames differ in size or pixel format and cannot form one array: "
            + ", ".join(sorted(f"{shape} {dtype}" for shape, dtype in shapes)),
            http_status=415,
        )
    return np.stack(frames)


def _numpy_image(array: np.ndarray, compress: bool) -> Image:
    return Image(image_formats.numpy_file(array, compress), "application/octet-stream")


def slice_order(instances: list[Loaded]) -> list[Loaded]:
    """Along the normal of the slices when every instance has a position and orientation,
    else by Instance Number, else as stored."""

    def position(loaded: Loaded) -> float | None:
        ds = loaded.dataset
        try:
            orientation = [float(v) for v in ds.ImageOrientationPatient]
            origin = [float(v) for v in ds.ImagePositionPatient]
        except (AttributeError, TypeError, ValueError):
            return None
        if len(orientation) != 6 or len(origin) != 3:
            return None
        normal = np.cross(orientation[:3], orientation[3:])
        return float(np.dot(normal, origin))

    positions = [position(loaded) for loaded in instances]
    if all(p is not None for p in positions) and len(set(positions)) == len(positions):
        keyed = sorted(zip(positions, range(len(instances)), strict=True))
        return [instances[i] for _, i in keyed]

    def number(loaded: Loaded) -> int | None:
        try:
            return int(loaded.dataset.InstanceNumber)
        except (AttributeError, TypeError, ValueError):
            return None

    numbers = [number(loaded) for loaded in instances]
    if all(n is not None for n in numbers):
        order = sorted(range(len(instances)), key=lambda i: numbers[i] or 0)
        return [instances[i] for i in order]
    return instances
