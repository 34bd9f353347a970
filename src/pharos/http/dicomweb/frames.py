"""WADO-RS frames (PS3.18 10.4.1.1.4, 8.7.3): `/frames/{list}` of an instance as
multipart/related, one part per frame, in the media type and transfer syntax the Accept header
asks for (uncompressed application/octet-stream by default; `transfer-syntax=*` as stored)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from pharos.dicom.transcode import TranscodingError, check_target
from pharos.http.dicomweb.multipart import closing, media_ranges, part_header
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.dicomweb_frames import AS_STORED, FRAME_MEDIA_TYPES, OCTET_STREAM
from pharos.services.dicomweb_server import DicomWebServer

NOT_GZIPPED = {"Content-Encoding": "identity"}
MAX_FRAMES = 10_000  # of one request
_DEFAULT = (FRAME_MEDIA_TYPES[OCTET_STREAM][0],)


def negotiate(accept: str | None, stored: str) -> tuple[str, ...]:
    """The transfer syntaxes the answer may use, best first, from the Accept header: one if
    the client named it, AS_STORED for `transfer-syntax=*`, or those of the media type asked
    for (its default first: a 12-bit image cannot be JPEG baseline, but can be JPEG lossless);
    406 if none of its media ranges can be served. `stored` is the stored transfer syntax."""
    if not accept:
        return _DEFAULT
    refused: list[str] = []
    for kind, parameters in media_ranges(accept):
        if kind in ("*/*", "multipart/*"):
            return _DEFAULT
        if kind == "multipart/related":
            part = parameters.get("type", OCTET_STREAM).strip().lower()
        else:
            part = kind  # a single part type: the same choices
        if part in ("*/*", "application/*"):
            part = OCTET_STREAM
        syntaxes = FRAME_MEDIA_TYPES.get(part)
        if syntaxes is None:
            continue
        syntax = parameters.get("transfer-syntax", "").strip()
        if syntax == AS_STORED and (part == OCTET_STREAM or stored in syntaxes):
            return (AS_STORED,)
        if syntax in ("", AS_STORED):
            if part == OCTET_STREAM:
                return _DEFAULT
            possible = tuple(s for s in syntaxes if s == stored or _can_encode(s))
            if possible:
                return possible
            refused.append(f"Pharos cannot encode {part}")
            continue
        if syntax not in syntaxes:
            refused.append(f"{syntax} is not a transfer syntax of {part}")
            continue
        if syntax == stored or _can_encode(syntax):
            return (syntax,)
        refused.append(f"Pharos cannot encode {syntax}")
    details = "; ".join(refused) or (
        'frames are multipart/related; type="application/octet-stream" or an image type: '
        + ", ".join(sorted(set(FRAME_MEDIA_TYPES) - {OCTET_STREAM}))
    )
    raise PharosError(
        ErrorCode.NOT_ACCEPTABLE, f"Cannot answer with {accept!r}: {details}", http_status=406
    )


def _can_encode(syntax: str) -> bool:
    try:
        check_target(syntax)
    except TranscodingError:
        return False
    return True


def frame_numbers(text: str) -> list[int]:
    """The numbers of a frame list such as "1,3,5" (PS3.18 8.3.3.1: from 1, in order)."""
    numbers: list[int] = []
    for item in text.split(","):
        item = item.strip()
        if not item.isascii() or not item.isdigit() or int(item) < 1:
            raise PharosError(
                ErrorCode.BAD_REQUEST,
                f"Invalid frame list {text!r}: frame numbers start at 1, separated by commas",
                http_status=400,
            )
        numbers.append(int(item))
    if len(numbers) > MAX_FRAMES:
        raise PharosError(
            ErrorCode.BAD_REQUEST, f"At most {MAX_FRAMES} frames per request", http_status=400
        )
    return numbers


def router(server: DicomWebServer) -> APIRouter:
    api = APIRouter(prefix=server.root, tags=["DICOMweb"])

    @api.get(
        "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
        summary="WADO-RS: frames of an instance (numbered from 1), as multipart/related",
    )
    def frames(request: Request, study: str, series: str, instance: str, frames: str) -> Response:
        numbers = frame_numbers(frames)
        ref = server.retrieve.resource((study, series, instance))
        stored = server.retrieve.transfer_syntax(ref)
        syntaxes = negotiate(request.headers.get("accept"), stored)
        found = server.frames.frames(ref, numbers, syntaxes)
        boundary = uuid.uuid4().hex
        part_type = f"{found.media_type}; transfer-syntax={found.transfer_syntax}"
        body = bytearray()
        for data in found.frames:
            body += part_header(boundary, part_type, len(data))
            body += data
            body += b"\r\n"
        body += closing(boundary)
        content_type = f'multipart/related; type="{found.media_type}"; boundary={boundary}'
        return Response(bytes(body), media_type=content_type, headers=NOT_GZIPPED)

    return api
