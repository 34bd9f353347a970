"""GET /plugins and /plugins/{id}: the plugins loaded (those that failed are only logged, as
Orthanc does)."""

from __future__ import annotations

from fastapi import APIRouter

from pharos.http.responses import JsonResponse
from pharos.model.errors import ErrorCode, PharosError
from pharos.plugins.manager import PluginManager


def router(plugins: PluginManager) -> APIRouter:
    api = APIRouter(tags=["System"])

    @api.get("/plugins", summary="The IDs of the plugins loaded")
    def list_plugins() -> JsonResponse:
        return JsonResponse(sorted(plugins.infos()))

    @api.get("/plugins/{plugin_id}", summary="A plugin's ID, version and description")
    def get_plugin(plugin_id: str) -> JsonResponse:
        info = plugins.infos().get(plugin_id)
        if info is None:
            raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Unknown plugin: {plugin_id}")
        return JsonResponse(info)

    return api
