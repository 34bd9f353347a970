"""Archives and media (ZIP files): `/{patients|studies|series}/{id}/archive` and `/media`
(GET, or POST with a JSON body), `/tools/create-archive`, `/tools/create-media` and
`/tools/create-media-extended`.

A synchronous request is answered with the ZIP streamed as it is made (its files are
resolved first, so an unknown resource is still a clean 404); an asynchronous one submits an
`Archive` (or `Media`) job whose output is `GET /jobs/{id}/archive`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from pharos.http.rest.jobs import answer
from pharos.jobs.engine import JobsEngine
from pharos.model.levels import Level
from pharos.services.archive import (
    ZIP_MIME,
    ArchiveRequest,
    archive_request,
    describe,
)
from pharos.services.archive_jobs import ArchiveJobs
from pharos.services.container import Services

_LEVELS = (Level.PATIENT, Level.STUDY, Level.SERIES)
_TOOLS = {
    "create-archive": (False, False),
    "create-media": (True, False),
    "create-media-extended": (True, True),
}


def router(services: Services, archives: ArchiveJobs, jobs: JobsEngine) -> APIRouter:
    api = APIRouter(tags=["Archives"])
    for level in _LEVELS:
        for media in (False, True):
            _resource_routes(api, services, archives, jobs, level, media)
    for name, (media, extended) in _TOOLS.items():
        _tool_route(api, archives, jobs, name, media, extended)
    return api


def _resource_routes(
    api: APIRouter,
    services: Services,
    archives: ArchiveJobs,
    jobs: JobsEngine,
    level: Level,
    media: bool,
) -> None:
    kind = "media" if media else "archive"

    async def resource(id: str, request: Request) -> Response:
        await run_in_threadpool(services.resources.resolve, level, id)  # 404 at another level
        body = await request.body() if request.method == "POST" else None
        parsed = archive_request(
            body,
            request.query_params,
            [id],
            media=media,
            description=describe(level, id),
        )
        return await _answer(archives, jobs, parsed, f"{id}.zip")

    what = "DICOMDIR media (IMAGES/IMxxx)" if media else "ZIP archive (readable folders)"
    api.add_api_route(
        f"/{level.plural}/{{id}}/{kind}",
        resource,
        methods=["GET"],
        summary=f"The {level.title.lower()} as a {what} (?transcode, ?filename"
        + (", ?extended)" if media else ")"),
    )
    api.add_api_route(
        f"/{level.plural}/{{id}}/{kind}",
        resource,
        methods=["POST"],
        summary=f"The {level.title.lower()} as a {what} (body: Synchronous, Asynchronous, "
        "Priority, Transcode, Filename" + (", Extended)" if media else ")"),
    )


def _tool_route(
    api: APIRouter, archives: ArchiveJobs, jobs: JobsEngine, name: str, media: bool, extended: bool
) -> None:
    async def tool(request: Request) -> Response:
        parsed = archive_request(
            await request.body(), request.query_params, None, media=media, extended=extended
        )
        return await _answer(archives, jobs, parsed, "archive.zip")

    api.add_api_route(
        f"/tools/{name}",
        tool,
        methods=["POST"],
        summary="Several resources as one ZIP"
        + (" with a DICOMDIR" if media else "")
        + " (Resources, Synchronous, Asynchronous, Priority, Transcode, Filename)",
    )


async def _answer(
    archives: ArchiveJobs, jobs: JobsEngine, request: ArchiveRequest, default_name: str
) -> Response:
    if request.asynchronous:
        submission = await run_in_threadpool(archives.submission, request)
        return await answer(jobs, submission)
    service = archives.service
    plan = await run_in_threadpool(service.plan, request)
    filename = service.filename(request, default_name)
    headers = {
        "Content-Disposition": f'attachment; filename="{filename}"',
        "Content-Encoding": "identity",  # DICOM in a ZIP: gzip would only spend CPU
    }
    return StreamingResponse(service.stream(plan), media_type=ZIP_MIME, headers=headers)
