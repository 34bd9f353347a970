"""Orthanc's run-time tools: what the DICOM server accepts, log levels, restart and shutdown.

(`/tools/default-encoding` lives with the other small tools in system.py.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from pharos.http.log_levels import CATEGORIES, LogLevels, parse_level
from pharos.http.responses import JsonResponse, text_response
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.scp_settings import ScpSettings

log = logging.getLogger(__name__)

# Asks the process to stop serving: True to start again with the configuration re-read
# (POST /tools/reset), False to exit (POST /tools/shutdown).
ExitRequest = Callable[[bool], None]

_TRUE = {"1", "true"}
_FALSE = {"0", "false"}


def router(
    scp: ScpSettings, request_exit: ExitRequest | None, levels: LogLevels | None = None
) -> APIRouter:
    api = APIRouter(tags=["System"])
    log_levels = levels or LogLevels()

    @api.get("/tools/accepted-transfer-syntaxes", summary="Transfer syntaxes the SCP accepts")
    def get_syntaxes() -> JsonResponse:
        return JsonResponse(list(scp.transfer_syntaxes))

    @api.put(
        "/tools/accepted-transfer-syntaxes",
        summary="Set the transfer syntaxes the SCP accepts (UIDs, wildcards * and ?)",
    )
    async def put_syntaxes(request: Request) -> JsonResponse:
        accepted = scp.set_transfer_syntaxes(_syntaxes(await request.body()))
        log.warning("Accepted transfer syntaxes changed: %d syntaxes", len(accepted))
        return JsonResponse(list(accepted))

    @api.get("/tools/unknown-sop-class-accepted", summary="Whether unknown SOP classes are stored")
    def get_unknown() -> Response:
        return text_response("1" if scp.unknown_sop_classes else "0")

    @api.put("/tools/unknown-sop-class-accepted", summary="Accept unknown SOP classes (1 or 0)")
    async def put_unknown(request: Request) -> Response:
        text = (await request.body()).decode("utf-8", "replace").strip().lower()
        if text not in _TRUE | _FALSE:
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT, f"Expected 1, 0, true or false, not {text[:64]!r}"
            )
        scp.set_unknown_sop_classes(text in _TRUE)
        log.warning("Unknown SOP classes %s", "accepted" if text in _TRUE else "refused")
        return Response()

    @api.post("/tools/reset", summary="Restart the server, reading its configuration again")
    def reset() -> JsonResponse:
        _exit(request_exit, restart=True)
        return JsonResponse({})

    @api.post("/tools/shutdown", summary="Stop the server")
    def shutdown() -> JsonResponse:
        _exit(request_exit, restart=False)
        return JsonResponse({})

    @api.get("/tools/log-level", tags=["Logs"], summary="Main log level")
    def get_level() -> Response:
        return text_response(log_levels.main)

    @api.put("/tools/log-level", tags=["Logs"], summary="Set the level of every log category")
    async def put_level(request: Request) -> Response:
        log_levels.set_main(await _level(request))
        return Response()

    for category in CATEGORIES:
        _category_routes(api, log_levels, category)
    return api


def _category_routes(api: APIRouter, levels: LogLevels, category: str) -> None:
    path = f"/tools/log-level-{category}"

    @api.get(path, tags=["Logs"], summary=f"Log level of the category '{category}'")
    def get_category() -> Response:
        return text_response(levels.category(category))

    @api.put(path, tags=["Logs"], summary=f"Set the log level of the category '{category}'")
    async def put_category(request: Request) -> Response:
        levels.set_category(category, await _level(request))
        return Response()


async def _level(request: Request) -> str:
    try:
        return parse_level((await request.body()).decode("utf-8", "replace"))
    except ValueError as exc:
        raise PharosError(ErrorCode.PARAMETER_OUT_OF_RANGE, str(exc)) from None


def _syntaxes(body: bytes) -> list[object]:
    """A JSON array of UIDs (empty: no storage at all), or one UID (JSON string or text)."""
    text = body.decode("utf-8", "replace").strip()
    value: object = text
    if text.startswith(("[", "{", '"')):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise PharosError(ErrorCode.BAD_JSON, f"Invalid JSON: {exc}") from None
    if isinstance(value, str):
        value = [value] if value else None
    if not isinstance(value, list):
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT,
            "Expected a JSON array of transfer syntax UIDs, or one UID (wildcards allowed)",
        )
    return value


def _exit(request_exit: ExitRequest | None, restart: bool) -> None:
    if request_exit is None:
        raise PharosError(
            ErrorCode.NOT_IMPLEMENTED,
            "This server runs embedded in another program, which decides when it stops",
        )
    log.warning("%s requested through the REST API", "Restart" if restart else "Shutdown")
    request_exit(restart)
