"""Pharos's REST API called in-process (Orthanc's RestApiGet/Post/Put/Delete for Lua and
plugins): the request goes straight to the application, past the network, the security checks
(RemoteAccessAllowed, credentials) and the HTTP request filters, as in Orthanc.

Usable from any thread that is not running an event loop: the request runs on the server's
event loop when it is known and running, else (before start-up, or when called from the event
loop thread itself, e.g. by a filter) on a private event loop in a helper thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

import orjson
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Scope

from pharos.model.errors import ErrorCode

# Orthanc's RequestOrigin of in-process calls made by plugins (Lua says "Lua").
DEFAULT_ORIGIN = "Plugins"


class _Binding:
    """What the callers of one server share: the app, its loop, the plugins' routes."""

    def __init__(self) -> None:
        self.app: ASGIApp | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.plugin_routes: list[BaseRoute] = []
        self.helper = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pharos-in-process")


class InProcessCaller:
    """A `pharos.plugins.RestCaller` on the application (see the module docstring)."""

    def __init__(self, origin: str = DEFAULT_ORIGIN, binding: _Binding | None = None) -> None:
        self.origin = origin
        self._binding = binding or _Binding()

    def attach(self, app: ASGIApp, plugin_routes: Sequence[BaseRoute] = ()) -> None:
        """The application to call (without the security layer), and the routes added by
        plugins, which `builtin=True` calls do not reach."""
        self._binding.app = app
        self._binding.plugin_routes = list(plugin_routes)

    def bind_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """The server's event loop (at start-up); None at shutdown."""
        self._binding.loop = loop

    def with_origin(self, origin: str) -> InProcessCaller:
        """The same caller, marking what it stores with another RequestOrigin ("Lua")."""
        return InProcessCaller(origin, self._binding)

    def call(
        self, method: str, uri: str, body: bytes, headers: dict[str, str], builtin: bool
    ) -> tuple[int, dict[str, str], bytes]:
        app = self._binding.app
        if app is None:
            raise RuntimeError("The REST API is not available yet")
        scope = self._scope(method.upper(), uri, headers, len(body))
        if builtin and self._is_plugin_route(scope):
            return _not_found(method, uri)
        loop = self._binding.loop
        on_loop = loop is not None and _running_loop() is loop
        if loop is not None and loop.is_running() and not on_loop:
            future = asyncio.run_coroutine_threadsafe(_request(app, scope, body), loop)
            return future.result()
        if _running_loop() is None:
            return asyncio.run(_request(app, scope, body))
        # On an event loop thread (a filter, start-up): a private loop on a helper thread.
        return self._binding.helper.submit(asyncio.run, _request(app, scope, body)).result()

    def _scope(self, method: str, uri: str, headers: dict[str, str], length: int) -> Scope:
        path, _, query = uri.partition("?")
        # Orthanc splits URIs on "/" and ignores empty parts: RestApiPost('/instances/', ...)
        # of the Orthanc Book reaches /instances (Starlette would answer a redirect).
        path = "/" + "/".join(part for part in path.split("/") if part)
        raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        if length and not any(k == b"content-length" for k, _ in raw):
            raw.append((b"content-length", str(length).encode()))
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": path.encode("utf-8"),
            "query_string": query.encode("utf-8"),
            "root_path": "",
            "headers": raw,
            "client": None,  # no remote peer: no RemoteIP metadata, as Orthanc's Lua
            "server": ("127.0.0.1", 0),
            "state": {"request_origin": self.origin},
        }

    def _is_plugin_route(self, scope: Scope) -> bool:
        for route in self._binding.plugin_routes:
            match, _ = route.matches(scope)
            if match != Match.NONE:
                return True
        return False

    def close(self) -> None:
        self._binding.helper.shutdown(wait=False)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


async def _request(app: ASGIApp, scope: Scope, body: bytes) -> tuple[int, dict[str, str], bytes]:
    sent = False
    status = 500
    headers: dict[str, str] = {}
    chunks: list[bytes] = []
    finished = asyncio.Event()

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await finished.wait()  # what a server says when the client is gone
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
            for key, value in message.get("headers", []):
                headers[key.decode("latin-1").lower()] = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                finished.set()

    try:
        await app(dict(scope), receive, send)
    finally:
        finished.set()
    return status, headers, b"".join(chunks)


def _not_found(method: str, uri: str) -> tuple[int, dict[str, str], bytes]:
    code = ErrorCode.UNKNOWN_RESOURCE
    body: dict[str, Any] = {
        "HttpError": "Not Found",
        "HttpStatus": 404,
        "Message": code.description,
        "Details": f"{uri} is a route of a plugin, not of the built-in REST API",
        "Method": method.upper(),
        "OrthancError": code.description,
        "OrthancStatus": code.code,
        "Uri": uri,
    }
    return 404, {"content-type": "application/json"}, orjson.dumps(body)
