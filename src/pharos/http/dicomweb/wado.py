"""WADO-RS: studies, series and instances as multipart/related DICOM, and their metadata
(PS3.18 10.4)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from pharos.dicom.transcode import TranscodingError, check_target
from pharos.http.dicomweb.common import DICOM_JSON, base_url, dicom_xml_response, wants_xml
from pharos.http.dicomweb.multipart import closing, media_ranges, part_header
from pharos.index.base import ResourceRef
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.dicomweb_retrieve import DicomWebRetrieve
from pharos.services.dicomweb_server import DicomWebServer

log = logging.getLogger(__name__)

# Already compressed or binary: the gzip middleware would only spend CPU.
NOT_GZIPPED = {"Content-Encoding": "identity"}
_AS_STORED = "*"


def negotiate(accept: str | None) -> str:
    """The transfer syntax of the answer from the Accept header: "*" (as stored: no
    transfer-syntax parameter, or "*") or a UID Pharos can transcode to; 406 if no media
    range can be served."""
    if not accept:
        return _AS_STORED
    refused: list[str] = []
    for kind, parameters in media_ranges(accept):
        if kind in ("*/*", "multipart/*"):
            return _AS_STORED
        if kind != "multipart/related":
            continue
        if parameters.get("type", "application/dicom").lower() not in (
            "application/dicom",
            "application/*",
            "*/*",
        ):
            continue
        syntax = parameters.get("transfer-syntax", _AS_STORED).strip()
        if syntax == _AS_STORED:
            return syntax
        try:
            return str(check_target(syntax))
        except TranscodingError as exc:
            refused.append(str(exc))
    details = "; ".join(refused) or 'only multipart/related; type="application/dicom"'
    raise PharosError(
        ErrorCode.NOT_ACCEPTABLE, f"Cannot answer with {accept!r}: {details}", http_status=406
    )


def router(server: DicomWebServer) -> APIRouter:
    api = APIRouter(prefix=server.root, tags=["DICOMweb"])
    retrieve = server.retrieve

    def instances(request: Request, uids: tuple[str, ...]) -> Response:
        syntax = negotiate(request.headers.get("accept"))
        refs = retrieve.instances(uids)
        return _multipart(retrieve, refs, None if syntax == _AS_STORED else syntax)

    def metadata(request: Request, uids: tuple[str, ...]) -> Response:
        xml = wants_xml(request)
        body = retrieve.metadata(uids, base_url(request, server))
        if xml:
            return dicom_xml_response(json.loads(body))
        return Response(body, media_type=DICOM_JSON)

    @api.get("/studies/{study}", summary="WADO-RS: the instances of a study")
    def study(request: Request, study: str) -> Response:
        return instances(request, (study,))

    @api.get("/studies/{study}/series/{series}", summary="WADO-RS: the instances of a series")
    def series(request: Request, study: str, series: str) -> Response:
        return instances(request, (study, series))

    @api.get(
        "/studies/{study}/series/{series}/instances/{instance}",
        summary="WADO-RS: an instance",
    )
    def instance(request: Request, study: str, series: str, instance: str) -> Response:
        return instances(request, (study, series, instance))

    @api.get("/studies/{study}/metadata", summary="WADO-RS: the metadata of a study")
    def study_metadata(request: Request, study: str) -> Response:
        return metadata(request, (study,))

    @api.get(
        "/studies/{study}/series/{series}/metadata",
        summary="WADO-RS: the metadata of a series",
    )
    def series_metadata(request: Request, study: str, series: str) -> Response:
        return metadata(request, (study, series))

    @api.get(
        "/studies/{study}/series/{series}/instances/{instance}/metadata",
        summary="WADO-RS: the metadata of an instance",
    )
    def instance_metadata(request: Request, study: str, series: str, instance: str) -> Response:
        return metadata(request, (study, series, instance))

    return api


def _multipart(
    retrieve: DicomWebRetrieve, refs: list[ResourceRef], syntax: str | None
) -> StreamingResponse:
    """The files, one part each, read (and transcoded) one at a time as the client reads.
    The first is prepared before answering, so that a transfer syntax the files cannot be
    converted to is a 406, not a broken stream."""
    boundary = uuid.uuid4().hex
    part_type = "application/dicom" + (f"; transfer-syntax={syntax}" if syntax else "")
    try:
        first = retrieve.file(refs[0], syntax)
    except TranscodingError as exc:
        raise PharosError(ErrorCode.NOT_ACCEPTABLE, str(exc), http_status=406) from None

    def parts() -> Iterator[bytes]:
        for position, ref in enumerate(refs):
            if position == 0:
                data = first
            else:
                try:
                    data = retrieve.file(ref, syntax)
                except PharosError as exc:
                    if exc.code is ErrorCode.INEXISTENT_FILE:
                        continue  # deleted meanwhile
                    raise
                except TranscodingError:
                    # Headers are sent: the truncated body tells the client it failed.
                    log.error("WADO-RS: cannot transcode %s to %s", ref.public_id, syntax)
                    raise
            yield part_header(boundary, part_type, len(data))
            yield data
            yield b"\r\n"
        yield closing(boundary)

    media = f'multipart/related; type="application/dicom"; boundary={boundary}'
    return StreamingResponse(parts(), media_type=media, headers=NOT_GZIPPED)
