"""POST /instances: one DICOM file, or a zip archive of many."""

from __future__ import annotations

import asyncio
import gzip
import logging
import zlib
from concurrent.futures import ThreadPoolExecutor

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from pharos.http.errors import json_error
from pharos.http.responses import JsonResponse
from pharos.index.base import Reception
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.container import Services
from pharos.services.store import is_zip

log = logging.getLogger(__name__)


class UploadEndpoint:
    """The busiest route, as a plain ASGI app: the application hands it uploads directly
    (`app.py`), past the framework's middleware layers, which cost about a tenth of the
    ingest throughput with concurrent clients. The documented route calls it too."""

    def __init__(self, services: Services, describe_errors: bool, threads: int):
        self._services = services
        self._describe_errors = describe_errors
        # Its own worker threads: lighter than the framework's generic hand-off.
        self._workers = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="pharos-upload")

    def close(self) -> None:
        self._workers.shutdown(wait=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self.respond(Request(scope, receive))
        await response(scope, receive, send)

    async def respond(self, request: Request) -> Response:
        try:
            return await self._upload(request)
        except PharosError as exc:
            if exc.http_status >= 500:
                log.error("POST /instances: %s", exc)
            return json_error(
                request, exc.code, exc.details, exc.http_status, None, self._describe_errors
            )
        except Exception as exc:
            log.exception("Internal error on POST /instances")
            details = f"{type(exc).__name__}: {exc}"
            return json_error(
                request, ErrorCode.INTERNAL_ERROR, details, None, None, self._describe_errors
            )

    async def _upload(self, request: Request) -> Response:
        data = await request.body()
        if request.headers.get("content-encoding", "").strip().lower() == "gzip":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError, zlib.error) as exc:
                raise PharosError(ErrorCode.BAD_FILE_FORMAT, f"Bad gzip body: {exc}") from None
        reception = reception_of(request)
        store = self._services.store
        loop = asyncio.get_running_loop()
        if is_zip(data):
            results = await loop.run_in_executor(
                self._workers, store.store_archive, data, reception
            )
            return JsonResponse([result.to_json() for result in results])
        result = await loop.run_in_executor(self._workers, store.store, data, reception)
        return JsonResponse(result.to_json())


def router(endpoint: UploadEndpoint) -> APIRouter:
    api = APIRouter(tags=["Instances"])

    @api.post("/instances", summary="Upload DICOM instances (a DICOM file, or a zip of them)")
    async def upload(request: Request) -> Response:
        return await endpoint.respond(request)

    return api


def reception_of(request: Request) -> Reception:
    return Reception(
        # In-process calls (http/in_process.py) say who made them: "Lua", "Plugins".
        origin=request.scope.get("state", {}).get("request_origin", "RestApi"),
        remote_aet="",
        remote_ip=request.client.host if request.client else None,
        http_username=request.scope.get("state", {}).get("username"),
    )
