"""Split and merge of studies (`POST /studies/{id}/split`, `POST /studies/{id}/merge`):
synchronous by default, as Orthanc, or jobs with `"Asynchronous": true`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from pharos.http.responses import JsonResponse
from pharos.http.rest.jobs import answer
from pharos.http.rest.upload import reception_of
from pharos.jobs.engine import JobsEngine
from pharos.services.split_merge import SplitMergeService


def router(service: SplitMergeService, jobs: JobsEngine) -> APIRouter:
    api = APIRouter(tags=["Studies"])

    @api.post(
        "/studies/{id}/split",
        summary="Move series or instances of a study into a new study (body {Series, "
        "Instances, Replace, Remove, KeepSource, Asynchronous, Priority})",
    )
    async def split(id: str, request: Request) -> JsonResponse:
        body = await request.body()
        result = await run_in_threadpool(service.split, id, body, reception_of(request))
        return await answer(jobs, result)

    @api.post(
        "/studies/{id}/merge",
        summary="Move studies, series or instances into this study (body {Resources, "
        "KeepSource, Asynchronous, Priority})",
    )
    async def merge(id: str, request: Request) -> JsonResponse:
        body = await request.body()
        result = await run_in_threadpool(service.merge, id, body, reception_of(request))
        return await answer(jobs, result)

    return api
