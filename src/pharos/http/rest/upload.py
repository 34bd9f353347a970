"""POST /instances: one DICOM file, or a zip archive of many."""

from __future__ import annotations

import gzip
import zlib

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from pharos.http.responses import JsonResponse
from pharos.index.base import Reception
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.container import Services
from pharos.services.store import is_zip


def router(services: Services) -> APIRouter:
    api = APIRouter(tags=["Instances"])

    @api.post("/instances", summary="Upload DICOM instances (a DICOM file, or a zip of them)")
    async def upload(request: Request) -> JsonResponse:
        data = await request.body()
        if request.headers.get("content-encoding", "").strip().lower() == "gzip":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as exc:
                raise PharosError(ErrorCode.BAD_FILE_FORMAT, f"Bad gzip body: {exc}") from None
        reception = reception_of(request)
        if is_zip(data):
            results = await run_in_threadpool(services.store.store_archive, data, reception)
            return JsonResponse([result.to_json() for result in results])
        result = await run_in_threadpool(services.store.store, data, reception)
        return JsonResponse(result.to_json())

    return api


def reception_of(request: Request) -> Reception:
    return Reception(
        origin="RestApi",
        remote_aet="",
        remote_ip=request.client.host if request.client else None,
        http_username=request.scope.get("state", {}).get("username"),
    )
