"""The jobs (`/jobs`): list, inspect, pause, resume, cancel, resubmit, outputs; and the answer
of a route that submitted one (`{"ID", "Path"}`)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from pharos.http.arguments import flag
from pharos.http.responses import JsonResponse
from pharos.jobs.engine import JobsEngine
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.jobs import Submission

_CHUNK = 1 << 20


async def answer(jobs: JobsEngine, result: dict[str, Any] | Submission) -> JsonResponse:
    """What a synchronous operation answered, or the job submitted for an asynchronous one."""
    if isinstance(result, Submission):
        job_id = await run_in_threadpool(jobs.submit, result.job, result.priority)
        return JsonResponse({"ID": job_id, "Path": f"/jobs/{job_id}"})
    return JsonResponse(result)


def router(jobs: JobsEngine) -> APIRouter:
    api = APIRouter(tags=["Jobs"])

    @api.get("/jobs", summary="List the jobs (?expand: their details)")
    def list_jobs(request: Request) -> JsonResponse:
        if flag(request, "expand"):
            return JsonResponse([info.to_json() for info in jobs.infos()])
        return JsonResponse(jobs.ids())

    @api.get("/jobs/{id}", summary="The details of a job")
    def job(id: str) -> JsonResponse:
        return JsonResponse(jobs.info(id).to_json())

    actions = {
        "pause": (jobs.pause, "Pause a pending, running or retrying job"),
        "resume": (jobs.resume, "Resume a paused job"),
        "cancel": (jobs.cancel, "Cancel a job that is not finished (it becomes a failure)"),
        "resubmit": (jobs.resubmit, "Run a failed or cancelled job again from its start"),
    }
    for name, (action, summary) in actions.items():
        _add_action(api, name, action, summary)

    @api.get("/jobs/{id}/{key}", summary="An output of a finished job (e.g. archive)")
    def output(id: str, key: str) -> Response:
        result = jobs.output(id, key)
        headers = {}
        if result.filename:
            headers["Content-Disposition"] = f'filename="{result.filename}"'
        if result.path is not None:
            return _file_response(result.path, result.mime_type, headers)
        return Response(result.content, media_type=result.mime_type, headers=headers)

    return api


def _file_response(path: str, mime_type: str, headers: dict[str, str]) -> StreamingResponse:
    """A file output, opened now (it may be removed from its folder meanwhile: the open file
    stays readable) and read in chunks as the client reads."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed by the generator)
    except FileNotFoundError:
        raise PharosError(ErrorCode.INEXISTENT_ITEM, "The output of this job was removed") from None

    def chunks() -> Iterator[bytes]:
        with handle:
            while data := handle.read(_CHUNK):
                yield data

    headers["Content-Length"] = str(os.fstat(handle.fileno()).st_size)
    headers["Content-Encoding"] = "identity"  # large and dense: never gzipped
    return StreamingResponse(chunks(), media_type=mime_type, headers=headers)


def _add_action(api: APIRouter, name: str, action: Any, summary: str) -> None:
    @api.post(f"/jobs/{{id}}/{name}", summary=summary)
    def run(id: str) -> JsonResponse:
        action(id)
        return JsonResponse({})
