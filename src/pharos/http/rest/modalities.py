"""DICOM modalities (`/modalities`): the registry, and the DICOM client operations on them."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pharos.http.arguments import flag
from pharos.http.responses import JsonResponse, text_response
from pharos.http.rest.jobs import answer
from pharos.jobs.engine import JobsEngine
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.container import Services
from pharos.services.remote_dicom import RemoteDicomService
from pharos.services.remote_modalities import modality_json
from pharos.services.remote_requests import parse_json

# What GET /modalities/{id} lists (the routes below, as Orthanc's AutoListChildren)
_OPERATIONS = [
    "configuration",
    "echo",
    "find",
    "find-instance",
    "find-patient",
    "find-series",
    "find-study",
    "get",
    "move",
    "query",
    "storage-commitment",
    "store",
    "store-straight",
]


def router(services: Services, jobs: JobsEngine) -> APIRouter:
    api = APIRouter(tags=["Networking"])
    remote: RemoteDicomService = services.remote
    dicom_jobs = services.dicom_jobs
    registry = remote.registry

    @api.get("/modalities", summary="List the DICOM modalities (?expand: their parameters)")
    def list_modalities(request: Request) -> JsonResponse:
        modalities = registry.snapshot()
        if flag(request, "expand"):
            return JsonResponse({m.name: modality_json(m) for m in modalities})
        return JsonResponse([m.name for m in modalities])

    @api.get("/modalities/{id}", summary="List the operations on a modality")
    def operations(id: str) -> JsonResponse:
        registry.require(id)
        return JsonResponse(_OPERATIONS)

    @api.get("/modalities/{id}/configuration", summary="The parameters of a modality")
    def configuration(id: str) -> JsonResponse:
        return JsonResponse(modality_json(registry.require(id)))

    @api.put(
        "/modalities/{id}",
        summary="Define or update a modality",
        description=(
            'Body: ["AET", "host", port] or the object form of DicomModalities. Kept in the '
            "index (shared, permanent) when DicomModalitiesInDatabase is true, else until restart."
        ),
    )
    async def put_modality(id: str, request: Request) -> Response:
        value = parse_json(await request.body(), "The body must be a JSON array or object")
        if not isinstance(value, list | dict):
            raise PharosError(ErrorCode.BAD_FILE_FORMAT, "The body must be a JSON array or object")
        await run_in_threadpool(registry.put, id, value)
        return text_response("")

    @api.delete("/modalities/{id}", summary="Forget a modality")
    def delete_modality(id: str) -> Response:
        registry.delete(id)
        return text_response("")

    @api.post("/modalities/{id}/echo", summary="C-ECHO (body {} or {Timeout, CheckFind})")
    async def echo(id: str, request: Request) -> Response:
        await run_in_threadpool(remote.echo, id, await request.body())
        return JsonResponse({})

    @api.post(
        "/tools/dicom-echo",
        summary="C-ECHO to the modality described in the body, without registering it",
    )
    async def dicom_echo(request: Request) -> Response:
        await run_in_threadpool(remote.echo_unregistered, await request.body())
        return JsonResponse({})

    @api.post(
        "/modalities/{id}/store",
        summary="C-STORE local resources to the modality",
        description=(
            "Body: a resource ID, a list of IDs, or {Resources, LocalAet, MoveOriginatorAet, "
            "MoveOriginatorID, Timeout, Permissive, StorageCommitment, Synchronous, Priority}. "
            "Resources of any level are sent as their instances over one association; as a "
            'DicomModalityStore job with "Synchronous": false. With StorageCommitment, a '
            "storage commitment request follows (StorageCommitmentTransactionUID)."
        ),
    )
    async def store(id: str, request: Request) -> JsonResponse:
        body = await request.body()
        return await answer(jobs, await run_in_threadpool(dicom_jobs.store, id, body))

    @api.post("/modalities/{id}/store-straight", summary="C-STORE the DICOM file in the body")
    async def store_straight(id: str, request: Request) -> JsonResponse:
        body = await request.body()
        return JsonResponse(await run_in_threadpool(remote.store_straight, id, body))

    @api.post(
        "/modalities/{id}/move",
        summary="C-MOVE (body {Level, Resources, TargetAet, Synchronous, Priority})",
    )
    async def move(id: str, request: Request) -> JsonResponse:
        body = await request.body()
        return await answer(jobs, await run_in_threadpool(dicom_jobs.move, id, body))

    @api.post(
        "/modalities/{id}/get",
        summary="C-GET (body {Level, Resources, Synchronous, Priority}); the instances are "
        "stored here",
    )
    async def get(id: str, request: Request) -> JsonResponse:
        body = await request.body()
        return await answer(jobs, await run_in_threadpool(dicom_jobs.get, id, body))

    @api.post("/modalities/{id}/find", summary="Hierarchical C-FIND (deprecated by Orthanc)")
    async def find(id: str, request: Request) -> JsonResponse:
        body = await request.body()
        return JsonResponse(await run_in_threadpool(remote.find_hierarchy, id, body))

    for level in Level:
        _add_find_route(api, remote, level)
    return api


def _add_find_route(api: APIRouter, remote: RemoteDicomService, level: Level) -> None:
    @api.post(
        f"/modalities/{{id}}/find-{level.title.lower()}",
        summary=f"C-FIND of {level.plural} (deprecated by Orthanc: use /query)",
    )
    async def find_level(id: str, request: Request) -> JsonResponse:
        body = await request.body()
        return JsonResponse(await run_in_threadpool(remote.find_level, id, level, body))
