"""Who may talk to the server: `RemoteAccessAllowed` and HTTP Basic `RegisteredUsers`.

A plain ASGI middleware: it sits on every request, so it stays cheap.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from pharos.http.errors import error_body
from pharos.model.errors import ErrorCode

REALM = 'Basic realm="Orthanc Secure Area"'


class SecurityMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        remote_access_allowed: bool,
        authentication_enabled: bool,
        users: dict[str, str],
    ):
        self.app = app
        self.remote_access_allowed = remote_access_allowed
        self.authentication_enabled = authentication_enabled
        self.users = {user.encode(): password.encode() for user, password in users.items()}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        if not self.remote_access_allowed and not _is_loopback(client[0] if client else None):
            details = "Remote access is disabled (RemoteAccessAllowed is false)"
            await _refuse(scope, send, 403, ErrorCode.FORBIDDEN_ACCESS, details)
            return
        if self.authentication_enabled:
            user = self._authenticate(scope)
            if user is None:
                await _refuse(
                    scope,
                    send,
                    401,
                    ErrorCode.UNAUTHORIZED,
                    "Missing or bad credentials",
                    [(b"www-authenticate", REALM.encode())],
                )
                return
            scope.setdefault("state", {})["username"] = user
        await self.app(scope, receive, send)

    def _authenticate(self, scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() != b"basic":
                    return None
                try:
                    decoded = base64.b64decode(token.strip(), validate=True)
                except (binascii.Error, ValueError):
                    return None
                user, sep, password = decoded.partition(b":")
                expected = self.users.get(user)
                if sep and expected is not None and hmac.compare_digest(password, expected):
                    return user.decode("utf-8", "replace")
                return None
        return None


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or host == "testclient"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


async def _refuse(
    scope: Scope,
    send: Send,
    status: int,
    code: ErrorCode,
    details: str,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = orjson.dumps(error_body(scope["method"], scope["path"], code, status, details))
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(extra_headers or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
