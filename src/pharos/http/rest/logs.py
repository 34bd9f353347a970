"""The change log and the exports log."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from pharos.http.arguments import flag, int_argument
from pharos.http.responses import JsonResponse
from pharos.services.container import Services

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000  # larger requests are clamped; `Done` and `Last` let clients page on


def router(services: Services) -> APIRouter:
    api = APIRouter(tags=["Tracking changes"])
    log = services.changes

    @api.get("/changes", summary="List changes (since, limit, last)")
    def get_changes(request: Request) -> JsonResponse:
        if flag(request, "last"):
            return JsonResponse(log.last_change_json())
        since = int_argument(request, "since", 0)
        limit = min(int_argument(request, "limit", DEFAULT_LIMIT), MAX_LIMIT)
        return JsonResponse(log.changes_json(since, limit))

    @api.delete("/changes", summary="Clear the change log")
    def delete_changes() -> Response:
        log.clear_changes()
        return Response()

    @api.get("/exports", summary="List exported resources (since, limit, last)")
    def get_exports(request: Request) -> JsonResponse:
        if flag(request, "last"):
            return JsonResponse(log.last_export_json())
        since = int_argument(request, "since", 0)
        limit = min(int_argument(request, "limit", DEFAULT_LIMIT), MAX_LIMIT)
        return JsonResponse(log.exports_json(since, limit))

    @api.delete("/exports", summary="Clear the exports log")
    def delete_exports() -> Response:
        log.clear_exports()
        return Response()

    return api
