"""WADO-RS rendered resources (PS3.18 10.4.1.1.3, 8.3.5.1): an instance or one of its frames
as a consumer-ready JPEG or PNG, windowed and scaled as the query parameters ask, through the
REST API's rendering (`/instances/{id}/rendered`). A study or series is rendered as one image,
its first instance (received first).

Thumbnails (PS3.18 10.4.1.1.4): the cached JPEG of `/thumbnail` in the REST API when nothing
else is asked; as PNG, or at another size (`viewport`), window or quality, rendered each time
from the same instance (a series' middle one, a study's first series')."""

from __future__ import annotations

import math

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from pharos.dicom.image_formats import ImageFormat
from pharos.dicom.rendering import RenderOptions
from pharos.http.dicomweb.multipart import media_ranges
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.dicomweb_server import DicomWebServer
from pharos.services.thumbnails import THUMBNAIL_QUALITY

NOT_GZIPPED = {"Content-Encoding": "identity"}
DEFAULT_QUALITY = 90
_FORMATS = {"image/jpeg": ImageFormat.JPEG, "image/png": ImageFormat.PNG}
_RENDERING = frozenset(("viewport", "window", "quality"))


def router(server: DicomWebServer) -> APIRouter:
    api = APIRouter(prefix=server.root, tags=["DICOMweb"])

    def render(request: Request, uids: tuple[str, ...], frame: int) -> Response:
        fmt = _format(request.headers.get("accept"))
        options, quality = _options(request)
        if len(uids) == 3:
            ref = server.retrieve.resource(uids)
        else:  # a study or series: its first instance (received first), as one image
            ref = server.retrieve.instances(uids)[0]
        try:
            image = server.images.rendered(ref.public_id, frame, options, fmt, quality)
        except PharosError as exc:
            if frame > 0 and exc.code is ErrorCode.PARAMETER_OUT_OF_RANGE:
                raise _bad(f"The instance has no frame {frame + 1} (frames start at 1)") from None
            raise
        return Response(image.data, media_type=image.media_type, headers=NOT_GZIPPED)

    @api.get(
        "/studies/{study}/rendered",
        summary="WADO-RS: the study (its first instance) rendered as JPEG or PNG",
    )
    def study(request: Request, study: str) -> Response:
        return render(request, (study,), 0)

    @api.get(
        "/studies/{study}/series/{series}/rendered",
        summary="WADO-RS: the series (its first instance) rendered as JPEG or PNG",
    )
    def series(request: Request, study: str, series: str) -> Response:
        return render(request, (study, series), 0)

    @api.get(
        "/studies/{study}/series/{series}/instances/{instance}/rendered",
        summary="WADO-RS: the instance (its first frame) rendered as JPEG or PNG",
    )
    def instance(request: Request, study: str, series: str, instance: str) -> Response:
        return render(request, (study, series, instance), 0)

    @api.get(
        "/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered",
        summary="WADO-RS: a frame (numbered from 1) rendered as JPEG or PNG",
    )
    def frame(request: Request, study: str, series: str, instance: str, frame: str) -> Response:
        if not frame.isascii() or not frame.isdigit() or int(frame) < 1:
            raise _bad(f"Frame numbers start at 1 (one frame per request): {frame!r}")
        return render(request, (study, series, instance), int(frame) - 1)

    def thumbnail(request: Request, uids: tuple[str, ...]) -> Response:
        fmt = _format(request.headers.get("accept"))
        ref = server.retrieve.resource(uids)
        thumbnails = server.thumbnails
        if fmt is ImageFormat.JPEG and not _RENDERING & request.query_params.keys():
            cached = {
                Level.STUDY: thumbnails.study,
                Level.SERIES: thumbnails.series,
                Level.INSTANCE: thumbnails.instance,
            }[ref.level]
            data = cached(ref.public_id)
        else:
            options, quality = _options(request, THUMBNAIL_QUALITY)
            data = thumbnails.custom(ref.level, ref.public_id, options, fmt, quality)
        return Response(data, media_type=fmt.media_type, headers=NOT_GZIPPED)

    @api.get("/studies/{study}/thumbnail", summary="WADO-RS: a thumbnail of the study")
    def study_thumbnail(request: Request, study: str) -> Response:
        return thumbnail(request, (study,))

    @api.get(
        "/studies/{study}/series/{series}/thumbnail",
        summary="WADO-RS: a thumbnail of the series",
    )
    def series_thumbnail(request: Request, study: str, series: str) -> Response:
        return thumbnail(request, (study, series))

    @api.get(
        "/studies/{study}/series/{series}/instances/{instance}/thumbnail",
        summary="WADO-RS: a thumbnail of the instance",
    )
    def instance_thumbnail(request: Request, study: str, series: str, instance: str) -> Response:
        return thumbnail(request, (study, series, instance))

    return api


def _format(accept: str | None) -> ImageFormat:
    """JPEG unless the client asks for PNG first; 406 for anything else."""
    if not accept:
        return ImageFormat.JPEG
    for kind, _ in media_ranges(accept):
        if kind in _FORMATS:
            return _FORMATS[kind]
        if kind in ("*/*", "image/*"):
            return ImageFormat.JPEG
    raise PharosError(
        ErrorCode.NOT_ACCEPTABLE,
        f"Cannot answer with {accept!r}: rendered images are image/jpeg or image/png",
        http_status=406,
    )


def _options(request: Request, default_quality: int = DEFAULT_QUALITY) -> tuple[RenderOptions, int]:
    """`viewport=vw,vh`, `window=center,width,function` (linear only) and `quality`."""
    parameters = request.query_params
    width = height = None
    if "viewport" in parameters:
        sizes = _numbers("viewport", parameters["viewport"])
        if len(sizes) != 2 or any(size < 1 or size != int(size) for size in sizes):
            raise _bad("viewport must be two positive integers vw,vh (no source rectangle)")
        width, height = int(sizes[0]), int(sizes[1])
    center = window = None
    if "window" in parameters:
        parts = parameters["window"].split(",")
        function = parts[2].strip().upper() if len(parts) == 3 else "LINEAR"
        if len(parts) not in (2, 3) or function != "LINEAR":
            raise _bad("window must be center,width[,linear]")
        center, window = _numbers("window", ",".join(parts[:2]))
        if window <= 0:
            raise _bad("The window width must be positive")
    quality = default_quality
    if "quality" in parameters:
        text = parameters["quality"]
        if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 100:
            raise _bad(f"quality must be an integer from 1 to 100, not {text!r}")
        quality = int(text)
    options = RenderOptions(
        window_center=center, window_width=window, width=width, height=height, smooth=True
    )
    return options, quality


def _numbers(name: str, text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise _bad(f"{name} must be numbers separated by commas, not {text!r}") from None
    if not all(math.isfinite(value) for value in values):
        raise _bad(f"{name} must be finite numbers, not {text!r}")
    return values


def _bad(details: str) -> PharosError:
    return PharosError(ErrorCode.BAD_REQUEST, details, http_status=400)
