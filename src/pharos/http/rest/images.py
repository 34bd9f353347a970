"""Images of instances: preview, image-uint8/16/int16, rendered, raw frames, numpy, Matlab, PDF.

Orthanc's routes and arguments; the format follows the Accept header (PNG by default).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from pharos.dicom.image_formats import (
    DEFAULT_JPEG_QUALITY,
    ImageFormat,
    encode,
    negotiate,
    unsupported_placeholder,
)
from pharos.dicom.rendering import RenderOptions
from pharos.http.arguments import flag, int_argument, optional_int_argument
from pharos.http.responses import JsonResponse
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.container import Services
from pharos.services.images import IMAGE_KINDS, Image, ImageService

# Already compressed: gzip would only spend CPU (the middleware skips encoded responses).
NOT_GZIPPED = {"Content-Encoding": "identity"}
FRAME_OPERATIONS = [
    "image-int16",
    "image-uint16",
    "image-uint8",
    "matlab",
    "numpy",
    "preview",
    "raw",
    "raw.gz",
    "rendered",
]


def router(services: Services) -> APIRouter:
    api = APIRouter(tags=["Images"])
    images = ImageService(services.resources, services.files)

    def image_route(kind: str) -> None:
        def first_frame(id: str, request: Request) -> Response:
            return _image(request, lambda fmt, q: images.image(id, 0, kind, fmt, q))

        def one_frame(id: str, frame: str, request: Request) -> Response:
            index = _frame(frame)
            return _image(request, lambda fmt, q: images.image(id, index, kind, fmt, q))

        summary = f"The {kind} of the first frame (PNG; JPEG or PAM by Accept)"
        api.add_api_route(
            f"/instances/{{id}}/{kind}", first_frame, methods=["GET"], summary=summary
        )
        api.add_api_route(
            f"/instances/{{id}}/frames/{{frame}}/{kind}",
            one_frame,
            methods=["GET"],
            summary=summary.replace("first frame", "frame"),
        )

    for kind in IMAGE_KINDS:
        image_route(kind)

    @api.get("/instances/{id}/rendered", summary="First frame windowed and resized")
    def rendered(id: str, request: Request) -> Response:
        options = _render_options(request)
        return _image(request, lambda fmt, q: images.rendered(id, 0, options, fmt, q))

    @api.get("/instances/{id}/frames/{frame}/rendered", summary="A frame windowed and resized")
    def frame_rendered(id: str, frame: str, request: Request) -> Response:
        index, options = _frame(frame), _render_options(request)
        return _image(request, lambda fmt, q: images.rendered(id, index, options, fmt, q))

    @api.get("/instances/{id}/frames/{frame}", summary="Operations on one frame")
    def frame_operations(id: str, frame: str) -> JsonResponse:
        index = _frame(frame)
        loaded = images.load(id)
        if index >= loaded.info.frames:
            raise PharosError(
                ErrorCode.PARAMETER_OUT_OF_RANGE,
                f"Frame {index} does not exist: the instance has {loaded.info.frames} frame(s)",
            )
        return JsonResponse(FRAME_OPERATIONS)

    @api.get("/instances/{id}/frames/{frame}/raw", summary="The frame's bytes as stored")
    def raw(id: str, frame: str) -> Response:
        image = images.raw(id, _frame(frame))
        headers = NOT_GZIPPED if image.media_type != "application/octet-stream" else None
        return Response(image.data, media_type=image.media_type, headers=headers)

    @api.get("/instances/{id}/frames/{frame}/raw.gz", summary="The frame's bytes, gzipped")
    def raw_gz(id: str, frame: str) -> Response:
        return _answer(images.raw(id, _frame(frame), gzipped=True))

    @api.get("/instances/{id}/matlab", summary="The first frame as an Octave/Matlab matrix")
    def matlab(id: str) -> Response:
        return Response(images.matlab(id, 0), media_type="text/plain")

    @api.get("/instances/{id}/frames/{frame}/matlab", summary="A frame as a Matlab matrix")
    def frame_matlab(id: str, frame: str) -> Response:
        return Response(images.matlab(id, _frame(frame)), media_type="text/plain")

    @api.get("/instances/{id}/frames/{frame}/numpy", summary="A frame: (height, width, channels)")
    def frame_numpy(id: str, frame: str, request: Request) -> Response:
        rescale, compress = _numpy_arguments(request)
        return _answer(images.numpy_frame(id, _frame(frame), rescale, compress), compress)

    @api.get("/instances/{id}/numpy", summary="All frames: (frames, height, width, channels)")
    def instance_numpy(id: str, request: Request) -> Response:
        rescale, compress = _numpy_arguments(request)
        return _answer(images.numpy_instance(id, rescale, compress), compress)

    @api.get("/series/{id}/numpy", summary="The series' frames in slice order, as numpy")
    def series_numpy(id: str, request: Request) -> Response:
        rescale, compress = _numpy_arguments(request)
        return _answer(images.numpy_series(id, rescale, compress), compress)

    @api.get("/instances/{id}/pdf", summary="The PDF embedded in an encapsulated PDF instance")
    def pdf(id: str) -> Response:
        return Response(images.pdf(id), media_type="application/pdf")

    return api


def _image(request: Request, produce: Callable[[ImageFormat, int], Image]) -> Response:
    """An image in the negotiated format; with `?returnUnsupportedImage`, Orthanc's placeholder
    instead of the 415 for an instance whose pixels cannot be decoded."""
    fmt, quality = _format(request)
    compressed = fmt is not ImageFormat.PAM
    try:
        return _answer(produce(fmt, quality), compressed)
    except PharosError as exc:
        if exc.http_status != 415 or not flag(request, "returnUnsupportedImage"):
            raise
        placeholder = encode(unsupported_placeholder(), fmt, quality)
        return _answer(Image(placeholder, fmt.media_type), compressed)


def _answer(image: Image, compressed: bool = True) -> Response:
    return Response(
        image.data, media_type=image.media_type, headers=NOT_GZIPPED if compressed else None
    )


def _frame(text: str) -> int:
    try:
        index = int(text)
    except ValueError:
        index = -1
    if index < 0:
        raise PharosError(
            ErrorCode.PARAMETER_OUT_OF_RANGE,
            f"Frame index must be a non-negative integer, got {text!r}",
        )
    return index


def _format(request: Request) -> tuple[ImageFormat, int]:
    fmt = negotiate(request.headers.get("accept"))
    quality = int_argument(request, "quality", DEFAULT_JPEG_QUALITY, minimum=1)
    if quality > 100:
        raise PharosError(
            ErrorCode.PARAMETER_OUT_OF_RANGE, f"Argument 'quality' must be <= 100, got {quality}"
        )
    return fmt, quality


def _float_argument(request: Request, name: str) -> float | None:
    text = request.query_params.get(name)
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise PharosError(
            ErrorCode.PARAMETER_OUT_OF_RANGE, f"Argument {name!r} must be a number, got {text!r}"
        )
    return value


def _render_options(request: Request) -> RenderOptions:
    width = _float_argument(request, "window-width")
    if width is not None and width <= 0:
        raise PharosError(
            ErrorCode.PARAMETER_OUT_OF_RANGE, f"Argument 'window-width' must be > 0, got {width}"
        )
    return RenderOptions(
        window_center=_float_argument(request, "window-center"),
        window_width=width,
        width=optional_int_argument(request, "width"),
        height=optional_int_argument(request, "height"),
        smooth=flag(request, "smooth"),
    )


def _numpy_arguments(request: Request) -> tuple[bool, bool]:
    """(rescale, compress): rescaling is on unless `?rescale=0`, as in Orthanc."""
    rescale = "rescale" not in request.query_params or flag(request, "rescale")
    return rescale, flag(request, "compress")
