"""CORS (the Fetch standard's cross-origin resource sharing) for DICOMweb and WADO-URI, so
that a viewer served from another origin (OHIF, Stone, a hospital portal) can call them.

Off unless DicomWeb.CorsAllowedOrigins names origins (Orthanc has no such option: there, a
reverse proxy adds the headers). An ASGI middleware outside the security checks: a browser's
preflight (OPTIONS with Access-Control-Request-Method) carries no credentials and is answered
here; actual requests go through authentication as usual and their answers, errors included,
carry the headers that let the page read them. Other paths and other origins are untouched.
"""

from __future__ import annotations

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pharos.services.dicomweb_server import CorsPolicy, DicomWebServer

ALLOWED_METHODS = "GET, HEAD, POST, OPTIONS"
# Request headers a page may send when the preflight does not list them.
ALLOWED_HEADERS = "Accept, Authorization, Content-Type"
# Response headers a page may read besides the always-safe ones.
EXPOSED_HEADERS = "Content-Length, Content-Location, Content-Disposition, Warning"


def cors_paths(server: DicomWebServer) -> tuple[str, ...]:
    """The route prefixes CORS applies to: the DICOMweb root and the WADO-URI one."""
    return (server.root,) + ((server.wado_root,) if server.wado_root is not None else ())


class CorsMiddleware:
    def __init__(self, app: ASGIApp, policy: CorsPolicy, paths: tuple[str, ...]):
        self.app = app
        self.policy = policy
        self.paths = paths

    def _applies(self, path: str) -> bool:
        return any(path == root or path.startswith(root + "/") for root in self.paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._applies(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None or not self.policy.allows(origin):
            await self.app(scope, receive, send)
            return
        allowed = self._allow_headers(origin)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            preflight = {
                **allowed,
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": headers.get(
                    "access-control-request-headers", ALLOWED_HEADERS
                ),
                "Access-Control-Max-Age": str(self.policy.max_age),
            }
            await Response(status_code=204, headers=preflight)(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in allowed.items():
                    if name == "Vary":
                        response_headers.add_vary_header(value)
                    else:
                        response_headers[name] = value
                response_headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_cors)

    def _allow_headers(self, origin: str) -> dict[str, str]:
        """Any origin without credentials is "*"; otherwise the origin is echoed (credentials
        forbid "*"), and the answer varies with it."""
        policy = self.policy
        if "*" in policy.allowed_origins and not policy.allow_credentials:
            return {"Access-Control-Allow-Origin": "*"}
        allowed = {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
        if policy.allow_credentials:
            allowed["Access-Control-Allow-Credentials"] = "true"
        return allowed
