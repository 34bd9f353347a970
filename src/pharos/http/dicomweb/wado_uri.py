"""WADO-URI (PS3.18 9, formerly WADO) under DicomWeb.WadoRoot (`/wado`): one instance named by
its UIDs, as its DICOM file or one frame rendered as JPEG, PNG or GIF.

As Orthanc's DICOMweb plugin: objectUID is required, studyUID and seriesUID are checked when
given, requests that cannot be answered are 400s. Beyond the plugin: frameNumber,
rows/columns, windowCenter/windowWidth, imageQuality, region, annotation, and transferSyntax
for DICOM answers. Presentation states (presentationUID) are refused.
"""

from __future__ import annotations

import io
import math

from fastapi import APIRouter
from PIL import Image as PILImage
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from pharos.dicom.annotation import KINDS as ANNOTATIONS
from pharos.dicom.image_formats import ImageFormat
from pharos.dicom.rendering import RenderOptions
from pharos.dicom.transcode import TranscodingError, check_target
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.dicomweb_server import DicomWebServer

NOT_GZIPPED = {"Content-Encoding": "identity"}
DEFAULT_QUALITY = 90
DICOM = "application/dicom"
GIF = "image/gif"
_RENDERED = {"image/jpeg": ImageFormat.JPEG, "image/png": ImageFormat.PNG, GIF: ImageFormat.PNG}
# Parameters of PS3.18 Table 9.1-1 Pharos does not implement: refused, not ignored.
_REFUSED = ("presentationUID", "presentationSeriesUID")


def router(server: DicomWebServer, root: str) -> APIRouter:
    api = APIRouter(tags=["DICOMweb"])

    @api.get(root, summary="WADO-URI: an instance as DICOM, or a frame as JPEG, PNG or GIF")
    def wado(request: Request) -> Response:
        parameters = request.query_params
        if parameters.get("requestType") != "WADO":
            raise _bad('requestType must be "WADO"')
        sop = parameters.get("objectUID")
        if not sop:
            raise _bad("objectUID (the SOP Instance UID) is required")
        for name in _REFUSED:
            if name in parameters:
                raise _bad(f"The WADO-URI parameter {name} is not supported")
        if parameters.get("anonymize", "no") not in ("", "no"):
            raise _bad("Anonymization through WADO-URI is not supported")
        content_type = _content_type(parameters.get("contentType"))
        ref = server.retrieve.instance_by_uid(
            sop, parameters.get("studyUID") or None, parameters.get("seriesUID") or None
        )
        if content_type == DICOM:
            syntax = parameters.get("transferSyntax") or None
            if syntax is not None:
                try:
                    syntax = str(check_target(syntax))
                except TranscodingError as exc:
                    raise _bad(str(exc)) from None
            try:
                data = server.retrieve.file(ref, syntax)
            except TranscodingError as exc:
                raise PharosError(ErrorCode.NOT_ACCEPTABLE, str(exc), http_status=406) from None
            return Response(data, media_type=DICOM, headers=NOT_GZIPPED)
        frame = _integer(parameters, "frameNumber", 1) or 1
        options, quality = _render_options(parameters)
        try:
            image = server.images.rendered(
                ref.public_id, frame - 1, options, _RENDERED[content_type], quality
            )
        except PharosError as exc:
            if exc.code is ErrorCode.PARAMETER_OUT_OF_RANGE:
                raise _bad(f"The instance has no frame {frame} (frames start at 1)") from None
            raise
        if content_type == GIF:
            return Response(_gif(image.data), media_type=GIF, headers=NOT_GZIPPED)
        return Response(image.data, media_type=image.media_type, headers=NOT_GZIPPED)

    return api


def _content_type(value: str | None) -> str:
    """The first supported type of the contentType list (PS3.18 9.1.2.1.5); JPEG when absent
    or "*/*", as Orthanc."""
    if not value:
        return "image/jpeg"
    for item in value.split(","):
        kind = item.split(";", 1)[0].strip().lower()
        if kind in ("*/*", "image/*", "image/jpg"):
            return "image/jpeg"
        if kind == DICOM or kind in _RENDERED:
            return kind
    raise _bad(
        f"Unsupported contentType {value!r}: application/dicom, image/jpeg, image/png or image/gif"
    )


def _render_options(parameters: QueryParams) -> tuple[RenderOptions, int]:
    rows = _integer(parameters, "rows", 1)
    columns = _integer(parameters, "columns", 1)
    center = _decimal(parameters, "windowCenter")
    width = _decimal(parameters, "windowWidth")
    if (center is None) != (width is None):
        raise _bad("windowCenter and windowWidth go together")
    if width is not None and width <= 0:
        raise _bad("windowWidth must be positive")
    quality = _integer(parameters, "imageQuality", 1) or DEFAULT_QUALITY
    if quality > 100:
        raise _bad(f"imageQuality must be from 1 to 100, not {quality}")
    options = RenderOptions(
        window_center=center,
        window_width=width,
        width=columns,
        height=rows,
        smooth=True,
        region=_region(parameters.get("region")),
        annotation=_annotation(parameters.get("annotation")),
    )
    return options, quality


def _region(text: str | None) -> tuple[float, float, float, float] | None:
    """`region=xmin,ymin,xmax,ymax`: fractions of the source image, 0 to 1, min below max."""
    if not text:
        return None
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if (
        len(values) != 4
        or not all(0.0 <= value <= 1.0 for value in values)
        or values[0] >= values[2]
        or values[1] >= values[3]
    ):
        raise _bad(
            "region must be xmin,ymin,xmax,ymax: fractions of the image from 0 to 1, each "
            f"minimum below its maximum, not {text!r}"
        )
    return values[0], values[1], values[2], values[3]


def _annotation(text: str | None) -> tuple[str, ...]:
    """`annotation=patient,technique` (either or both)."""
    if not text:
        return ()
    kinds = tuple(dict.fromkeys(part.strip().lower() for part in text.split(",")))
    if not all(kind in ANNOTATIONS for kind in kinds):
        raise _bad(f'annotation must be "patient" and/or "technique", not {text!r}')
    return kinds


def _integer(parameters: QueryParams, name: str, minimum: int) -> int | None:
    text = parameters.get(name)
    if text is None or text == "":
        return None
    if not text.isascii() or not text.isdigit() or int(text) < minimum:
        raise _bad(f"{name} must be an integer from {minimum}, not {text!r}")
    return int(text)


def _decimal(parameters: QueryParams, name: str) -> float | None:
    text = parameters.get(name)
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise _bad(f"{name} must be a decimal number, not {text!r}") from None
    if not math.isfinite(value):
        raise _bad(f"{name} must be a finite number, not {text!r}")
    return value


def _gif(png: bytes) -> bytes:
    """A rendered PNG as GIF (8-bit; color images reduced to a 256-color palette)."""
    with PILImage.open(io.BytesIO(png)) as opened:
        image: PILImage.Image = opened
        if image.mode not in ("L", "RGB", "P"):
            image = image.convert("RGB" if "A" in image.mode else "L")
        out = io.BytesIO()
        image.save(out, format="GIF")
    return out.getvalue()


def _bad(details: str) -> PharosError:
    return PharosError(ErrorCode.BAD_REQUEST, f"WADO-URI: {details}", http_status=400)
