"""STOW-RS: storing instances sent as multipart/related DICOM parts (PS3.18 10.5)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from pharos.http.dicomweb.common import base_url, dicom_json_response
from pharos.http.dicomweb.multipart import media_type, read_parts
from pharos.http.rest.upload import reception_of
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.dicomweb_server import DicomWebServer
from pharos.services.dicomweb_store import StowOutcome

_DICOM_PARTS = ("application/dicom", "application/octet-stream")
PARTS_IN_FLIGHT = 4


def router(server: DicomWebServer) -> APIRouter:
    api = APIRouter(prefix=server.root, tags=["DICOMweb"])

    async def stow(request: Request, study: str | None) -> Response:
        boundary = _boundary(request.headers.get("content-type", ""))
        outcome = StowOutcome(base_url(request, server), study)
        reception = reception_of(request)
        count = 0
        # Parts are stored while the next ones arrive, a few at a time (each store waits
        # mostly on its fsync); their number bounds the memory a request holds.
        pending: set[asyncio.Future[None]] = set()
        try:
            async for headers, body in read_parts(request.stream(), boundary):
                kind, _ = media_type(headers.get("content-type", "application/dicom"))
                if kind not in _DICOM_PARTS:
                    server.store.unsupported_part(outcome, count, kind)
                else:
                    if len(pending) >= PARTS_IN_FLIGHT:
                        done, pending = await asyncio.wait(
                            pending, return_when=asyncio.FIRST_COMPLETED
                        )
                        for task in done:
                            task.result()  # an unexpected error ends the request
                    pending.add(
                        asyncio.ensure_future(
                            run_in_threadpool(
                                server.store.store_part, outcome, count, body, reception
                            )
                        )
                    )
                count += 1
        finally:
            if pending:  # also after a malformed body: no store is left running unseen
                await asyncio.wait(pending)
        for task in pending:
            task.result()
        if count == 0:
            raise PharosError(ErrorCode.BAD_REQUEST, "No part in the request", http_status=400)
        return dicom_json_response(outcome.to_json(), outcome.status)

    @api.post("/studies", summary="STOW-RS: store instances")
    async def store(request: Request) -> Response:
        return await stow(request, None)

    @api.post("/studies/{study}", summary="STOW-RS: store instances of one study")
    async def store_in_study(request: Request, study: str) -> Response:
        return await stow(request, study)

    return api


def _boundary(content_type: str) -> str:
    """The boundary of a multipart/related DICOM body; 415 for another media type."""
    kind, parameters = media_type(content_type)
    part_type = parameters.get("type", "application/dicom").lower()
    if kind != "multipart/related" or part_type != "application/dicom":
        raise PharosError(
            ErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f'STOW-RS takes multipart/related; type="application/dicom", not {content_type!r}',
            http_status=415,
        )
    boundary = parameters.get("boundary", "")
    if not boundary or len(boundary) > 70:
        raise PharosError(
            ErrorCode.BAD_REQUEST, "The multipart body has no valid boundary", http_status=400
        )
    return boundary
