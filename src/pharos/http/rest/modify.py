"""Modification and anonymization (Orthanc's `/modify`, `/anonymize`, `/tools/bulk-*`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pharos.http.responses import JsonResponse
from pharos.http.rest.jobs import answer
from pharos.http.rest.upload import reception_of
from pharos.jobs.engine import JobsEngine
from pharos.model.levels import Level
from pharos.services.container import Services
from pharos.services.modify_jobs import ModifyJobs

_VERBS = {"modify": False, "anonymize": True}


def router(services: Services, jobs: JobsEngine) -> APIRouter:
    api = APIRouter(tags=["Modification"])
    modify = services.modify
    if modify is None:
        return api  # a server built without it (tests of other areas)
    for verb, anonymize in _VERBS.items():
        _instance_route(api, modify, verb, anonymize)
        for level in (Level.PATIENT, Level.STUDY, Level.SERIES):
            _resource_route(api, modify, jobs, level, verb, anonymize)
        _bulk_route(api, modify, jobs, verb, anonymize)
    return api


def _instance_route(api: APIRouter, modify: ModifyJobs, verb: str, anonymize: bool) -> None:
    async def one(id: str, request: Request) -> Response:
        raw = await request.body()
        data = await run_in_threadpool(modify.instance_file, id, raw, anonymize)
        return Response(data, media_type="application/dicom")

    api.add_api_route(
        f"/instances/{{id}}/{verb}",
        one,
        methods=["POST"],
        summary=f"{verb.title()} one instance: the new DICOM file (not stored)",
    )


def _resource_route(
    api: APIRouter, modify: ModifyJobs, jobs: JobsEngine, level: Level, verb: str, anonymize: bool
) -> None:
    async def resource(id: str, request: Request) -> JsonResponse:
        raw = await request.body()
        reception = reception_of(request)
        result = await run_in_threadpool(modify.resource, level, id, raw, anonymize, reception)
        return await answer(jobs, result)

    api.add_api_route(
        f"/{level.plural}/{{id}}/{verb}",
        resource,
        methods=["POST"],
        summary=f"{verb.title()} a {level.title.lower()}: new resources stored (or a job)",
    )


def _bulk_route(
    api: APIRouter, modify: ModifyJobs, jobs: JobsEngine, verb: str, anonymize: bool
) -> None:
    async def bulk(request: Request) -> JsonResponse:
        raw = await request.body()
        result = await run_in_threadpool(modify.bulk, raw, anonymize, reception_of(request))
        return await answer(jobs, result)

    api.add_api_route(
        f"/tools/bulk-{verb}",
        bulk,
        methods=["POST"],
        summary=f"{verb.title()} resources of any levels (Resources, Level): stored, or a job",
    )
