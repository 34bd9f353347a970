"""The DICOMweb client (`{root}/servers`), as Orthanc's DICOMweb plugin: the remote servers,
GET/QIDO-RS proxied to them, STOW-RS of local resources, WADO-RS retrieval into this server,
DELETE on those declared with `HasDelete`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pharos.http.arguments import flag
from pharos.http.responses import JsonResponse, text_response
from pharos.http.rest.jobs import answer
from pharos.jobs.engine import JobsEngine
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.dicomweb_client import DicomWebClient
from pharos.services.dicomweb_client_jobs import DicomWebClientJobs
from pharos.services.remote_requests import parse_json


def router(
    client: DicomWebClient, client_jobs: DicomWebClientJobs, jobs: JobsEngine, root: str
) -> APIRouter:
    """Under the DICOMweb server's `root`."""
    api = APIRouter(prefix=root, tags=["DICOMweb"])

    @api.get("/servers", summary="List the remote DICOMweb servers (?expand: their parameters)")
    def list_servers(request: Request) -> JsonResponse:
        if flag(request, "expand"):
            return JsonResponse(client.registry.configurations())
        return JsonResponse(client.registry.names())

    @api.get("/servers/{name}", summary="List the operations on a remote DICOMweb server")
    def operations(name: str) -> JsonResponse:
        return JsonResponse(client.operations(name))

    @api.put(
        "/servers/{name}",
        summary="Define or update a remote DICOMweb server (until restart)",
        description='Body: ["url"], ["url", "user", "password"] or the object form of '
        "DicomWeb.Servers.",
    )
    async def put_server(name: str, request: Request) -> Response:
        value = parse_json(await request.body(), "The body must be a JSON array or object")
        if not isinstance(value, list | dict):
            raise PharosError(ErrorCode.BAD_FILE_FORMAT, "The body must be a JSON array or object")
        await run_in_threadpool(client.registry.put, name, value)
        return text_response("")

    @api.delete("/servers/{name}", summary="Forget a remote DICOMweb server")
    def delete_server(name: str) -> Response:
        client.registry.delete(name)
        return text_response("")

    @api.post(
        "/servers/{name}/get",
        summary="GET a URI of the remote server (body {Uri, Arguments, HttpHeaders}); its answer",
    )
    async def get(name: str, request: Request) -> Response:
        remote = await run_in_threadpool(client.get, name, await request.body())
        return Response(
            remote.content,
            status_code=remote.status,
            media_type=remote.content_type,
            headers=remote.headers,
        )

    @api.post(
        "/servers/{name}/delete",
        summary="DELETE a study, series or instance on a remote server declared with HasDelete",
        description="Body: {Level (Study, Series or Instance), StudyInstanceUID, "
        "SeriesInstanceUID, SOPInstanceUID, HttpHeaders}.",
    )
    async def delete(name: str, request: Request) -> JsonResponse:
        await run_in_threadpool(client.delete, name, await request.body())
        return JsonResponse({})

    @api.post(
        "/servers/{name}/qido",
        summary="QIDO-RS on the remote server (body {Uri, Arguments, HttpHeaders}); its JSON",
    )
    async def qido(name: str, request: Request) -> JsonResponse:
        return JsonResponse(await run_in_threadpool(client.qido, name, await request.body()))

    @api.post(
        "/servers/{name}/stow",
        summary="STOW-RS local resources to the remote server",
        description=(
            "Body: {Resources (Orthanc IDs of any level), HttpHeaders, Synchronous (default "
            "true), Priority}; a DicomWebStowClient job when asynchronous."
        ),
    )
    async def stow(name: str, request: Request) -> JsonResponse:
        body = await request.body()
        return await answer(jobs, await run_in_threadpool(client_jobs.stow, name, body))

    @api.post(
        "/servers/{name}/retrieve",
        summary="WADO-RS retrieve of remote studies, series or instances into this server",
        description=(
            "Body: {Resources: [{Study, Series?, Instance?}], GetArguments, HttpHeaders, "
            "Synchronous (default true), Priority}; a DicomWebWadoRetrieveClient job when "
            "asynchronous."
        ),
    )
    async def retrieve(name: str, request: Request) -> JsonResponse:
        body = await request.body()
        return await answer(jobs, await run_in_threadpool(client_jobs.retrieve, name, body))

    @api.post(
        "/servers/{name}/wado",
        summary="WADO-RS retrieve of one URI into this server (body {Uri, Arguments, "
        "HttpHeaders, Synchronous (default false)})",
    )
    async def wado(name: str, request: Request) -> JsonResponse:
        body = await request.body()
        return await answer(jobs, await run_in_threadpool(client_jobs.wado, name, body))

    return api
