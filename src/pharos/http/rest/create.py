"""POST /tools/create-dicom: a new instance (or series) from JSON tags and a data URI."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from fastapi import APIRouter, Request

from pharos.http.responses import JsonResponse
from pharos.http.rest.upload import reception_of
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.container import Services
from pharos.services.create_dicom import CreateDicomService


def router(services: Services) -> APIRouter:
    api = APIRouter(tags=["System"])
    creator = CreateDicomService(
        services.store, services.resources, services.files, services.deletion, services.options
    )

    @api.post("/tools/create-dicom", summary="Create one DICOM instance (or a series) and store it")
    async def create_dicom(request: Request) -> JsonResponse:
        body = _json(await request.body())
        reception = reception_of(request)
        # Decoding images and storing are blocking: a worker thread, as for sync routes.
        answer = await asyncio.to_thread(creator.create, body, reception)
        return JsonResponse(answer)

    return api


def _json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise PharosError(ErrorCode.BAD_JSON, f"The body is not JSON: {exc}") from None
