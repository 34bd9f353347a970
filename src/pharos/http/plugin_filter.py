"""The plugins' HTTP request filter (Orthanc's IncomingHttpRequestFilter), an ASGI middleware
behind the security checks (so it knows the user). A refusal answers 403 with Orthanc's error
JSON; a filter that fails refuses too. Without a filter it costs one dictionary lookup."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from pharos.http.errors import error_body
from pharos.model.errors import ErrorCode
from pharos.plugins.manager import PluginManager
from pharos.plugins.types import IncomingHttpRequest

HOOK = "pharos_incoming_http_request_filter"


class PluginRequestFilter:
    def __init__(self, app: ASGIApp, plugins: PluginManager, describe_errors: bool = True):
        self.app = app
        self.plugins = plugins
        self.describe_errors = describe_errors

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.plugins.has(HOOK):
            await self.app(scope, receive, send)
            return
        request = incoming_request(scope)
        # Filters are plain functions (a Lua state behind a lock...): off the event loop.
        refusal = await anyio.to_thread.run_sync(self.plugins.filter_http, request)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        details = refusal.message(f"{request.method} {request.uri}")
        body = b""
        if self.describe_errors:
            code = ErrorCode.FORBIDDEN_ACCESS
            body = orjson.dumps(error_body(request.method, request.uri, code, 403, details))
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 403, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def incoming_request(scope: Scope) -> IncomingHttpRequest:
    client = scope.get("client")
    state = scope.get("state") or {}
    headers: dict[str, str] = {}
    for name, value in scope.get("headers", []):
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    query = scope.get("query_string", b"").decode("latin-1")
    return IncomingHttpRequest(
        method=scope["method"],
        uri=scope["path"],
        ip=client[0] if client else "",
        username=str(state.get("username", "")),
        headers=headers,
        get=dict(parse_qsl(query, keep_blank_values=True)),
    )
