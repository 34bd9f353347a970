"""/tools/find, /tools/lookup and the reconstruction of main tags (/tools/reconstruct,
/{level}/{id}/reconstruct)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pharos.http.responses import JsonResponse, text_response
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.container import Services


def router(services: Services) -> APIRouter:
    api = APIRouter(tags=["Search"])
    find = services.find

    @api.post(
        "/tools/find",
        summary="Look for resources by DICOM tags, labels, and order them",
        description=(
            "Body: {Level, Query: {tag: value}, Expand, Limit, Since, CaseSensitive, "
            "RequestedTags, Labels, LabelsConstraint, OrderBy, Full/Short/Simplify}, as Orthanc."
        ),
    )
    async def tools_find(request: Request) -> JsonResponse:
        body = _json(await request.body(), "The body must contain a JSON object")
        return JsonResponse(await run_in_threadpool(find.find, body))

    @api.post(
        "/tools/lookup", summary="Resources whose identifier (PatientID or a UID) is the body"
    )
    async def tools_lookup(request: Request) -> JsonResponse:
        raw = await request.body()
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise PharosError(ErrorCode.BAD_REQUEST, "The body must be UTF-8 text") from None
        return JsonResponse(await run_in_threadpool(find.lookup, value))

    @api.post("/tools/reconstruct", summary="Index the main tags of every instance again")
    async def reconstruct_all(request: Request) -> Response:
        files = _reconstruct_files(await request.body())
        await run_in_threadpool(find.reconstruct_all, files)
        return text_response("")

    for level in Level:
        _add_reconstruct_route(api, services, level)
    return api


def _add_reconstruct_route(api: APIRouter, services: Services, level: Level) -> None:
    @api.post(
        f"/{level.plural}/{{id}}/reconstruct",
        tags=[level.title],
        summary=f"Index the main tags of the {level.title.lower()} again from its files",
    )
    async def reconstruct(id: str, request: Request) -> Response:
        files = _reconstruct_files(await request.body())
        ref = await run_in_threadpool(services.resources.resolve, level, id)
        await run_in_threadpool(services.find.reconstruct, ref, files)
        return text_response("")


def _reconstruct_files(raw: bytes) -> bool:
    """The "ReconstructFiles" option of the body (Orthanc 1.11+): write the files again."""
    if not raw.strip():
        return False
    body = _json(raw, "The body must be empty or a JSON object")
    if not isinstance(body, dict):
        raise PharosError(ErrorCode.BAD_REQUEST, "The body must be empty or a JSON object")
    files = body.get("ReconstructFiles", False)
    if not isinstance(files, bool):
        raise PharosError(ErrorCode.BAD_PARAMETER_TYPE, '"ReconstructFiles" must be a Boolean')
    return files


def _json(raw: bytes, message: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise PharosError(ErrorCode.BAD_REQUEST, message) from None
