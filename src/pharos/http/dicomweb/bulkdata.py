"""WADO-RS bulk data (PS3.18 10.4.1.1.5): the value of a binary attribute named by a
BulkDataURI of the metadata (`.../instances/{uid}/bulk/{tag}[/{item}/{tag}...]`, the form of
Orthanc's DICOMweb plugin), as multipart/related application/octet-stream, or as a single
application/octet-stream body when the client asks for that alone."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from pharos.http.dicomweb.multipart import closing, media_ranges, part_header
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.dicomweb_frames import OCTET_STREAM
from pharos.services.dicomweb_server import DicomWebServer

NOT_GZIPPED = {"Content-Encoding": "identity"}
_MULTIPART_PARTS = (OCTET_STREAM, "*/*", "application/*")


def single_part(accept: str | None) -> bool:
    """Whether to answer a bare application/octet-stream body (the first acceptable range is
    that media type itself) rather than multipart/related; 406 if none is acceptable."""
    if not accept:
        return False
    for kind, parameters in media_ranges(accept):
        if kind in ("*/*", "multipart/*"):
            return False
        if kind == "multipart/related":
            if parameters.get("type", OCTET_STREAM).strip().lower() in _MULTIPART_PARTS:
                return False
            continue
        if kind in (OCTET_STREAM, "application/*"):
            return True
    raise PharosError(
        ErrorCode.NOT_ACCEPTABLE,
        f'Cannot answer with {accept!r}: bulk data is multipart/related; type="{OCTET_STREAM}"',
        http_status=406,
    )


def router(server: DicomWebServer) -> APIRouter:
    api = APIRouter(prefix=server.root, tags=["DICOMweb"])

    @api.get(
        "/studies/{study}/series/{series}/instances/{instance}/bulk/{path:path}",
        summary="WADO-RS: bulk data of an instance (a BulkDataURI of its metadata)",
    )
    def bulk(request: Request, study: str, series: str, instance: str, path: str) -> Response:
        single = single_part(request.headers.get("accept"))
        steps = [step for step in path.split("/") if step]
        if not steps or len(steps) % 2 == 0:
            raise PharosError(
                ErrorCode.BAD_REQUEST,
                f"Invalid bulk data path {path!r}: tag[/item/tag...]",
                http_status=400,
            )
        ref = server.retrieve.resource((study, series, instance))
        data = server.frames.bulk(ref, steps)
        if single:
            return Response(data, media_type=OCTET_STREAM, headers=NOT_GZIPPED)
        boundary = uuid.uuid4().hex
        body = part_header(boundary, OCTET_STREAM, len(data)) + data + b"\r\n" + closing(boundary)
        content_type = f'multipart/related; type="{OCTET_STREAM}"; boundary={boundary}'
        return Response(body, media_type=content_type, headers=NOT_GZIPPED)

    return api
