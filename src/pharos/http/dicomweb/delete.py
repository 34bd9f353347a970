"""DELETE of a study, series or instance by its UIDs (a Pharos extension, as Google's Cloud
Healthcare API and dcm4chee offer it; PS3.18 defines none). It is what Orthanc's DICOMweb
client calls for a remote server declared with `HasDelete`, so one Pharos can remove what it
sent to another. The same deletion as the REST API's DELETE /studies/{id}."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pharos.services.dicomweb_server import DicomWebServer


def router(server: DicomWebServer) -> APIRouter:
    api = APIRouter(prefix=server.root, tags=["DICOMweb"])

    def remove(uids: tuple[str, ...]) -> None:
        # Several resources only if patients share the UIDs: the UIDs name them all.
        for ref in server.retrieve.resources(uids):
            server.deletion.delete(ref)

    async def delete(uids: tuple[str, ...]) -> Response:
        await run_in_threadpool(remove, uids)
        return Response(status_code=204)

    @api.delete("/studies/{study}", summary="Delete a study (Pharos extension)")
    async def study(study: str) -> Response:
        return await delete((study,))

    @api.delete("/studies/{study}/series/{series}", summary="Delete a series (Pharos extension)")
    async def series(study: str, series: str) -> Response:
        return await delete((study, series))

    @api.delete(
        "/studies/{study}/series/{series}/instances/{instance}",
        summary="Delete an instance (Pharos extension)",
    )
    async def instance(study: str, series: str, instance: str) -> Response:
        return await delete((study, series, instance))

    return api
