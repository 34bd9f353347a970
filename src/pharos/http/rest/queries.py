"""Query/retrieve through REST: `/modalities/{id}/query` and the queries it keeps
(`/queries/...`: answers, child queries, C-MOVE of the answers)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pharos.dicom.orthanc_json import format_from_query
from pharos.http.arguments import flag
from pharos.http.responses import JsonResponse, text_response
from pharos.http.rest.jobs import answer
from pharos.jobs.engine import JobsEngine
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.container import Services
from pharos.services.remote_queries import QueryService

_QUERY_OPERATIONS = ["answers", "level", "modality", "query", "retrieve"]


def _index(text: str) -> int:
    if not text.isdigit():
        raise PharosError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Bad answer index: {text!r}")
    return int(text)


def router(services: Services, jobs: JobsEngine) -> APIRouter:
    api = APIRouter(tags=["Networking"])
    queries: QueryService = services.queries
    dicom_jobs = services.dicom_jobs
    archive = queries.archive

    @api.post(
        "/modalities/{id}/query",
        summary="C-FIND, kept as a query (body {Level, Query, Normalize, LocalAet, Timeout})",
    )
    async def query(id: str, request: Request) -> JsonResponse:
        body = await request.body()
        return JsonResponse(await run_in_threadpool(queries.query, id, body))

    @api.get("/queries", summary="List the queries kept")
    def list_queries() -> JsonResponse:
        return JsonResponse(archive.ids())

    @api.get("/queries/{id}", summary="List the operations on a query")
    def operations(id: str) -> JsonResponse:
        archive.get(id)
        return JsonResponse(_QUERY_OPERATIONS)

    @api.delete("/queries/{id}", summary="Forget a query")
    def delete_query(id: str) -> Response:
        archive.remove(id)
        return text_response("")

    @api.get("/queries/{id}/answers", summary="The answers (?expand, ?simplify, ?short)")
    def answers(id: str, request: Request) -> JsonResponse:
        fmt = format_from_query(request.query_params.keys())
        return JsonResponse(queries.answers(id, flag(request, "expand"), fmt))

    @api.get("/queries/{id}/answers/{index}", summary="List the operations on an answer")
    def answer_operations(id: str, index: str) -> JsonResponse:
        return JsonResponse(queries.answer_operations(id, _index(index)))

    @api.get("/queries/{id}/answers/{index}/content", summary="The tags of an answer")
    def answer_content(id: str, index: str, request: Request) -> JsonResponse:
        fmt = format_from_query(request.query_params.keys())
        return JsonResponse(queries.answer_content(id, _index(index), fmt))

    @api.post("/queries/{id}/answers/{index}/retrieve", summary="C-MOVE one answer")
    async def retrieve_answer(id: str, index: str, request: Request) -> JsonResponse:
        body = await request.body()
        result = await run_in_threadpool(dicom_jobs.retrieve, id, _index(index), body)
        return await answer(jobs, result)

    @api.post("/queries/{id}/retrieve", summary="C-MOVE every answer (body: target AET or {...})")
    async def retrieve_all(id: str, request: Request) -> JsonResponse:
        body = await request.body()
        return await answer(jobs, await run_in_threadpool(dicom_jobs.retrieve, id, None, body))

    @api.get("/queries/{id}/level", summary="The level of the query")
    def level(id: str) -> Response:
        return text_response(archive.get(id).level.title)

    @api.get("/queries/{id}/modality", summary="The modality queried")
    def modality(id: str) -> Response:
        return text_response(archive.get(id).modality.name)

    @api.get("/queries/{id}/query", summary="The query as given (?simplify, ?short)")
    def query_arguments(id: str, request: Request) -> JsonResponse:
        fmt = format_from_query(request.query_params.keys())
        return JsonResponse(queries.query_json(id, fmt))

    for child, route in (
        (Level.STUDY, "query-studies"),
        (Level.SERIES, "query-series"),
        (Level.INSTANCE, "query-instances"),
    ):
        _add_child_route(api, queries, child, route)
    return api


def _add_child_route(api: APIRouter, queries: QueryService, level: Level, route: str) -> None:
    @api.post(
        f"/queries/{{id}}/answers/{{index}}/{route}",
        summary=f"Query the child {level.plural} of an answer (body {{Query, Timeout}})",
    )
    async def child(id: str, index: str, request: Request) -> JsonResponse:
        body = await request.body()
        return JsonResponse(
            await run_in_threadpool(queries.child_query, id, _index(index), level, body)
        )
