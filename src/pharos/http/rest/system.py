"""/system, /statistics and the small tools under /tools."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import APIRouter, Request
from pydicom.uid import generate_uid
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pharos.dicom.charset import canonical_encoding
from pharos.http.responses import JsonResponse, text_response
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.model.timeutil import now_iso
from pharos.services.container import Services

log = logging.getLogger(__name__)


def router(services: Services) -> APIRouter:
    api = APIRouter(tags=["System"])

    @api.get("/system", summary="Server information (Orthanc's fields, plus Pharos's own)")
    def system() -> JsonResponse:
        return JsonResponse(services.system.to_json())

    @api.get("/statistics", summary="Counts and sizes of everything stored")
    def statistics() -> JsonResponse:
        return JsonResponse(services.resources.statistics_json())

    @api.get("/tools", summary="List the operations under /tools/")
    def tools(request: Request) -> JsonResponse:
        paths = request.app.openapi()["paths"]
        names = {p.removeprefix("/tools/").split("/")[0] for p in paths if p.startswith("/tools/")}
        return JsonResponse(sorted(names))

    @api.get("/tools/now", summary="Current time, UTC (YYYYMMDDTHHMMSS)")
    def now() -> Response:
        return text_response(now_iso(utc=True))

    @api.get("/tools/now-local", summary="Current time, local (YYYYMMDDTHHMMSS)")
    def now_local() -> Response:
        return text_response(now_iso(utc=False))

    @api.get("/tools/generate-uid", summary="Generate a DICOM UID (level=patient|study|...)")
    def generate(request: Request) -> Response:
        text = request.query_params.get("level", "")
        try:
            Level.parse(text)
        except ValueError:
            raise PharosError(
                ErrorCode.PARAMETER_OUT_OF_RANGE,
                f"Argument 'level' must be patient, study, series or instance, got {text!r}",
            ) from None
        return text_response(generate_uid())

    @api.get("/tools/default-encoding", summary="Encoding assumed for files that declare none")
    def get_encoding() -> Response:
        return text_response(services.options.default_encoding)

    @api.put("/tools/default-encoding", summary="Change the default encoding")
    async def put_encoding(request: Request) -> Response:
        body = (await request.body()).decode("utf-8", "replace")
        try:
            encoding = canonical_encoding(body)
        except ValueError as exc:
            raise PharosError(ErrorCode.PARAMETER_OUT_OF_RANGE, str(exc)) from None
        services.options.default_encoding = encoding
        log.warning("Default encoding changed to %s", encoding)
        return text_response(encoding)

    @api.post("/tools/bulk-delete", summary="Delete many resources of any level")
    async def bulk_delete(request: Request) -> Response:
        ids = _resource_list(await request.body())
        await run_in_threadpool(_delete_all, services, ids)
        return Response()

    return api


def _resource_list(body: bytes) -> list[str]:
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PharosError(ErrorCode.BAD_JSON, f"Body is not JSON: {exc}") from None
    resources = parsed.get("Resources") if isinstance(parsed, dict) else None
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        raise PharosError(
            ErrorCode.BAD_REQUEST, 'Expected {"Resources": [list of Orthanc identifiers]}'
        )
    return resources


def _delete_all(services: Services, ids: list[str]) -> None:
    # Missing resources are skipped, as in Orthanc: a concurrent deletion is not an error.
    for public_id in ids:
        for level in Level:
            try:
                ref = services.resources.resolve(level, public_id)
            except PharosError:
                continue
            try:
                services.deletion.delete(ref)
            except PharosError as exc:
                if exc.code is not ErrorCode.UNKNOWN_RESOURCE:
                    raise
            break
