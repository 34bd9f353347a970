"""POST /tools/execute-script: run Lua in the server's Lua state (ExecuteLuaEnabled)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pharos.http.responses import text_response
from pharos.model.errors import ErrorCode, PharosError
from pharos.plugins.lua import LuaPlugin, LuaScriptError

DISABLED = (
    "The URI /tools/execute-script is disallowed for security: set ExecuteLuaEnabled to true "
    "in the configuration to enable it"
)


def router(lua: LuaPlugin | None, enabled: bool) -> APIRouter:
    api = APIRouter(tags=["System"])

    @api.post(
        "/tools/execute-script",
        summary="Execute a Lua script (body: its source); answers what it prints",
        description=(
            "Runs in the Lua state shared with the scripts of LuaScripts: the functions it "
            "defines stay, e.g. new callbacks. Disabled unless ExecuteLuaEnabled is true: "
            "very insecure on a server others can reach."
        ),
    )
    async def execute_script(request: Request) -> Response:
        if not enabled or lua is None:
            raise PharosError(ErrorCode.FORBIDDEN_ACCESS, DISABLED)
        source = await request.body()
        try:
            printed = await run_in_threadpool(lua.execute_script, source)
        except LuaScriptError as exc:
            # A script that does not compile is bad input; one that fails, Orthanc's 500.
            status = 400 if exc.syntax else 500
            raise PharosError(ErrorCode.CANNOT_EXECUTE_LUA, exc.message, status) from None
        return text_response(printed)

    return api
