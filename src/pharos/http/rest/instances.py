"""One instance's file and tags: the DICOM file as received, tags, header, content, frames."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pharos.dicom.dictionary import parse_ignore_length
from pharos.dicom.orthanc_json import TagFormat, format_from_query
from pharos.dicom.transcode import TranscodingError, transcode_file
from pharos.http.responses import JsonResponse
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.container import Services


def router(services: Services) -> APIRouter:
    api = APIRouter(tags=["Instances"])
    resolve = services.resources.resolve
    tags = services.tags

    @api.get(
        "/instances/{id}/file",
        summary="The DICOM file, byte-identical to what was stored (or ?transcode=<syntax UID>)",
    )
    async def file(id: str, request: Request) -> Response:
        ref = await run_in_threadpool(resolve, Level.INSTANCE, id)
        data = await run_in_threadpool(services.files.read_dicom, ref)
        target = request.query_params.get("transcode")
        if target is not None:  # Orthanc 1.9+
            data = await run_in_threadpool(_transcoded, data, target, services)
        return Response(
            data,
            media_type="application/dicom",
            # Already dense: not worth gzip's CPU (the middleware skips encoded responses).
            headers={
                "Content-Encoding": "identity",
                "Content-Disposition": f'attachment; filename="{id}.dcm"',
            },
        )

    @api.get("/instances/{id}/tags", summary="All tags (?simplify, ?short, ?ignore-length)")
    def all_tags(id: str, request: Request) -> JsonResponse:
        fmt = format_from_query(request.query_params.keys())
        ignore = parse_ignore_length(request.query_params.get("ignore-length"))
        return JsonResponse(tags.tags(resolve(Level.INSTANCE, id), fmt, ignore))

    @api.get("/instances/{id}/simplified-tags", summary="All tags, keyed by name")
    def simplified_tags(id: str, request: Request) -> JsonResponse:
        ignore = parse_ignore_length(request.query_params.get("ignore-length"))
        return JsonResponse(tags.tags(resolve(Level.INSTANCE, id), TagFormat.SIMPLIFY, ignore))

    @api.get("/instances/{id}/header", summary="The file meta information (?simplify, ?short)")
    def header(id: str, request: Request) -> JsonResponse:
        fmt = format_from_query(request.query_params.keys())
        return JsonResponse(tags.header(resolve(Level.INSTANCE, id), fmt))

    @api.get("/instances/{id}/content", summary="List the tags of the dataset")
    def content_root(id: str) -> Response:
        return _content(services, id, "")

    @api.get("/instances/{id}/content/{path:path}", summary="Raw value, walking into sequences")
    def content(id: str, path: str) -> Response:
        return _content(services, id, path)

    @api.get("/instances/{id}/frames", summary="Indexes of the frames of the instance")
    def frames(id: str) -> JsonResponse:
        return JsonResponse(list(range(tags.frame_count(resolve(Level.INSTANCE, id)))))

    return api


def _transcoded(data: bytes, target: str, services: Services) -> bytes:
    try:
        return transcode_file(data, target, quality=services.options.lossy_quality)
    except TranscodingError as exc:
        raise PharosError(ErrorCode.BAD_REQUEST, str(exc)) from None


def _content(services: Services, id: str, path: str) -> Response:
    ref = services.resources.resolve(Level.INSTANCE, id)
    parts = [part for part in path.split("/") if part]
    value = services.tags.content(ref, parts)
    if isinstance(value, bytes):
        return Response(value, media_type="application/octet-stream")
    return JsonResponse(value)
